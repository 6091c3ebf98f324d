package hold

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"io/fs"
	"os"
	"strings"
	"testing"

	"github.com/zipgate/zipgate/internal/pgtest"
	"github.com/zipgate/zipgate/internal/store"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.StopShared()
	os.Exit(code)
}

// With a store several nodes share, a message one node held is read by
// another (which sends it after the first died), whole, through a spool
// that keeps memory bounded; and it goes when removed.
func TestSharedDirAcrossNodes(t *testing.T) {
	url := pgtest.Shared(t).NewSchema(t)
	open := func() *store.Postgres {
		s, err := store.OpenPostgresKey(context.Background(), store.PostgresOptions{URL: url}, bytes.Repeat([]byte{1}, 32))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	tmp := t.TempDir()
	one := NewSharedDir(open().Blobs(store.BlobHeld), tmp)
	two := NewSharedDir(open().Blobs(store.BlobHeld), tmp)

	msg := make([]byte, 3<<20) // larger than what Open keeps in memory
	rand.Read(msg)
	msg = append([]byte("Subject: held\r\n\r\n"), msg...)
	if err := one.Save("abc", bytes.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	if !two.Has("abc") || two.Has("abd") {
		t.Fatal("Has does not see what the other node held")
	}
	f, err := two.Open(context.Background(), "abc")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(f.Reader())
	onDisk := f.OnDisk()
	f.Close()
	if !bytes.Equal(got, msg) {
		t.Fatalf("the other node read %d bytes, want the %d held", len(got), len(msg))
	}
	if !onDisk {
		t.Error("a 3 MiB message was read into memory, not spooled")
	}
	if err := two.Remove("abc"); err != nil || one.Has("abc") {
		t.Fatalf("remove: %v", err)
	}
	if err := one.Remove("abc"); err != nil {
		t.Errorf("a second remove: %v", err)
	}
	if _, err := one.Open(context.Background(), "abc"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a removed message: %v, want fs.ErrNotExist", err)
	}
	for _, bad := range []string{"", "../x", "a/b", "a.b"} {
		if err := one.Save(bad, strings.NewReader("x")); err == nil {
			t.Errorf("saved under %q", bad)
		}
	}
}
