package spool

import (
	"bytes"
	"crypto/rand"
	"io"
	"os"
	"testing"
)

func TestSpoolKeepsBytesAcrossTheThreshold(t *testing.T) {
	dir := t.TempDir()
	for _, size := range []int{0, 1, 1023, 1024, 1025, 100_000} {
		want := make([]byte, size)
		rand.Read(want)
		s := New(dir, 1024)
		// Odd-sized writes cross the threshold mid-write.
		for off := 0; off < size; off += 333 {
			end := min(off+333, size)
			if _, err := s.Write(want[off:end]); err != nil {
				t.Fatal(err)
			}
		}
		if s.OnDisk() != (size > 1024) {
			t.Errorf("size %d: OnDisk = %v", size, s.OnDisk())
		}
		got, err := io.ReadAll(s.Reader())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) || s.Size() != int64(size) {
			t.Fatalf("size %d: read back %d bytes, differ", size, len(got))
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// The temp files are unlinked as soon as they are made.
	left, _ := os.ReadDir(dir)
	if len(left) != 0 {
		t.Fatalf("spool left %d files in %s", len(left), dir)
	}
}
