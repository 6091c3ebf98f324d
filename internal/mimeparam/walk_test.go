package mimeparam

import (
	"bufio"
	"bytes"
	"strings"

	"github.com/emersion/go-message/textproto"
)

// part holds one MIME entity's Content-Type and Content-Disposition, both as
// written (folded, raw bytes) and as go-message's Header.Get unfolds them.
type part struct {
	rawCT, rawCD string
	getCT, getCD string
}

// walkMessage is a tiny MIME walker for the tests: it reads each entity's
// header with go-message's textproto reader, finds the boundary with Parse
// and descends into multipart bodies and unencoded message/rfc822 parts.
func walkMessage(data []byte) []part {
	var out []part
	walk(data, 0, &out)
	return out
}

func walk(data []byte, depth int, out *[]part) {
	if depth > 300 {
		return
	}
	// An mbox "From " line (also on forwarded messages) is not a header field.
	if bytes.HasPrefix(data, []byte("From ")) {
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			data = data[i+1:]
		}
	}
	r := bufio.NewReader(bytes.NewReader(data))
	h, _ := textproto.ReadHeader(r) // keep what was read before an error
	p := part{
		rawCT: rawValue(h, "Content-Type"), rawCD: rawValue(h, "Content-Disposition"),
		getCT: h.Get("Content-Type"), getCD: h.Get("Content-Disposition"),
	}
	*out = append(*out, p)
	var body bytes.Buffer
	body.ReadFrom(r)
	typ, params := Parse(p.rawCT)
	switch {
	case strings.HasPrefix(typ, "multipart/") && params["boundary"] != "":
		for _, sub := range splitMultipart(body.Bytes(), params["boundary"]) {
			walk(sub, depth+1, out)
		}
	case typ == "message/rfc822" && !strings.EqualFold(h.Get("Content-Transfer-Encoding"), "base64"):
		walk(body.Bytes(), depth+1, out)
	}
}

// rawValue returns the first field's value exactly as written, folds kept.
func rawValue(h textproto.Header, key string) string {
	fields := h.FieldsByKey(key)
	if !fields.Next() {
		return ""
	}
	raw, err := fields.Raw()
	if err != nil {
		return ""
	}
	_, v, _ := bytes.Cut(raw, []byte(":"))
	return string(bytes.TrimSuffix(v, []byte("\r\n")))
}

// splitMultipart returns the body parts between "--boundary" lines.
func splitMultipart(body []byte, boundary string) [][]byte {
	var parts [][]byte
	var cur []byte
	in := false
	for _, line := range bytes.SplitAfter(body, []byte("\n")) {
		l := strings.TrimRight(string(line), "\r\n")
		if rest, ok := strings.CutPrefix(l, "--"+boundary); ok {
			if strings.TrimRight(rest, " \t") == "" {
				if in {
					parts = append(parts, cur)
				}
				cur, in = nil, true
				continue
			}
			if strings.HasPrefix(rest, "--") {
				if in {
					parts = append(parts, cur)
				}
				return parts
			}
		}
		if in {
			cur = append(cur, line...)
		}
	}
	if in {
		parts = append(parts, cur) // missing closing delimiter
	}
	return parts
}
