package mimeparam

import (
	"strings"
	"unicode"
)

// FileName returns an attachment's decoded file name, or "" if it has none.
// Sources, first non-empty wins: Content-Disposition filename, Content-Type
// name, then the misplaced Content-Type filename and Content-Disposition name
// some mailers write. Values are decoded from RFC 2231 (in Parse), RFC 2047
// encoded-words (quoted or not) and raw 8-bit bytes (see sniff), all in any
// charset; unknown charsets are sniffed like raw bytes. Control characters
// (NUL, C0, DEL, C1) and bidi controls are removed, tabs become spaces and
// surrounding white space is trimmed. Path components are kept: the caller
// decides what to do with "../" or "C:\".
func FileName(contentType, contentDisposition string) string {
	_, cd := Parse(contentDisposition)
	_, ct := Parse(contentType)
	return FileNameOf(ct, cd)
}

// FileNameOf is FileName for parameters Parse already returned (either
// may be nil).
func FileNameOf(contentType, contentDisposition map[string]string) string {
	for _, v := range [...]string{contentDisposition["filename"], contentType["name"], contentType["filename"], contentDisposition["name"]} {
		if v == "" {
			continue
		}
		if name := clean(decodeText(v)); name != "" {
			return name
		}
	}
	return ""
}

// DecodeHeader decodes an unstructured header value such as Subject for logs
// and notices: RFC 2047 encoded-words in any charset (words that do not parse
// are left as written; unknown charsets are sniffed), raw 8-bit bytes, and
// folding. The result is valid UTF-8 without control characters.
func DecodeHeader(s string) string {
	return clean(decodeText(unfold(s)))
}

// clean removes characters that must not reach a file name, a log line or a
// notice: control characters, and bidi controls that can disguise an
// extension ("invoice\u202Efdp.exe").
func clean(s string) string {
	s = strings.Map(func(r rune) rune {
		switch {
		case r == '\t':
			return ' '
		case unicode.IsControl(r), unicode.Is(unicode.Bidi_Control, r):
			return -1
		}
		return r
	}, s)
	return strings.TrimSpace(s)
}
