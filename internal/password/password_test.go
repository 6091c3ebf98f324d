package password

import (
	"math"
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

func TestBits(t *testing.T) {
	cases := []struct {
		p    Policy
		want float64 // log2 of the number of passwords, counted by hand
	}{
		{Policy{Length: 8, Digits: 8}, 24},                          // 8^8: the clear digits 2-9
		{Policy{Length: 8, Digits: 8, AllowAmbiguous: true}, 26.58}, // 10^8
		{Policy{Length: 12, Digits: 3}, 66.77},                      // 47^9 * 8^3 * C(12,3)
		{Policy{Length: 10}, 55.55},                                 // 47^10
		{Policy{Length: 11, AllowAmbiguous: true}, 62.70},           // 52^11
		{Policy{Length: 3, Digits: 1, Symbols: 1}, 14.72},           // 47 * 8 * 12 * 3!
		{Policy{Length: 2, Digits: 3}, 0},                           // cannot be made
	}
	for _, tc := range cases {
		if got := Bits(tc.p); math.Abs(got-tc.want) > 0.01 {
			t.Errorf("%+v: %.2f bits, want %.2f", tc.p, got, tc.want)
		}
	}
}

// TestBitsCountsWhatTheGeneratorMakes: for a policy small enough to
// enumerate, the generator makes exactly 2^Bits different passwords.
func TestBitsCountsWhatTheGeneratorMakes(t *testing.T) {
	p := Policy{Length: 2, Digits: 1} // 47 letters * 8 digits * 2 places = 752
	g, err := New(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for range 40000 { // every one of 752 is missed with odds e^-53
		pw, err := g.Generate()
		if err != nil {
			t.Fatal(err)
		}
		seen[pw] = true
	}
	if got := math.Log2(float64(len(seen))); math.Abs(got-Bits(p)) > 1e-9 {
		t.Fatalf("%d passwords seen (%.3f bits), Bits says %.3f", len(seen), got, Bits(p))
	}
}
