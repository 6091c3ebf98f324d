package zipper

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/encoding/japanese"
)

func TestSafeName(t *testing.T) {
	long := strings.Repeat("あ", 100) // 300 bytes
	tests := []struct {
		in, want string
	}{
		{"report.pdf", "report.pdf"},
		{"請求書_2026年11月.pdf", "請求書_2026年11月.pdf"},
		{"見積もり (1).xlsx", "見積もり (1).xlsx"},
		{"ｶﾀｶﾅ　全角スペース.txt", "ｶﾀｶﾅ　全角スペース.txt"},

		// path components, both separators, drive letters
		{"../../etc/passwd", "passwd"},
		{`C:\Users\x\a.txt`, "a.txt"},
		{`..\..\Windows\win.ini`, "win.ini"},
		{"/etc/cron.d/job", "job"},
		{`\\server\share\doc.txt`, "doc.txt"},
		{"C:a.txt", "a.txt"},
		{"C:", "attachment"},
		{"dir/", "dir"},
		{"a/../..", "a"},
		{"../../", "attachment"},

		// hidden, dot names, trailing dots and spaces
		{".bashrc", "bashrc"},
		{"..", "attachment"},
		{".", "attachment"},
		{"...", "attachment"},
		{"", "attachment"},
		{"   ", "attachment"},
		{" . .hidden", "hidden"},
		{"report.pdf. . .", "report.pdf"},
		{"  spaced name.doc  ", "spaced name.doc"},

		// Windows device names
		{"CON.txt", "CON_.txt"},
		{"con", "con_"},
		{"Com1.tar.gz", "Com1_.tar.gz"},
		{"LPT9", "LPT9_"},
		{"nul .txt", "nul_ .txt"},
		{"COM¹.txt", "COM¹_.txt"},
		{"COM10.txt", "COM10.txt"},
		{"CONSOLE.txt", "CONSOLE.txt"},
		{"ｃｏｎ.txt", "ｃｏｎ.txt"}, // fullwidth is not reserved

		// control characters, spoofing, Windows-forbidden characters
		{"a\x00b.txt", "a_b.txt"},
		{"invoice.pdf\x00.exe", "invoice.pdf_.exe"},
		{"line\r\nbreak.txt", "line__break.txt"},
		{"tab\there.txt", "tab_here.txt"},
		{"esc\x1b[31m.txt", "esc_[31m.txt"},
		{"del\x7f.txt", "del_.txt"},
		{"nel\u0085.txt", "nel_.txt"},
		{"invoice\u202Efdp.exe", "invoice_fdp.exe"},
		{"invoice.pdf   .exe", "invoice.pdf .exe"},
		{"wide\u3000\u3000\u3000gap.txt", "wide\u3000gap.txt"},
		{"what?.txt", "what_.txt"},
		{`a<b>c:d"e|f*.txt`, "a_b_c_d_e_f_.txt"},

		// encoding
		{"\xff\xfe.txt", "_.txt"},
		{"テ\u3099ータ.csv", "データ.csv"}, // macOS NFD → NFC

		// length: keep the extension, cut on a rune boundary
		{long + ".pdf", strings.Repeat("あ", 78) + ".pdf"},
		{"a." + strings.Repeat("x", 300), "a." + strings.Repeat("x", 238)},
	}
	for _, tt := range tests {
		if got := SafeName(tt.in); got != tt.want {
			t.Errorf("SafeName(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzSafeName(f *testing.F) {
	for _, s := range []string{
		"../../etc/passwd", `C:\Users\x\a.txt`, "CON.txt", "invoice.pdf   .exe",
		"a\x00b", "..", " . ", "請求書_2026年11月.pdf", "\xff", strings.Repeat("あ", 90) + ".pdf",
		"テ\u3099", "<\u0338", "x.\u0301",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got := SafeName(in)
		switch {
		case got == "" || got == "." || got == "..":
			t.Fatalf("SafeName(%q) = %q", in, got)
		case !utf8.ValidString(got):
			t.Fatalf("SafeName(%q) = %q: invalid UTF-8", in, got)
		case strings.ContainsAny(got, `/\`):
			t.Fatalf("SafeName(%q) = %q: has a separator", in, got)
		case strings.IndexFunc(got, unicode.IsControl) >= 0:
			t.Fatalf("SafeName(%q) = %q: has a control character", in, got)
		case got[0] == '.' || strings.HasSuffix(got, ".") || strings.HasSuffix(got, " "):
			t.Fatalf("SafeName(%q) = %q: leading dot or trailing dot/space", in, got)
		case len(got) > maxNameBytes+1: // +1: a '_' after a device name
			t.Fatalf("SafeName(%q) = %q: %d bytes", in, got, len(got))
		}
		if again := SafeName(got); again != got {
			t.Fatalf("not idempotent: SafeName(%q) = %q, SafeName(%q) = %q", in, got, got, again)
		}
	})
}

func TestUnique(t *testing.T) {
	n := names{}
	in := []string{"a.pdf", "A.PDF", "a.pdf", "a (2).pdf", "README", "readme", "x.tar.gz", "x.tar.gz"}
	want := []string{"a.pdf", "A (2).PDF", "a (3).pdf", "a (2) (2).pdf", "README", "readme (2)", "x.tar.gz", "x.tar (2).gz"}
	for i, s := range in {
		if got := n.unique(s); got != want[i] {
			t.Errorf("unique(%q) #%d = %q, want %q", s, i, got, want[i])
		}
	}
}

func TestToCP932(t *testing.T) {
	tests := []struct{ in, shown string }{
		{"請求書_2026年11月.pdf", "請求書_2026年11月.pdf"},
		{"見積もり (1).xlsx", "見積もり (1).xlsx"},
		{"①㈱髙橋.txt", "①㈱髙橋.txt"},     // NEC and IBM extensions are in CP932
		{"表計算.xlsx", "表計算.xlsx"},     // 表 is 0x95 0x5C
		{"4月〜6月.xlsx", "4月～6月.xlsx"}, // wave dash → fullwidth tilde
		{"a−b‖c—d.txt", "a－b∥c―d.txt"},
		{"😀report.pdf", "_report.pdf"},
		{"Ünïcödé.txt", "_n_c_d_.txt"},
	}
	dec := japanese.ShiftJIS.NewDecoder()
	for _, tt := range tests {
		shown, raw := toCP932(tt.in)
		if shown != tt.shown {
			t.Errorf("toCP932(%q) shown %q, want %q", tt.in, shown, tt.shown)
		}
		back, err := dec.Bytes(raw)
		if err != nil || string(back) != shown {
			t.Errorf("toCP932(%q): raw % x decodes to %q, %v", tt.in, raw, back, err)
		}
		if _, raw2 := toCP932(shown); string(raw2) != string(raw) {
			t.Errorf("toCP932(%q) not stable: % x then % x", tt.in, raw, raw2)
		}
	}
}
