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
	c.Zip.TimeZone = "Mars/Olympus_Mons"
	c.Password.Length = 4
	c.SMTP.AllowedNetworks = []string{"10.0.0.0/33"}
	err := c.Validate()
	if err == nil {
		t.Fatal("want problems")
	}
	for _, want := range []string{"smtp.listen", "zip.method", "zip.time_zone", "password.length", "smtp.allowed_networks"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q missing from:\n%v", want, err)
		}
	}
}

func TestZipTimeZone(t *testing.T) {
	c, err := Load(writeFile(t, "[zip]\ntime_zone = \"Asia/Tokyo\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 27, 15, 0, 0, 0, time.UTC).In(c.Zip.Location())
	if at.Hour() != 0 || at.Day() != 28 {
		t.Errorf("15:00 UTC in zip.time_zone Asia/Tokyo is %v, want 00:00 the next day", at)
	}
	if Defaults().Zip.Location() != time.Local {
		t.Error("without zip.time_zone the zone is not the local one")
	}
}
