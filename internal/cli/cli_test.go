package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = Run(args, &o, &e)
	return code, o.String(), e.String()
}

func TestConfigtest(t *testing.T) {
	if code, out, _ := runCLI("configtest"); code != 0 || !strings.Contains(out, "configuration OK") {
		t.Fatalf("defaults: exit %d, %q", code, out)
	}
	bad := filepath.Join(t.TempDir(), "bad.toml")
	os.WriteFile(bad, []byte("colour = \"blue\"\n[zip]\nmethod = \"rar\"\n[smtp]\nlisten = \"x\"\n"), 0o600)
	code, _, errOut := runCLI("configtest", "-config", bad)
	if code == 0 {
		t.Fatal("a bad config passed")
	}
	for _, want := range []string{`unknown key "colour"`, "zip.method", "smtp.listen"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("%q missing; configtest printed:\n%s", want, errOut)
		}
	}
	if code, _, errOut := runCLI("configtest", "-config", filepath.Join(t.TempDir(), "missing.toml")); code == 0 || !strings.Contains(errOut, "no such file") {
		t.Errorf("missing file: exit %d, %q", code, errOut)
	}
}

func TestServeRefusesABadFlagValue(t *testing.T) {
	code, _, errOut := runCLI("serve", "-listen", "not-an-address", "-data", t.TempDir())
	if code == 0 || !strings.Contains(errOut, "smtp.listen") {
		t.Fatalf("exit %d, %q", code, errOut)
	}
}

func TestUnknownCommand(t *testing.T) {
	if code, _, errOut := runCLI("frobnicate"); code != 2 || !strings.Contains(errOut, "Usage") {
		t.Fatalf("exit %d, %q", code, errOut)
	}
	if code, out, _ := runCLI("version"); code != 0 || !strings.HasPrefix(out, "zipgate ") {
		t.Fatalf("version: exit %d, %q", code, out)
	}
}
