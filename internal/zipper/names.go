package zipper

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/encoding/japanese"
	"golang.org/x/text/unicode/norm"
)

// maxNameBytes keeps a name, plus a " (NNN)" dedupe suffix, under the
// 255-byte file name limit of ext4 and most other file systems.
const maxNameBytes = 240

// maxExtBytes is the longest tail after the last dot that is kept as an
// extension when a long name is cut.
const maxExtBytes = 16

// reserved are the DOS device names Windows refuses as a file name, with
// or without an extension ("CON.txt" is as bad as "CON").
var reserved = map[string]bool{
	"CON": true, "PRN": true, "AUX": true, "NUL": true,
	"CONIN$": true, "CONOUT$": true,
	"COM1": true, "COM2": true, "COM3": true, "COM4": true, "COM5": true,
	"COM6": true, "COM7": true, "COM8": true, "COM9": true,
	"COM¹": true, "COM²": true, "COM³": true,
	"LPT1": true, "LPT2": true, "LPT3": true, "LPT4": true, "LPT5": true,
	"LPT6": true, "LPT7": true, "LPT8": true, "LPT9": true,
	"LPT¹": true, "LPT²": true, "LPT³": true,
}

// SafeName turns a mail attachment's file name into one that is safe to
// extract on Windows, macOS and Linux: only the last path component is
// kept (both / and \ separate), drive letters go, control characters,
// bidi overrides and characters Windows forbids (<>:"|?*) become '_',
// runs of white space shrink to one (so "a.pdf      .exe" shows its real
// extension), leading dots and spaces (hidden files, "..") and trailing
// dots and spaces (dropped by Windows) are trimmed, DOS device names get a
// '_' ("CON.txt" → "CON_.txt"), and long names are cut to maxNameBytes
// keeping the extension. Names are NFC-normalized, so macOS's decomposed
// Japanese (e.g. "ファイル" with combining marks) looks right on Windows. An empty
// result becomes "attachment".
func SafeName(name string) string {
	name = norm.NFC.String(strings.ToValidUTF8(name, "_"))
	parts := strings.FieldsFunc(name, func(r rune) bool { return r == '/' || r == '\\' })
	for i := len(parts) - 1; i >= 0; i-- {
		if s := cleanComponent(parts[i]); s != "" {
			return s
		}
	}
	return "attachment"
}

// cleanComponent makes one path component safe, or returns "" when
// nothing usable is left (".", "..", "C:", "   ").
func cleanComponent(s string) string {
	if len(s) >= 2 && s[1] == ':' && isASCIILetter(s[0]) {
		s = s[2:] // "C:a.txt" is relative to drive C's current directory
	}
	var b strings.Builder
	prevSpace := false
	for _, r := range s {
		switch {
		case unicode.IsSpace(r) && !unicode.IsControl(r):
			if prevSpace {
				continue
			}
			prevSpace = true
		case unicode.IsControl(r) || isBidiControl(r) || strings.ContainsRune(`<>:"|?*`, r):
			r = '_'
			prevSpace = false
		default:
			prevSpace = false
		}
		b.WriteRune(r)
	}
	s = strings.TrimLeftFunc(b.String(), isDotOrSpace)
	s = strings.TrimRightFunc(s, isDotOrSpace)
	s = truncate(s)
	return fixReserved(s)
}

// truncate cuts s to maxNameBytes on a rune boundary, keeping a short
// extension so the file still opens with the right program.
func truncate(s string) string {
	if len(s) <= maxNameBytes {
		return s
	}
	stem, ext := splitExt(s)
	if len(ext) > maxExtBytes {
		stem, ext = s, ""
	}
	n := maxNameBytes - len(ext)
	for n > 0 && !utf8.RuneStart(stem[n]) {
		n--
	}
	return strings.TrimRightFunc(stem[:n], isDotOrSpace) + ext
}

// fixReserved appends '_' to a DOS device name: Windows matches the part
// before the first dot, ignoring trailing spaces and case.
func fixReserved(s string) string {
	base := s
	if i := strings.IndexByte(s, '.'); i >= 0 {
		base = s[:i]
	}
	base = strings.TrimRight(base, " ")
	if !reserved[strings.ToUpper(base)] {
		return s
	}
	return base + "_" + s[len(base):]
}

// splitExt splits "a.tar.gz" into "a.tar" and ".gz"; a name without a dot
// (or with only a leading one) has no extension.
func splitExt(s string) (stem, ext string) {
	i := strings.LastIndexByte(s, '.')
	if i <= 0 {
		return s, ""
	}
	return s[:i], s[i:]
}

func isASCIILetter(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }

func isDotOrSpace(r rune) bool { return r == '.' || unicode.IsSpace(r) }

// isBidiControl reports the explicit direction marks used to disguise
// "invoice\u202Efdp.exe" as "invoiceexe.pdf".
func isBidiControl(r rune) bool {
	return r == 0x061C || r == 0x200E || r == 0x200F ||
		(r >= 0x202A && r <= 0x202E) || (r >= 0x2066 && r <= 0x2069)
}

// names hands out unique names within one zip. Windows and macOS file
// systems ignore case, so "A.pdf" and "a.pdf" would overwrite each other.
type names map[string]bool

func (n names) unique(name string) string {
	if !n[strings.ToUpper(name)] {
		n[strings.ToUpper(name)] = true
		return name
	}
	stem, ext := splitExt(name)
	for i := 2; ; i++ {
		c := stem + " (" + strconv.Itoa(i) + ")" + ext
		if !n[strings.ToUpper(c)] {
			n[strings.ToUpper(c)] = true
			return c
		}
	}
}

// cp932Lookalikes maps characters that JIS-based systems (macOS, many
// phones) use, but CP932 lacks, to the CP932 character with the same
// look and the same JIS code: the "wave dash problem". Without it
// "4月〜6月.xlsx" would become "4月_6月.xlsx".
var cp932Lookalikes = strings.NewReplacer(
	"\u301C", "\uFF5E", // 〜 → ～
	"\u2016", "\u2225", // ‖ → ∥
	"\u2212", "\uFF0D", // − → －
	"\u2014", "\u2015", // — → ―
	"\u00A2", "\uFFE0", // ¢ → ￠
	"\u00A3", "\uFFE1", // £ → ￡
	"\u00AC", "\uFFE2", // ¬ → ￢
	"\u00A5", "\uFFE5", // ¥ → ￥ (not 0x5C: that is a path separator)
	"\u203E", "\uFFE3", // ‾ → ￣
)

// toCP932 returns name as old Japanese Windows will show it (runes CP932
// lacks become '_') and its Shift_JIS bytes. The shown name is decoded
// back from the bytes so that dedupe compares what the recipient sees.
func toCP932(name string) (shown string, raw []byte) {
	enc := japanese.ShiftJIS.NewEncoder()
	var buf [utf8.UTFMax]byte
	for _, r := range cp932Lookalikes.Replace(name) {
		b, err := enc.Bytes(buf[:utf8.EncodeRune(buf[:], r)])
		if err != nil || len(b) == 0 {
			b = []byte{'_'}
		}
		raw = append(raw, b...)
	}
	dec, err := japanese.ShiftJIS.NewDecoder().Bytes(raw)
	if err != nil { // cannot happen for bytes the encoder made
		return name, raw
	}
	return string(dec), raw
}
