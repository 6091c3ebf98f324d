package password

import (
	"strings"
	"testing"
	"unicode"
)

func TestGenerateFollowsPolicy(t *testing.T) {
	g, err := New(Policy{Length: 16, Digits: 4, Symbols: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for i := 0; i < 200; i++ {
		pw, err := g.Generate()
		if err != nil {
			t.Fatal(err)
		}
		if len(pw) != 16 {
			t.Fatalf("length %d, want 16", len(pw))
		}
		if strings.ContainsAny(pw, "0Oo1lIi") {
			t.Fatalf("%q has a look-alike character", pw)
		}
		var digits, symbols int
		for _, r := range pw {
			switch {
			case unicode.IsDigit(r):
				digits++
			case strings.ContainsRune(clearSymbols, r):
				symbols++
			}
		}
		if digits != 4 || symbols != 2 {
			t.Fatalf("%q: %d digits, %d symbols; want 4 and 2", pw, digits, symbols)
		}
		if seen[pw] {
			t.Fatalf("password %q repeated", pw)
		}
		seen[pw] = true
	}
}

func TestTooManyDigitsIsAnError(t *testing.T) {
	g, err := New(Policy{Length: 4, Digits: 9}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Generate(); err == nil {
		t.Fatal("want an error for 9 digits in a 4-character password")
	}
}
