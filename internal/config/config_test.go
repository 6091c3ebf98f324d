package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDefaultsAreValid(t *testing.T) {
	if err := Defaults().Validate(); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "zipgate.toml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadOverridesDefaults(t *testing.T) {
	c, err := Load(writeFile(t, `
data_dir = "/var/lib/zipgate"
[smtp]
listen = "127.0.0.1:11025"
timeout = "90s"
[zip]
method = "zipcrypto"
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "/var/lib/zipgate" || c.SMTP.Listen != "127.0.0.1:11025" || c.SMTP.Timeout.D() != 90*time.Second || c.Zip.Method != "zipcrypto" {
		t.Fatalf("not applied: %+v", c)
	}
	if c.Relay.NextHop != "127.0.0.1:10026" {
		t.Fatalf("a default was lost: %q", c.Relay.NextHop)
	}
}

func TestUnknownKeysAreErrors(t *testing.T) {
	_, err := Load(writeFile(t, "data_dri = \"x\"\n[smtp]\nlisten_addr = \"x\"\n"))
	if err == nil {
		t.Fatal("want an error")
	}
	for _, want := range []string{`unknown key "data_dri"`, `unknown key "smtp.listen_addr"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q missing from:\n%v", want, err)
		}
	}
}

func TestValidateReportsEveryProblemAtOnce(t *testing.T) {
	c := Defaults()
	c.SMTP.Listen = "nonsense"
	c.Zip.Method = "rot13"
	c.Password.Length = 4
	c.SMTP.AllowedNetworks = []string{"10.0.0.0/33"}
	err := c.Validate()
	if err == nil {
		t.Fatal("want problems")
	}
	for _, want := range []string{"smtp.listen", "zip.method", "password.length", "smtp.allowed_networks"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q missing from:\n%v", want, err)
		}
	}
}

// TestPasswordEntropy: password settings under 64 bits are refused with
// the bits they give (issue 11, finding 9); the defaults pass.
func TestPasswordEntropy(t *testing.T) {
	cases := []struct {
		name    string
		set     func(*Password)
		problem string // "" when valid
	}{
		{"defaults", func(*Password) {}, ""},
		{"8 digits", func(p *Password) { p.Length, p.Digits = 8, 8 }, "gives 24 bits"},
		{"10 letters", func(p *Password) { p.Length, p.Digits = 10, 0 }, "gives 56 bits"},
		{"11 with look-alikes", func(p *Password) { p.Length, p.Digits, p.AllowAmbiguous = 11, 0, true }, "gives 63 bits"},
		{"12 with look-alikes", func(p *Password) { p.Length, p.Digits, p.AllowAmbiguous = 12, 0, true }, ""},
		{"16 digits", func(p *Password) { p.Length, p.Digits = 16, 16 }, "gives 48 bits"},
		{"22 digits", func(p *Password) { p.Length, p.Digits = 22, 22 }, ""},
		{"12 with 3 digits and 2 symbols", func(p *Password) { p.Length, p.Digits, p.Symbols = 12, 3, 2 }, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := Defaults()
			tc.set(&c.Password)
			err := c.Validate()
			switch {
			case tc.problem == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.problem != "" && (err == nil || !strings.Contains(err.Error(), tc.problem) || !strings.Contains(err.Error(), "64 or more")):
				t.Fatalf("got %v, want a problem saying %q", err, tc.problem)
			}
		})
	}
}
