package policy

import (
	"strings"
	"testing"
)

// Every field reads back what was written, and an empty value unsets it.
func TestFieldsRoundTripAndDiff(t *testing.T) {
	in := map[string]string{"action": "pass", "password_to": "sender", "delay": "15m", "zip_method": "zipcrypto",
		"filename_encoding": "cp932", "language": "ja", "hold": "1h30m", "approvers": "boss@example.co.jp,lead@example.co.jp",
		"guard": "reject", "note": "Explorer only", "link_expiry": "36h", "max_downloads": "5", "link_auth": "otp"}
	p := &Policy{Domain: "partner.example"}
	for _, f := range Fields {
		v, ok := in[f.Name]
		if !ok {
			t.Fatalf("field %s has no test value", f.Name)
		}
		if err := f.Set(p, v); err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
	}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, f := range Fields {
		if got := f.Get(p); got != in[f.Name] {
			t.Errorf("%s: read back %q, wrote %q", f.Name, got, in[f.Name])
		}
	}
	old := *p
	old.Approvers = append([]string(nil), p.Approvers...)
	for _, f := range Fields {
		if f.Name == "delay" || f.Name == "approvers" {
			f.Set(p, "")
		}
	}
	if d := Diff(&old, p); d != "delay: 15m → (unset); approvers: boss@example.co.jp,lead@example.co.jp → (unset)" {
		t.Errorf("Diff = %q", d)
	}
	if d := Diff(nil, &Policy{Action: Pass}); d != "action: (unset) → pass" {
		t.Errorf("Diff of a new rule = %q", d)
	}
	var bad Policy
	for _, f := range Fields {
		if f.Kind == "duration" {
			if err := f.Set(&bad, "10 minutes"); err == nil || !strings.Contains(err.Error(), f.Name) {
				t.Errorf("%s took 10 minutes: %v", f.Name, err)
			}
		}
	}
	approvers := Fields[7]
	approvers.Set(&bad, "none")
	if bad.Approvers == nil || len(bad.Approvers) != 0 || approvers.Get(&bad) != "none" {
		t.Errorf("none: %#v", bad.Approvers)
	}
}
