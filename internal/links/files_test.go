package links

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/zipgate/zipgate/internal/pgtest"
	"github.com/zipgate/zipgate/internal/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func newFiles(t *testing.T) (*Files, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "links")
	d, err := NewDir(path)
	if err != nil {
		t.Fatal(err)
	}
	return &Files{Blobs: d}, path
}

func readAll(t *testing.T, f *Files, link string, n int, key []byte) ([]byte, error) {
	t.Helper()
	rcs, err := f.Open(context.Background(), link, []int{n}, key)
	if err != nil {
		return nil, err
	}
	defer rcs[0].Close()
	return io.ReadAll(rcs[0])
}

func TestFilesRoundTripEverySize(t *testing.T) {
	f, path := newFiles(t)
	key, _ := NewKey()
	for n, size := range []int{0, 1, chunkSize - 1, chunkSize, chunkSize + 1, 3*chunkSize + 5} {
		plain := make([]byte, size)
		rand.Read(plain)
		got, sum, err := f.Put("abc123", n, key, bytes.NewReader(plain))
		if err != nil || got != int64(size) || sum != sha256.Sum256(plain) {
			t.Fatalf("size %d: put %d, %v", size, got, err)
		}
		back, err := readAll(t, f, "abc123", n, key)
		if err != nil || !bytes.Equal(back, plain) {
			t.Fatalf("size %d: read back %d bytes, %v", size, len(back), err)
		}
		// Nothing of the plain text is on disk.
		raw, _ := os.ReadFile(filepath.Join(path, "abc123", itoa(n)))
		if size >= 16 && bytes.Contains(raw, plain[:16]) {
			t.Fatalf("size %d: plain text on disk", size)
		}
	}
	if err := f.Remove("abc123"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(path, "abc123")); !os.IsNotExist(err) {
		t.Fatalf("files left after Remove: %v", err)
	}
}

func itoa(n int) string { return string(rune('0' + n)) }

func TestFilesRefuseWhatWasTamperedWith(t *testing.T) {
	f, path := newFiles(t)
	key, _ := NewKey()
	plain := make([]byte, 2*chunkSize+100)
	rand.Read(plain)
	for n := range 2 {
		if _, _, err := f.Put("msg1", n, key, bytes.NewReader(plain)); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(path, "msg1", "0")
	orig, _ := os.ReadFile(file)
	other, _ := NewKey()
	if _, err := readAll(t, f, "msg1", 0, other); !errors.Is(err, ErrCorrupt) {
		t.Errorf("another key: %v", err)
	}
	chunk := 4 + saltSize + chunkSize + tagSize // the end of the first chunk
	cases := map[string][]byte{
		"a flipped byte":        flip(orig, 4+saltSize+100),
		"cut at a chunk's end":  orig[:chunk],
		"cut in a chunk":        orig[:chunk+50],
		"chunks swapped":        append(append(append([]byte{}, orig[:4+saltSize]...), orig[chunk:2*chunk-4-saltSize]...), orig[4+saltSize:chunk]...),
		"not a file of zipgate": []byte("hello"),
	}
	for name, data := range cases {
		os.WriteFile(file, data, 0o600)
		if _, err := readAll(t, f, "msg1", 0, key); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// File 1 moved into the place of file 0, or into another link.
	one, _ := os.ReadFile(filepath.Join(path, "msg1", "1"))
	os.WriteFile(file, one, 0o600)
	if _, err := readAll(t, f, "msg1", 0, key); !errors.Is(err, ErrCorrupt) {
		t.Errorf("file 1 as file 0: %v", err)
	}
	os.MkdirAll(filepath.Join(path, "msg2"), 0o700)
	os.WriteFile(filepath.Join(path, "msg2", "1"), one, 0o600)
	if _, err := readAll(t, f, "msg2", 1, key); !errors.Is(err, ErrCorrupt) {
		t.Errorf("file of another link: %v", err)
	}
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 1
	return c
}

func TestDirRefusesIDsThatLeaveIt(t *testing.T) {
	f, _ := newFiles(t)
	key, _ := NewKey()
	for _, id := range []string{"../x", "a/b", "", ".hidden", "A"} {
		if _, _, err := f.Put(id, 0, key, bytes.NewReader(nil)); err == nil {
			t.Errorf("%q accepted", id)
		}
	}
}

// Files stream through in chunks: writing and reading 64 MiB allocates
// what 1 MiB does, never the file.
func TestFilesStreamInBoundedMemory(t *testing.T) {
	f, _ := newFiles(t)
	key, _ := NewKey()
	measure := func(size int64) uint64 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		if _, _, err := f.Put("big", 0, key, io.LimitReader(zeros{}, size)); err != nil {
			t.Fatal(err)
		}
		rcs, err := f.Open(context.Background(), "big", []int{0}, key)
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(io.Discard, rcs[0])
		rcs[0].Close()
		if err != nil || n != size {
			t.Fatalf("read %d, %v", n, err)
		}
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc
	}
	small, large := measure(1<<20), measure(64<<20)
	if large > small+1<<20 {
		t.Errorf("allocations grow with the size: %d bytes for 1 MiB, %d for 64 MiB", small, large)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// With a store several nodes share, the files one node wrote download
// from another, decrypted, and what the database holds is ciphertext.
func TestSharedFilesAcrossNodes(t *testing.T) {
	url := pgtest.Shared(t).NewSchema(t)
	open := func() *store.Postgres {
		s, err := store.OpenPostgresKey(context.Background(), store.PostgresOptions{URL: url}, bytes.Repeat([]byte{1}, 32))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	a, b := open(), open()
	one, two := &Files{Blobs: Shared{B: a.Blobs(store.BlobLinks)}}, &Files{Blobs: Shared{B: b.Blobs(store.BlobLinks)}}
	key, _ := NewKey()
	plain := make([]byte, 5*chunkSize+7)
	rand.Read(plain)
	if _, _, err := one.Put("abc123", 0, key, bytes.NewReader(plain)); err != nil {
		t.Fatal(err)
	}
	back, err := readAll(t, two, "abc123", 0, key)
	if err != nil || !bytes.Equal(back, plain) {
		t.Fatalf("the other node read %d bytes, %v", len(back), err)
	}
	raw, err := b.Blobs(store.BlobLinks).Open(context.Background(), "abc123", 0)
	if err != nil {
		t.Fatal(err)
	}
	stored, _ := io.ReadAll(raw)
	raw.Close()
	if bytes.Contains(stored, plain[:32]) || len(stored) <= len(plain) {
		t.Fatal("the database holds the plain text")
	}
	if _, err := readAll(t, two, "abc123", 0, bytes.Repeat([]byte{9}, 32)); err == nil {
		t.Error("another key opened the file")
	}
	if list, _ := two.Blobs.List(); len(list) != 1 {
		t.Errorf("List = %v", list)
	}
	if err := one.Remove("abc123"); err != nil {
		t.Fatal(err)
	}
	if _, err := readAll(t, two, "abc123", 0, key); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after Remove: %v", err)
	}
	if _, err := one.Blobs.Create("../x", 0); err == nil {
		t.Error("a bad link id was taken")
	}
}

// Review of issue 14: the zip download of a link opened every file
// before it streamed, each in a transaction of its own holding one of
// the pool's 25 connections, so a link with 26 files (a message with 26
// attachments) never opened its 26th and the node had no connection
// left for mail intake, leases or /healthz. The files of a download now
// hold no connection while open: each chunk is a statement of its own.
func TestReview14ZipDownloadOfManyFilesExhaustsThePool(t *testing.T) {
	url := pgtest.Shared(t).NewSchema(t)
	st, err := store.OpenPostgresKey(context.Background(), store.PostgresOptions{URL: url}, bytes.Repeat([]byte{1}, 32))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	files := &Files{Blobs: Shared{B: st.Blobs(store.BlobLinks)}}
	key, _ := NewKey()
	const n = 26
	all := make([]int, n)
	for i := range n {
		all[i] = i
		if _, _, err := files.Put("lnk1", i, key, strings.NewReader(fmt.Sprintf("page %d", i))); err != nil {
			t.Fatal(err)
		}
	}
	// What download() does for linkZip: every file opened first, here
	// with a deadline so a regression fails instead of hanging.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	open, err := files.Open(ctx, "lnk1", all, key)
	if err != nil {
		t.Fatalf("the zip download of a %d-file link does not open: %v", n, err)
	}
	if got := st.PoolStat().AcquiredConns(); got != 0 {
		t.Errorf("%d files open hold %d connections, want 0", n, got)
	}
	if err := st.Ping(ctx); err != nil {
		t.Errorf("while one download is open the node cannot reach its store: %v", err)
	}
	for i, f := range open {
		got, err := io.ReadAll(f)
		if err != nil || string(got) != fmt.Sprintf("page %d", i) {
			t.Errorf("file %d: %q, %v", i, got, err)
		}
		f.Close()
	}
	if got := st.PoolStat().AcquiredConns(); got != 0 {
		t.Errorf("after the download %d connections are still held", got)
	}
}

// Files removed while a download streams them: on disk what is open
// reads to its end (an open descriptor); in the shared store the
// download fails at the next chunk, never passing a short file off as
// whole (the scheduler's FilesGrace is what keeps the files of a
// download in flight there). Either way the files are gone for the
// next one.
func TestFilesRemovedWhileADownloadStreams(t *testing.T) {
	shared := func(t *testing.T) *Files {
		url := pgtest.Shared(t).NewSchema(t)
		st, err := store.OpenPostgresKey(context.Background(), store.PostgresOptions{URL: url}, bytes.Repeat([]byte{1}, 32))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return &Files{Blobs: Shared{B: st.Blobs(store.BlobLinks)}}
	}
	for name, mk := range map[string]func(*testing.T) *Files{
		"dir":    func(t *testing.T) *Files { f, _ := newFiles(t); return f },
		"shared": shared,
	} {
		t.Run(name, func(t *testing.T) {
			f := mk(t)
			key, _ := NewKey()
			plain := make([][]byte, 3)
			for i := range plain {
				// Larger than a chunk of the store (256 KiB).
				plain[i] = make([]byte, 5*chunkSize+i*1000)
				rand.Read(plain[i])
				if _, _, err := f.Put("lnk1", i, key, bytes.NewReader(plain[i])); err != nil {
					t.Fatal(err)
				}
			}
			open, err := f.Open(context.Background(), "lnk1", []int{0, 1, 2}, key)
			if err != nil {
				t.Fatal(err)
			}
			first := make([]byte, 100)
			if _, err := io.ReadFull(open[0], first); err != nil {
				t.Fatal(err)
			}
			if err := f.Remove("lnk1"); err != nil {
				t.Fatal(err)
			}
			rest, err := io.ReadAll(open[0])
			switch name {
			case "dir":
				if err != nil || !bytes.Equal(append(first, rest...), plain[0]) {
					t.Errorf("file 0 after Remove: %d bytes, %v", len(first)+len(rest), err)
				}
				for i := 1; i < 3; i++ {
					got, err := io.ReadAll(open[i])
					if err != nil || !bytes.Equal(got, plain[i]) {
						t.Errorf("file %d after Remove: %d bytes, %v", i, len(got), err)
					}
				}
			case "shared":
				if !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("file 0 after Remove: %d bytes, %v; want fs.ErrNotExist", len(first)+len(rest), err)
				}
			}
			for _, o := range open {
				o.Close()
			}
			if _, err := f.Open(context.Background(), "lnk1", []int{0}, key); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("the next download: %v, want fs.ErrNotExist", err)
			}
		})
	}
}
