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

func TestPolicySection(t *testing.T) {
	c, err := Load(writeFile(t, `
[policy]
local_domains = ["Example.co.jp", "*.example.co.jp"]
[notice]
language = "ja"
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	pc := c.PolicyConfig()
	if !pc.LocalDomains.Contains("example.co.jp") || !pc.LocalDomains.Contains("osaka.example.co.jp") || pc.LocalDomains.Contains("example.com") {
		t.Errorf("local domains %v", pc.LocalDomains)
	}
	if pc.Defaults.Language != "ja" || pc.Defaults.Delay != 10*time.Minute || pc.Defaults.ZipMethod != "aes256" {
		t.Errorf("defaults %+v", pc.Defaults)
	}

	c = Defaults()
	c.Policy.LocalDomains = []string{"example.co.jp", "bad domain", "*"}
	c.Notice.Language = "fr"
	err = c.Validate()
	for _, want := range []string{`policy.local_domains: "bad domain" is not a domain`, `notice.language: "fr"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q missing from:\n%v", want, err)
		}
	}
}
