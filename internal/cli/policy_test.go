package cli

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/zipgate/zipgate/internal/config"
	"github.com/zipgate/zipgate/internal/policy"
)

// storeDir is a data directory with a store in it, as a server leaves.
func storeDir(t *testing.T) string {
	t.Helper()
	cfg := config.Defaults()
	cfg.DataDir = t.TempDir()
	st, _, err := openStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	return cfg.DataDir
}

func TestPolicyCommands(t *testing.T) {
	data := storeDir(t)
	// Flags after the domain, as admins type them.
	code, out, errOut := runCLI("policy", "set", "partner.example", "-zip-method", "zipcrypto", "-filename-encoding", "cp932",
		"-delay", "15m", "-note", "Windows Explorer", "-data", data)
	if code != 0 || !strings.Contains(out, "saved") {
		t.Fatalf("set: exit %d\n%s%s", code, out, errOut)
	}
	// Flags before the domain; a second set changes only what it names.
	if code, out, errOut = runCLI("policy", "set", "-data", data, "-password-to", "sender", "Partner.Example."); code != 0 {
		t.Fatalf("set again: exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"password to sender", "zip method zipcrypto", "delay 15m", "rule partner.example"} {
		if !strings.Contains(squash(out), want) {
			t.Errorf("%q missing from:\n%s", want, out)
		}
	}
	if code, _, errOut = runCLI("policy", "set", "*", "-action", "pass", "-data", data); code != 0 {
		t.Fatalf("set *: %d %s", code, errOut)
	}

	// The store has what the server reads.
	cfg := config.Defaults()
	cfg.DataDir = data
	st, _, err := openStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p, err := st.GetPolicy(context.Background(), "partner.example")
	st.Close()
	if err != nil || p.ZipMethod != "zipcrypto" || p.FilenameEncoding != "cp932" || p.PasswordTo != policy.ToSender ||
		p.Delay == nil || *p.Delay != 15*time.Minute || p.Note != "Windows Explorer" || p.Action != "" {
		t.Fatalf("stored %+v, %v", p, err)
	}

	code, out, _ = runCLI("policy", "list", "-data", data)
	if code != 0 || !strings.Contains(out, "partner.example") || !strings.Contains(out, "zipcrypto") || !strings.Contains(out, "Windows Explorer") {
		t.Fatalf("list: exit %d\n%s", code, out)
	}

	// A bad value is a clear error and changes nothing.
	code, _, errOut = runCLI("policy", "set", "partner.example", "-action", "zip", "-delay", "soon", "-data", data)
	if code != 1 || !strings.Contains(errOut, `action: "zip" is not one of encrypt, pass, reject`) || !strings.Contains(errOut, `delay: "soon"`) ||
		!strings.Contains(errOut, "nothing changed") {
		t.Fatalf("bad values: exit %d, %q", code, errOut)
	}
	if _, out, _ = runCLI("policy", "show", "partner.example", "-data", data); !strings.Contains(squash(out), "action pass rule *") {
		// * says pass; the partner rule sets no action, so it inherits.
		t.Errorf("show after a refused set:\n%s", out)
	}
	if code, _, errOut = runCLI("policy", "set", "bad domain", "-action", "pass", "-data", data); code != 2 || !strings.Contains(errOut, "is not a domain") {
		t.Errorf("bad domain: exit %d, %q", code, errOut)
	}
	if code, _, errOut = runCLI("policy", "set", "x.example", "-data", data); code != 1 || !strings.Contains(errOut, "nothing to set") {
		t.Errorf("set without fields: exit %d, %q", code, errOut)
	}

	// Unsetting a field: it is inherited again.
	if code, _, _ = runCLI("policy", "set", "*", "-action", "default", "-data", data); code != 0 {
		t.Fatal("unset the action of *")
	}
	if code, _, _ = runCLI("policy", "set", "partner.example", "-zip-method", "default", "-data", data); code != 0 {
		t.Fatal("unset")
	}
	if _, out, _ = runCLI("policy", "show", "partner.example", "-data", data); !strings.Contains(squash(out), "zip method aes256 configuration") {
		t.Errorf("zip method after unsetting:\n%s", out)
	}

	if code, out, _ = runCLI("policy", "delete", "partner.example", "-data", data); code != 0 || !strings.Contains(out, "deleted") {
		t.Fatalf("delete: exit %d %s", code, out)
	}
	if code, _, errOut = runCLI("policy", "delete", "partner.example", "-data", data); code != 1 || !strings.Contains(errOut, "no policy for partner.example") {
		t.Fatalf("delete again: exit %d %q", code, errOut)
	}
}

func TestPolicyTest(t *testing.T) {
	data := storeDir(t)
	conf := filepath.Join(t.TempDir(), "zipgate.toml")
	os.WriteFile(conf, []byte("[policy]\nlocal_domains = [\"example.co.jp\", \"*.example.co.jp\"]\n"), 0o600)
	for _, args := range [][]string{
		{"partner.example", "-zip-method", "zipcrypto"},
		{"pass.example", "-action", "pass"},
		{"ng.example", "-action", "reject"},
	} {
		if code, _, errOut := runCLI(append([]string{"policy", "set", "-config", conf, "-data", data}, args...)...); code != 0 {
			t.Fatal(errOut)
		}
	}
	code, out, errOut := runCLI("policy", "test", "-config", conf, "-data", data, "-from", "alice@example.co.jp",
		"-to", "bob@partner.example", "-to", "carol@osaka.example.co.jp", "-to", "dave@pass.example,erin@ng.example")
	if code != 0 {
		t.Fatalf("exit %d %s", code, errOut)
	}
	for _, want := range []string{
		"Sender alice@example.co.jp: local",
		"bob@partner.example\n decided by rule partner.example",
		"zip method zipcrypto rule partner.example",
		"carol@osaka.example.co.jp\n pass: internal recipient",
		"dave@pass.example\n decided by rule pass.example\n action pass",
		"erin@ng.example\n decided by rule ng.example\n action reject",
	} {
		if !strings.Contains(squash(out), want) {
			t.Errorf("%q missing from:\n%s", want, out)
		}
	}
	_, out, _ = runCLI("policy", "test", "-config", conf, "-data", data, "-from", "someone@internet.example", "-to", "bob@partner.example")
	if !strings.Contains(out, "not local") || !strings.Contains(out, "pass: sender not local") {
		t.Errorf("sender not local:\n%s", out)
	}
}

func TestPolicyRefusesAMissingStore(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nothing-here")
	code, _, errOut := runCLI("policy", "set", "partner.example", "-action", "pass", "-data", missing)
	if code != 1 || !strings.Contains(errOut, "no zipgate store in "+missing) {
		t.Fatalf("exit %d, %q", code, errOut)
	}
	if _, err := os.Stat(missing); err == nil {
		t.Fatal("policy set made a store")
	}
}

// squash makes runs of spaces one, so the checks do not depend on how
// wide the columns are.
func squash(s string) string { return regexp.MustCompile(` +`).ReplaceAllString(s, " ") }

func TestPolicyHoldApproversGuard(t *testing.T) {
	data := storeDir(t)
	code, out, errOut := runCLI("policy", "set", "bank.example", "-hold", "5m", "-approvers", "boss@example.co.jp, Lead@example.co.jp",
		"-guard", "reject", "-data", data)
	if code != 0 {
		t.Fatalf("set: %d %s", code, errOut)
	}
	for _, want := range []string{"hold 5m rule bank.example", "approvers boss@example.co.jp,lead@example.co.jp rule bank.example",
		"To/Cc guard reject rule bank.example"} {
		if !strings.Contains(squash(out), want) {
			t.Errorf("%q missing from:\n%s", want, out)
		}
	}
	// "none" on a subdomain rule: no approver there, although *. inherits.
	runCLI("policy", "set", "*.example", "-approvers", "boss@example.co.jp", "-data", data)
	runCLI("policy", "set", "press.example", "-approvers", "none", "-data", data)
	if _, out, _ := runCLI("policy", "show", "press.example", "-data", data); !strings.Contains(squash(out), "approvers - rule press.example") {
		t.Errorf("approvers none:\n%s", out)
	}
	if _, out, _ := runCLI("policy", "list", "-data", data); !strings.Contains(out, "none") || !strings.Contains(out, "reject") {
		t.Errorf("list:\n%s", out)
	}
	code, _, errOut = runCLI("policy", "set", "bank.example", "-approvers", "boss", "-hold", "soon", "-guard", "warn", "-data", data)
	for _, want := range []string{`approvers: "boss"`, `hold: "soon"`, `guard: "warn"`, "nothing changed"} {
		if code != 1 || !strings.Contains(errOut, want) {
			t.Errorf("bad values: exit %d, %q lacks %q", code, errOut, want)
		}
	}
}

func TestPolicyLinkFlags(t *testing.T) {
	data := storeDir(t)
	code, out, errOut := runCLI("policy", "set", "partner.example", "-action", "link", "-link-expiry", "7d",
		"-max-downloads", "5", "-data", data)
	if code != 0 {
		t.Fatalf("set: exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"action link rule partner.example", "link expiry 168h rule partner.example",
		"max downloads 5 rule partner.example", "link opens with password configuration", "password to recipient"} {
		if !strings.Contains(squash(out), want) {
			t.Errorf("%q missing from:\n%s", want, out)
		}
	}
	if strings.Contains(out, "zip method") {
		t.Errorf("a link rule shows zip settings:\n%s", out)
	}
	// otp: no password mail, so no password recipient nor delay shown.
	if code, out, errOut = runCLI("policy", "set", "partner.example", "-link-auth", "otp", "-data", data); code != 0 {
		t.Fatalf("set otp: exit %d\n%s", code, errOut)
	}
	if !strings.Contains(squash(out), "link opens with otp rule partner.example") || strings.Contains(out, "password to") {
		t.Errorf("otp:\n%s", out)
	}
	code, _, errOut = runCLI("policy", "set", "partner.example", "-link-expiry", "soon", "-max-downloads", "-1",
		"-link-auth", "sms", "-data", data)
	if code != 1 || !strings.Contains(errOut, `link_expiry: "soon"`) || !strings.Contains(errOut, "max_downloads: -1") ||
		!strings.Contains(errOut, `link_auth: "sms"`) {
		t.Errorf("bad values: exit %d, %q", code, errOut)
	}
	if _, out, _ = runCLI("policy", "list", "-data", data); !strings.Contains(out, "168h/5/otp") {
		t.Errorf("list:\n%s", out)
	}
	// "default" unsets: the configuration's 7 days, no limit.
	if code, out, errOut = runCLI("policy", "set", "partner.example", "-link-expiry", "default", "-max-downloads", "default",
		"-data", data); code != 0 {
		t.Fatalf("unset: %d %s", code, errOut)
	}
	if s := squash(out); !strings.Contains(s, "link expiry 168h configuration") || !strings.Contains(s, "max downloads no limit configuration") {
		t.Errorf("unset:\n%s", out)
	}
}
