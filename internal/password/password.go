// Package password makes the zip passwords. They are read off a mail and
// typed by hand, so by default the look-alike characters are left out.
package password

import (
	"fmt"
	"io"
	"math"

	gopassword "github.com/sethvargo/go-password/password"
)

// Character sets without 0/O/o, 1/l/I/i and similar pairs.
const (
	clearLower   = "abcdefghjkmnpqrstuvwxyz"
	clearUpper   = "ABCDEFGHJKLMNPQRSTUVWXYZ"
	clearDigits  = "23456789"
	clearSymbols = "#$%&*+-=?@^_"
)

// Policy is how a password is made.
type Policy struct {
	Length, Digits, Symbols int
	AllowAmbiguous          bool
}

// Generator makes passwords from a random source (crypto/rand unless a
// test injects one).
type Generator struct {
	gen    *gopassword.Generator
	policy Policy
}

// New returns a generator for p; rand may be nil for crypto/rand.
func New(p Policy, rand io.Reader) (*Generator, error) {
	in := &gopassword.GeneratorInput{Reader: rand}
	if !p.AllowAmbiguous {
		in.LowerLetters, in.UpperLetters = clearLower, clearUpper
		in.Digits, in.Symbols = clearDigits, clearSymbols
	}
	g, err := gopassword.NewGenerator(in)
	if err != nil {
		return nil, err
	}
	return &Generator{gen: g, policy: p}, nil
}

// Generate returns a new password. Repeats are allowed: forbidding them
// shrinks the space for nothing.
func (g *Generator) Generate() (string, error) {
	p := g.policy
	s, err := g.gen.Generate(p.Length, p.Digits, p.Symbols, false, true)
	if err != nil {
		// The library's errors name lengths only, never the password.
		return "", fmt.Errorf("password: %w", err)
	}
	return s, nil
}

// Bits is the entropy of the passwords p makes, in bits: each is drawn
// uniformly from the strings of p.Length characters with exactly
// p.Digits digits and p.Symbols symbols (go-password inserts each
// character at a uniformly random place), so it is the log2 of their
// number. It is 0 for a policy that cannot make a password.
func Bits(p Policy) float64 {
	letters, digits, symbols := len(clearLower)+len(clearUpper), len(clearDigits), len(clearSymbols)
	if p.AllowAmbiguous {
		letters = len(gopassword.LowerLetters) + len(gopassword.UpperLetters)
		digits, symbols = len(gopassword.Digits), len(gopassword.Symbols)
	}
	n := p.Length - p.Digits - p.Symbols
	if p.Length <= 0 || p.Digits < 0 || p.Symbols < 0 || n < 0 {
		return 0
	}
	// Where the digits and symbols go: Length! / (n! Digits! Symbols!).
	lg := func(k int) float64 { v, _ := math.Lgamma(float64(k + 1)); return v / math.Ln2 }
	places := lg(p.Length) - lg(n) - lg(p.Digits) - lg(p.Symbols)
	return float64(n)*math.Log2(float64(letters)) + float64(p.Digits)*math.Log2(float64(digits)) +
		float64(p.Symbols)*math.Log2(float64(symbols)) + places
}
