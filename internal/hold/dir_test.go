package hold

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDirSaveOpenRemove(t *testing.T) {
	d, err := NewDir(filepath.Join(t.TempDir(), "held"))
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(d.path); fi.Mode().Perm() != 0o700 {
		t.Errorf("held dir mode %o", fi.Mode().Perm())
	}
	if err := d.Save("abc", strings.NewReader("Subject: x\r\n\r\nbody\r\n")); err != nil {
		t.Fatal(err)
	}
	f, err := d.Open(context.Background(), "abc")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(f.Reader())
	f.Close()
	if string(b) != "Subject: x\r\n\r\nbody\r\n" || !d.Has("abc") {
		t.Fatalf("read back %q", b)
	}
	// Nothing but the message itself is left in the directory.
	entries, _ := os.ReadDir(d.path)
	if len(entries) != 1 || entries[0].Name() != "abc.eml" {
		t.Errorf("directory holds %v", entries)
	}
	if fi, _ := os.Stat(filepath.Join(d.path, "abc.eml")); fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode %o", fi.Mode().Perm())
	}
	if err := d.Remove("abc"); err != nil || d.Has("abc") {
		t.Fatalf("remove: %v", err)
	}
	if err := d.Remove("abc"); err != nil {
		t.Errorf("a second remove: %v", err)
	}
	for _, bad := range []string{"", "../x", "a/b", "a.b"} {
		if err := d.Save(bad, strings.NewReader("x")); err == nil {
			t.Errorf("saved under %q", bad)
		}
	}
}
