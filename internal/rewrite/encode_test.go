package rewrite

import (
	"bytes"
	"encoding/base64"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"
)

// TestBase64Lines: whatever the write sizes, the output is the base64 of
// the input in 76-character lines joined by CRLF, without a last CRLF.
func TestBase64Lines(t *testing.T) {
	data := make([]byte, 100<<10)
	rand.NewChaCha8([32]byte{9}).Read(data)
	for _, size := range []int{0, 1, 2, 3, 56, 57, 58, 114, 1000, 23940, 23941, len(data)} {
		in := data[:size]
		enc := base64.StdEncoding.EncodeToString(in)
		var lines []string
		for len(enc) > 76 {
			lines, enc = append(lines, enc[:76]), enc[76:]
		}
		if enc != "" {
			lines = append(lines, enc)
		}
		want := strings.Join(lines, "\r\n")
		for _, how := range []string{"one write", "7-byte writes", "io.Copy", "one-byte reads"} {
			var out bytes.Buffer
			w := newBase64Lines(&out)
			var err error
			switch how {
			case "one write":
				_, err = w.Write(in)
			case "7-byte writes":
				for p := in; len(p) > 0 && err == nil; p = p[min(7, len(p)):] {
					_, err = w.Write(p[:min(7, len(p))])
				}
			case "io.Copy":
				_, err = io.Copy(w, bytes.NewReader(in))
			case "one-byte reads":
				_, err = io.Copy(w, iotest.OneByteReader(bytes.NewReader(in)))
			}
			if err == nil {
				err = w.Close()
			}
			if err != nil {
				t.Fatal(err)
			}
			if out.String() != want {
				t.Errorf("%d bytes, %s: output differs (%d bytes, want %d)", size, how, out.Len(), len(want))
			}
		}
	}
}

// TestBase64LinesBlocks: the writer below gets 32 KiB blocks, not lines.
func TestBase64LinesBlocks(t *testing.T) {
	var c countingWriter
	w := newBase64Lines(&c)
	if _, err := io.Copy(w, bytes.NewReader(make([]byte, 1<<20))); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if c.writes > 45 {
		t.Errorf("%d writes for 1 MiB (1.4 MB of base64), want at most 45", c.writes)
	}
}

type countingWriter struct{ writes int }

func (c *countingWriter) Write(p []byte) (int, error) { c.writes++; return len(p), nil }
