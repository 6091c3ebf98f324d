// Package password makes the zip passwords. They are read off a mail and
// typed by hand, so by default the look-alike characters are left out.
package password

import (
	"fmt"
	"io"

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
