package mimeparam

import (
	"bytes"
	"encoding/base64"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-message/charset"
	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/japanese"
)

// aliases maps labels seen in mail that go-message's charset package does
// not resolve to one it does.
var aliases = map[string]string{
	"cp932":         "shift_jis",
	"eucjp":         "euc-jp",
	"ujis":          "euc-jp",
	"x-euc":         "euc-jp",
	"iso-2022-jp-1": "iso-2022-jp",
	"iso-2022-jp-2": "iso-2022-jp",
	"iso-2022-jp-3": "iso-2022-jp",
	"cp949":         "euc-kr", // x/text's EUC-KR is the windows-949 superset
	"ms949":         "euc-kr",
	"uhc":           "euc-kr",
	"ks_c_5601":     "euc-kr",
	"latin-1":       "iso-8859-1",
}

// convert decodes b from the named charset to valid UTF-8. It never fails:
// unknown charsets are sniffed, and a decoding that produces U+FFFD (the
// label does not fit the bytes) is replaced by the sniffed one if that is
// cleaner.
func convert(label string, b []byte) string {
	if isASCII(b) && bytes.IndexByte(b, 0x1b) < 0 {
		return string(b) // plain ASCII reads the same in every mail charset
	}
	label = strings.ToLower(strings.Trim(label, " \t\"'"))
	if i := strings.IndexByte(label, '*'); i >= 0 {
		label = label[:i] // RFC 2231 language suffix: "utf-8*ja"
	}
	if a, ok := aliases[label]; ok {
		label = a
	}
	r, err := charset.Reader(label, bytes.NewReader(b))
	if err != nil {
		return sniff(b)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		return sniff(b)
	}
	s := strings.ToValidUTF8(string(out), "\uFFFD")
	if n := strings.Count(s, "\uFFFD"); n > 0 {
		if alt := sniff(b); strings.Count(alt, "\uFFFD") < n {
			return alt
		}
	}
	return s
}

// sniff guesses the charset of unlabelled (or wrongly labelled) bytes. Order:
// 7-bit ISO-2022-JP (has ESC), UTF-8, Shift_JIS, EUC-JP, then Windows-1252,
// which maps every byte, so the result is always valid UTF-8.
func sniff(b []byte) string {
	if bytes.IndexByte(b, 0x1b) >= 0 && isASCII(b) {
		if s, ok := decodeClean(japanese.ISO2022JP, b); ok {
			return s
		}
	}
	if utf8.Valid(b) {
		return string(b)
	}
	// Latin-1 letters are often valid Shift_JIS too; real Japanese text
	// almost always has a kana, common kanji or symbol whose lead byte is in
	// 0x81-0x9F, a range Latin-1 text rarely uses.
	if hasByteIn(b, 0x81, 0x9f) {
		if s, ok := decodeClean(japanese.ShiftJIS, b); ok {
			return s
		}
	}
	if s, ok := decodeClean(japanese.EUCJP, b); ok {
		return s
	}
	s, _ := charmap.Windows1252.NewDecoder().Bytes(b)
	return strings.ToValidUTF8(string(s), "\uFFFD")
}

// decodeClean decodes b and reports whether no byte was invalid.
func decodeClean(enc encoding.Encoding, b []byte) (string, bool) {
	out, err := enc.NewDecoder().Bytes(b)
	if err != nil || !utf8.Valid(out) || bytes.ContainsRune(out, utf8.RuneError) {
		return "", false
	}
	return string(out), true
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

func hasByteIn(b []byte, lo, hi byte) bool {
	for _, c := range b {
		if lo <= c && c <= hi {
			return true
		}
	}
	return false
}

// decodeText decodes RFC 2047 encoded-words found anywhere in s (also inside
// a word, as mailers put them in quoted parameters) and converts the other
// bytes with sniff. Adjacent words are joined: the white space between them
// is dropped (RFC 2047 6.2) and, when they share a charset, their bytes are
// converted together because encoders split multibyte characters across
// words. Words that do not parse are kept as written. mime.WordDecoder is
// not used because it fails the whole text on one unknown charset and
// converts each word alone.
func decodeText(s string) string {
	var out strings.Builder
	var raw []byte  // plain bytes since the last encoded-word
	var word []byte // bytes of pending adjacent encoded-words
	var cs string   // their charset
	inWord := false
	flushWord := func() {
		if inWord {
			out.WriteString(convert(cs, word))
			word, inWord = word[:0], false
		}
	}
	for {
		i := strings.Index(s, "=?")
		if i < 0 {
			break
		}
		wcs, data, n, ok := parseWord(s[i:])
		if !ok {
			raw = append(raw, s[:i+2]...)
			s = s[i+2:]
			continue
		}
		raw = append(raw, s[:i]...)
		if inWord && len(bytes.Trim(raw, " \t")) == 0 {
			if !strings.EqualFold(wcs, cs) {
				flushWord()
			}
		} else {
			flushWord()
			out.WriteString(sniff(raw))
		}
		raw = raw[:0]
		word, cs, inWord = append(word, data...), wcs, true
		s = s[i+n:]
	}
	flushWord()
	out.WriteString(sniff(append(raw, s...)))
	return out.String()
}

// parseWord parses "=?charset?B|Q?text?=" at the start of s and returns the
// charset, the decoded bytes and the length of the word.
func parseWord(s string) (cs string, data []byte, n int, ok bool) {
	rest := s[2:]
	q := strings.IndexByte(rest, '?')
	if q <= 0 || q+2 >= len(rest) || rest[q+2] != '?' || strings.ContainsAny(rest[:q], " \t\"") {
		return "", nil, 0, false
	}
	cs, enc := rest[:q], rest[q+1]
	// The text holds neither "?" nor white space, so it ends at the first
	// "?", which must start "?="; stopping there keeps hostile input linear.
	text := rest[q+3:]
	end := strings.IndexAny(text, "? \t")
	if end < 0 || text[end] != '?' || end+1 >= len(text) || text[end+1] != '=' {
		return "", nil, 0, false
	}
	text = text[:end]
	switch enc {
	case 'B', 'b':
		var err error
		data, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(text, "="))
		if err != nil {
			return "", nil, 0, false
		}
	case 'Q', 'q':
		data = qDecode(text)
	default:
		return "", nil, 0, false
	}
	return cs, data, 2 + q + 3 + end + 2, true
}

// qDecode decodes RFC 2047 "Q": "_" is a space, =XX a byte; malformed
// escapes are kept literally.
func qDecode(s string) []byte {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '_':
			b = append(b, ' ')
		case c == '=' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
		default:
			b = append(b, c)
		}
	}
	return b
}
