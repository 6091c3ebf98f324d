package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDKIMKeygenWritesAKeyConfigtestAccepts(t *testing.T) {
	dir := t.TempDir()
	for _, alg := range []string{"rsa", "ed25519"} {
		key := filepath.Join(dir, alg+".key")
		code, out, errOut := runCLI("dkim", "keygen", "-domain", "example.jp", "-selector", "zg"+alg, "-algorithm", alg, "-out", key)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", alg, code, errOut)
		}
		if !strings.Contains(out, "zg"+alg+"._domainkey.example.jp. IN TXT") || !strings.Contains(out, "k="+alg+"; p=") {
			t.Errorf("%s: no DNS record in:\n%s", alg, out)
		}
		st, err := os.Stat(key)
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: key file %v, mode %v", alg, err, st.Mode())
		}
		// Never overwrites a key that may be published.
		if code, _, _ := runCLI("dkim", "keygen", "-domain", "example.jp", "-selector", "x", "-algorithm", alg, "-out", key); code == 0 {
			t.Errorf("%s: overwrote an existing key", alg)
		}
	}
	cfg := filepath.Join(dir, "zipgate.toml")
	os.WriteFile(cfg, []byte(`
[[dkim.key]]
domain = "example.jp"
selector = "zgrsa"
algorithm = "rsa"
key_file = "`+filepath.Join(dir, "rsa.key")+`"

[[dkim.key]]
domain = "example.net"
selector = "zg"
algorithm = "rsa"
key_file = "`+filepath.Join(dir, "ed25519.key")+`"
`), 0o600)
	code, _, errOut := runCLI("configtest", "-config", cfg)
	if code == 0 || !strings.Contains(errOut, "example.net") || !strings.Contains(errOut, "holds an Ed25519 key") || strings.Contains(errOut, "example.jp (") {
		t.Fatalf("configtest: exit %d\n%s", code, errOut)
	}
}
