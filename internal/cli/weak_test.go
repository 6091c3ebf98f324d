package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigtestWeakSettings: configtest refuses a password setting under
// 64 bits and says how many it gives, and warns about ZipCrypto (issue
// 11, finding 9).
func TestConfigtestWeakSettings(t *testing.T) {
	write := func(text string) string {
		p := filepath.Join(t.TempDir(), "zipgate.toml")
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	code, _, errOut := runCLI("configtest", "-config", write("[password]\nlength = 8\ndigits = 8\n"))
	if code != 1 || !strings.Contains(errOut, "gives 24 bits of entropy") || !strings.Contains(errOut, "64 or more") {
		t.Errorf("8 digits: exit %d, %q; want 1 and the bits it gives", code, errOut)
	}
	code, out, errOut := runCLI("configtest", "-config", write("[zip]\nmethod = \"zipcrypto\"\n"))
	if code != 0 || !strings.Contains(out, "configuration OK") || !strings.Contains(errOut, "warning: zip.method is zipcrypto") || !strings.Contains(errOut, "bkcrack") {
		t.Errorf("zipcrypto: exit %d, stdout %q, stderr %q; want OK and a warning", code, out, errOut)
	}
	code, _, errOut = runCLI("configtest", "-config", write("[store]\nurl = \"postgres://zipgate:Hunter2@db.example/zipgate\"\n"))
	if code != 0 || !strings.Contains(errOut, "warning: store.url carries the database password") || strings.Contains(errOut, "Hunter2") {
		t.Errorf("password in store.url: exit %d, stderr %q; want OK, a warning, and never the password", code, errOut)
	}
	// store.url set, but the embedded store of a single gateway still in
	// data_dir: its work would wait there unseen.
	data := t.TempDir()
	if err := os.WriteFile(filepath.Join(data, "zipgate.db"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = runCLI("configtest", "-config", write("data_dir = \""+data+"\"\n[store]\nurl = \"postgres://zipgate@db.example/zipgate\"\n"))
	if code != 0 || !strings.Contains(errOut, "data_dir still holds the embedded store") || !strings.Contains(errOut, "zipgate store migrate") {
		t.Errorf("store.url beside a zipgate.db: exit %d, stderr %q; want OK and a warning naming store migrate", code, errOut)
	}
	if code, _, errOut := runCLI("configtest"); code != 0 || errOut != "" {
		t.Errorf("defaults: exit %d, stderr %q; want 0 and no warning", code, errOut)
	}
}
