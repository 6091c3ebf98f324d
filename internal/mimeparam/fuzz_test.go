package mimeparam

import (
	"path/filepath"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// sampleHeaders returns the raw and unfolded Content-Type and
// Content-Disposition values of every part of every sample in testdata.
func sampleHeaders(t testing.TB) [][2]string {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.eml"))
	var out [][2]string
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".eml")
		for _, p := range walkMessage(readSample(t, name)) {
			out = append(out, [2]string{p.rawCT, p.rawCD}, [2]string{p.getCT, p.getCD})
		}
	}
	return out
}

var fuzzSeeds = []string{
	"application/pdf name=foo.pdf",
	"multipart/mixed\r\n\tboundary=\"b\"",
	"attachment; filename*0*=utf-8''%E8%AB; filename*1*=%8B.pdf",
	"attachment; filename*1*=%8B; filename*0*=iso-2022-jp''%1B$B",
	`attachment; filename="=?utf-8?B?44OG4w==?= =?x-bogus?Q?=FF?="`,
	"attachment; filename=\"a\x00\\\"\xff\x1b$B",
	"=?=?=?a?B?=?a?Q?=",
	"; ; =; *=; a*=; a*0*=''; a*99999*=x",
}

func FuzzParse(f *testing.F) {
	for _, h := range sampleHeaders(f) {
		f.Add(h[0])
		f.Add(h[1])
	}
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		// A value whose boundary is given once cannot conflict.
		if Conflicting(s, "boundary") && strings.Count(strings.ToLower(s), "boundary") < 2 {
			t.Errorf("Conflicting(%q) with one boundary", s)
		}
		typ, params := Parse(s)
		if typ != strings.ToLower(typ) || strings.ContainsAny(typ, " \t;=\"") {
			t.Errorf("Parse(%q) type %q", s, typ)
		}
		for k, v := range params {
			if k != strings.ToLower(k) {
				t.Errorf("Parse(%q) key %q not lowercased", s, k)
			}
			// Nothing Parse adds may break UTF-8.
			if utf8.ValidString(s) && !utf8.ValidString(v) {
				t.Errorf("Parse(%q)[%q] = %q not valid UTF-8", s, k, v)
			}
		}
	})
}

func FuzzFileName(f *testing.F) {
	for _, h := range sampleHeaders(f) {
		f.Add(h[0], h[1])
	}
	for _, s := range fuzzSeeds {
		f.Add("", s)
		f.Add(s, "")
	}
	f.Fuzz(func(t *testing.T, ct, cd string) {
		checkText(t, FileName(ct, cd))
		checkText(t, DecodeHeader(cd))
	})
}

// checkText asserts the invariants of FileName and DecodeHeader results.
func checkText(t *testing.T, s string) {
	t.Helper()
	if !utf8.ValidString(s) {
		t.Errorf("%q is not valid UTF-8", s)
	}
	for _, r := range s {
		if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) {
			t.Errorf("%q contains control character %U", s, r)
		}
	}
	if strings.TrimSpace(s) != s {
		t.Errorf("%q has surrounding white space", s)
	}
}
