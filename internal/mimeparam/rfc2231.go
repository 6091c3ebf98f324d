package mimeparam

import (
	"maps"
	"slices"
	"strconv"
	"strings"
)

// segment is one RFC 2231 piece: name*N= (plain) or name*N*= (encoded).
type segment struct {
	val     string
	encoded bool
}

// extParam collects the RFC 2231 forms of one parameter.
type extParam struct {
	single *string         // name*=charset'lang'value
	segs   map[int]segment // name*0=, name*0*=, name*1*=, ...
}

// split2231 recognises "name*" (idx -1), "name*3" and "name*3*".
func split2231(key string) (name string, idx int, encoded, ok bool) {
	key, encoded = strings.CutSuffix(key, "*")
	star := strings.LastIndexByte(key, '*')
	if num := key[star+1:]; star > 0 && len(num) > 0 && len(num) <= 4 && strings.Trim(num, "0123456789") == "" {
		n, _ := strconv.Atoi(num)
		return key[:star], n, encoded, true
	}
	if encoded && key != "" {
		return key, -1, true, true
	}
	return "", 0, false, false
}

// add records a segment; the first occurrence of each index wins.
func (e *extParam) add(idx int, s segment) {
	if idx < 0 {
		if e.single == nil {
			e.single = &s.val
		}
		return
	}
	if _, dup := e.segs[idx]; !dup {
		e.segs[idx] = s
	}
}

// decode joins the segments and converts them to UTF-8. The bytes of all
// segments are joined before conversion because senders split multibyte
// characters (and ISO-2022-JP escape sequences) between segments. Segments
// are taken in index order whatever order they came in; gaps are ignored.
func (e *extParam) decode() string {
	if e.single != nil {
		cs, data := splitCharset(*e.single)
		return convert(cs, pctDecode(data))
	}
	var cs string
	var buf []byte
	for n, i := range slices.Sorted(maps.Keys(e.segs)) {
		s := e.segs[i]
		if !s.encoded {
			buf = append(buf, s.val...)
			continue
		}
		data := s.val
		if n == 0 { // only the first segment carries charset'lang'
			cs, data = splitCharset(data)
		}
		buf = append(buf, pctDecode(data)...)
	}
	return convert(cs, buf)
}

// splitCharset splits "charset'lang'data". Without two quotes the whole
// value is data in an unknown charset.
func splitCharset(v string) (charset, data string) {
	parts := strings.SplitN(v, "'", 3)
	if len(parts) != 3 {
		return "", v
	}
	return strings.TrimSpace(parts[0]), parts[2]
}

// pctDecode decodes %XX escapes; malformed escapes are kept literally.
func pctDecode(s string) []byte {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
			continue
		}
		b = append(b, s[i])
	}
	return b
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}
