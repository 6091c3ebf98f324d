package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zipgate/zipgate/internal/config"
	"github.com/zipgate/zipgate/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// sharedConfig writes the configuration of a node on a fresh PostgreSQL
// database: store.url without the password, which is in password_file;
// each node its own data_dir, all the same key file.
func sharedConfig(t *testing.T, c *pgtest.Cluster, db, keyFile string) string {
	t.Helper()
	dir := t.TempDir()
	pw := filepath.Join(dir, "pgpass")
	if err := os.WriteFile(pw, []byte(c.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "zipgate.toml")
	text := "data_dir = \"" + filepath.Join(dir, "data") + "\"\n[release]\nkey_file = \"" + keyFile + "\"\n" +
		"[store]\nurl = \"" + c.BareURL(db) + "\"\npassword_file = \"" + pw + "\"\n"
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// The admin commands work on the shared store from any node: a rule set
// on one is seen on the other; on a database no server made yet they
// refuse, as they do on an empty data_dir.
func TestAdminCommandsOnASharedStore(t *testing.T) {
	c := pgtest.Shared(t)
	db := c.NewDatabase(t)
	key := filepath.Join(t.TempDir(), "zipgate.key")
	one, two := sharedConfig(t, c, db, key), sharedConfig(t, c, db, key)

	code, _, errOut := runCLI("policy", "list", "-config", one)
	if code != 1 || !strings.Contains(errOut, "no zipgate store") {
		t.Fatalf("on an empty database: exit %d, %q", code, errOut)
	}
	if strings.Contains(errOut, c.Password) {
		t.Fatalf("the error shows the database password: %q", errOut)
	}

	// What serve does first: open (and make) the store, and the key.
	cfg, err := config.Load(one)
	if err != nil {
		t.Fatal(err)
	}
	st, _, err := openStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()

	if code, out, errOut := runCLI("policy", "set", "partner.example", "-zip-method", "zipcrypto", "-config", one); code != 0 {
		t.Fatalf("set on node one: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut := runCLI("policy", "list", "-config", two)
	if code != 0 || !strings.Contains(out, "partner.example") || !strings.Contains(out, "zipcrypto") {
		t.Fatalf("list on node two: exit %d\n%s%s", code, out, errOut)
	}

	// A node without the key file is told to copy it, and makes none.
	missing := filepath.Join(t.TempDir(), "zipgate.key")
	code, _, errOut = runCLI("policy", "list", "-config", sharedConfig(t, c, db, missing))
	if code != 1 || !strings.Contains(errOut, "no key file") || !strings.Contains(errOut, "copy the key file") {
		t.Fatalf("without the key file: exit %d, %q", code, errOut)
	}
	if _, err := os.Stat(missing); err == nil {
		t.Fatal("an admin command made a key file")
	}
}
