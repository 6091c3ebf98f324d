package policy

import (
	"fmt"
	"sort"
	"strings"

	"golang.org/x/net/idna"
)

// Domain returns the domain of an address, normalized (NormalizeDomain);
// "" when it has none (RCPT TO:<postmaster>, the null sender).
func Domain(addr string) string {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return ""
	}
	return NormalizeDomain(addr[i+1:])
}

// NormalizeDomain makes the forms one domain is written in compare
// equal: case, a trailing dot, and Unicode (U-label) against ASCII
// (A-label, xn--) spelling. A name IDNA refuses keeps its lower-case
// spelling: it can still match an exact rule or "*".
func NormalizeDomain(d string) string {
	d = strings.TrimSuffix(strings.TrimSpace(d), ".")
	if d == "" || strings.HasPrefix(d, "[") { // an address literal
		return strings.ToLower(d)
	}
	if a, err := idna.Lookup.ToASCII(d); err == nil && a != "" {
		return a
	}
	return strings.ToLower(d)
}

// NormalizePattern checks and normalizes a rule's domain pattern: "*",
// "*.domain" or "domain". Admins type these, so it is strict: what IDNA
// refuses is an error.
func NormalizePattern(p string) (string, error) {
	p = strings.TrimSpace(p)
	if p == "*" {
		return p, nil
	}
	prefix := ""
	if strings.HasPrefix(p, "*.") {
		prefix, p = "*.", p[2:]
	}
	p = strings.TrimSuffix(p, ".")
	if p == "" || strings.ContainsAny(p, "*@ \t/\\") {
		return "", fmt.Errorf(errPatternTemplate, prefix+p)
	}
	a, err := idna.Lookup.ToASCII(p)
	if err != nil || !strings.Contains(a, ".") && prefix != "" {
		return "", fmt.Errorf(errPatternTemplate, prefix+p)
	}
	return prefix + a, nil
}

// Matches reports whether the normalized domain d falls under pattern.
func Matches(pattern, d string) bool {
	switch {
	case pattern == "*":
		return true
	case strings.HasPrefix(pattern, "*."):
		return strings.HasSuffix(d, pattern[1:]) && len(d) > len(pattern)-1
	}
	return d == pattern
}

// specificity orders patterns: an exact domain before any wildcard, a
// longer "*.suffix" before a shorter one, "*" last.
func specificity(pattern string) int {
	switch {
	case pattern == "*":
		return 0
	case strings.HasPrefix(pattern, "*."):
		return 1 + strings.Count(pattern, ".")
	}
	return 1 << 20
}

// Rules are the stored policies, ready for matching.
type Rules struct {
	list []Policy // most specific first
}

// NewRules sorts policies for matching. Their domains must be
// normalized, as the store keeps them.
func NewRules(ps []Policy) Rules {
	list := append([]Policy(nil), ps...)
	sort.SliceStable(list, func(i, j int) bool {
		si, sj := specificity(list[i].Domain), specificity(list[j].Domain)
		if si != sj {
			return si > sj
		}
		return list[i].Domain < list[j].Domain
	})
	return Rules{list: list}
}

// Chain returns the rules that apply to the normalized domain d, the
// most specific first: the first is the rule that decides, the others
// fill in the fields it leaves unset.
func (r Rules) Chain(d string) []Policy {
	var out []Policy
	for _, p := range r.list {
		if Matches(p.Domain, d) {
			out = append(out, p)
		}
	}
	return out
}

// DomainSet is a list of patterns, such as policy.local_domains.
type DomainSet []string

// NewDomainSet normalizes patterns; it reports the first bad one.
func NewDomainSet(patterns []string) (DomainSet, error) {
	out := make(DomainSet, 0, len(patterns))
	for _, p := range patterns {
		n, err := NormalizePattern(p)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

// Contains reports whether the normalized domain d matches a pattern.
func (s DomainSet) Contains(d string) bool {
	for _, p := range s {
		if Matches(p, d) {
			return true
		}
	}
	return false
}
