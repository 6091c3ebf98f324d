package policy

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Field is one field of a Policy as the admin pages and the JSON API
// read and write it: a string, "" when the rule leaves it unset (then it
// is inherited). A field added to Policy is one line in Fields, and the
// domain form, the API and the audit's "what changed" follow.
type Field struct {
	Name string // as in JSON: password_to
	// Kind is "choice" (one of Values), "duration" (15m), "list"
	// (comma separated addresses, or "none"), "number" or "text".
	Kind   string
	Values []string
	Get    func(*Policy) string
	// Set parses v into p ("" unsets); Validate checks the value.
	Set func(p *Policy, v string) error
}

// Fields are the fields of a Policy after its domain, in the order the
// pages show them.
var Fields = []Field{
	Choice("action", Actions, func(p *Policy) *Action { return &p.Action }),
	Choice("password_to", PasswordTos, func(p *Policy) *PasswordTo { return &p.PasswordTo }),
	Duration("delay", func(p *Policy) **time.Duration { return &p.Delay }),
	Choice("zip_method", ZipMethods, func(p *Policy) *string { return &p.ZipMethod }),
	Choice("filename_encoding", FilenameEncodings, func(p *Policy) *string { return &p.FilenameEncoding }),
	Choice("language", Languages, func(p *Policy) *string { return &p.Language }),
	Duration("hold", func(p *Policy) **time.Duration { return &p.Hold }),
	List("approvers", func(p *Policy) *[]string { return &p.Approvers }),
	Choice("guard", Guards, func(p *Policy) *string { return &p.Guard }),
	Duration("link_expiry", func(p *Policy) **time.Duration { return &p.LinkExpiry }),
	Number("max_downloads", func(p *Policy) **int { return &p.MaxDownloads }),
	Choice("link_auth", LinkAuths, func(p *Policy) *string { return &p.LinkAuth }),
	Text("note", func(p *Policy) *string { return &p.Note }),
}

// Choice is a field that takes one of values.
func Choice[T ~string](name string, values []string, f func(*Policy) *T) Field {
	return Field{Name: name, Kind: "choice", Values: values,
		Get: func(p *Policy) string { return string(*f(p)) },
		Set: func(p *Policy, v string) error { *f(p) = T(strings.TrimSpace(v)); return nil }}
}

// Text is a free text field.
func Text(name string, f func(*Policy) *string) Field {
	return Field{Name: name, Kind: "text",
		Get: func(p *Policy) string { return *f(p) },
		Set: func(p *Policy, v string) error { *f(p) = v; return nil }}
}

// Duration is a field like 15m, nil when unset.
func Duration(name string, f func(*Policy) **time.Duration) Field {
	return Field{Name: name, Kind: "duration",
		Get: func(p *Policy) string {
			if d := *f(p); d != nil {
				return ShortDuration(*d)
			}
			return ""
		},
		Set: func(p *Policy, v string) error {
			*f(p) = nil
			if v = strings.TrimSpace(v); v == "" {
				return nil
			}
			d, err := ParseDuration(v)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			*f(p) = &d
			return nil
		}}
}

// Number is a whole number field, nil when unset.
func Number(name string, f func(*Policy) **int) Field {
	return Field{Name: name, Kind: "number",
		Get: func(p *Policy) string {
			if n := *f(p); n != nil {
				return strconv.Itoa(*n)
			}
			return ""
		},
		Set: func(p *Policy, v string) error {
			*f(p) = nil
			if v = strings.TrimSpace(v); v == "" {
				return nil
			}
			n, err := strconv.Atoi(v)
			if err != nil {
				return fmt.Errorf("%s: %q is not a whole number", name, v)
			}
			*f(p) = &n
			return nil
		}}
}

// List is a list of addresses: nil when unset (inherited), empty
// ("none") for none at all.
func List(name string, f func(*Policy) *[]string) Field {
	return Field{Name: name, Kind: "list",
		Get: func(p *Policy) string {
			l := *f(p)
			switch {
			case l == nil:
				return ""
			case len(l) == 0:
				return "none"
			}
			return strings.Join(l, ",")
		},
		Set: func(p *Policy, v string) error {
			switch v = strings.TrimSpace(v); v {
			case "":
				*f(p) = nil
			case "none":
				*f(p) = []string{}
			default:
				var l []string
				for _, a := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' || r == '\t' }) {
					l = append(l, a)
				}
				*f(p) = l
			}
			return nil
		}}
}

// Diff says what changed from old to new, field by field ("action:
// encrypt → pass; delay: (unset) → 15m"); old nil means a new rule.
func Diff(old, new *Policy) string {
	var out []string
	for _, f := range Fields {
		var a, b string
		if old != nil {
			a = f.Get(old)
		}
		if new != nil {
			b = f.Get(new)
		}
		if a == b {
			continue
		}
		if a == "" {
			a = "(unset)"
		}
		if b == "" {
			b = "(unset)"
		}
		out = append(out, fmt.Sprintf("%s: %s → %s", f.Name, a, b))
	}
	if len(out) == 0 {
		return "no change"
	}
	return strings.Join(out, "; ")
}

// ShortDuration writes 15m rather than 15m0s.
func ShortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}
