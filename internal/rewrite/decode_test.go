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

// refBase64 is the byte-at-a-time decoder the block decoder replaced, kept
// as the definition of what the lenient decoding means: the alphabet bytes
// form quads, each decoded alone, a malformed quad dropped, a last quad
// of 2 or 3 bytes padded.
func refBase64(in []byte) []byte {
	var out, quad []byte
	var dst [3]byte
	flush := func() {
		if n, err := base64.StdEncoding.Decode(dst[:], quad); err == nil {
			out = append(out, dst[:n]...)
		}
		quad = quad[:0]
	}
	for _, c := range in {
		if isBase64(c) {
			quad = append(quad, c)
			if len(quad) == 4 {
				flush()
			}
		}
	}
	if len(quad) >= 2 {
		for len(quad) < 4 {
			quad = append(quad, '=')
		}
		flush()
	}
	return out
}

// readers hands the encoded body over in the ways a real reader may.
var readers = []struct {
	name string
	wrap func(io.Reader) io.Reader
}{
	{"whole", func(r io.Reader) io.Reader { return r }},
	{"one byte", iotest.OneByteReader},
	{"half", iotest.HalfReader},
	{"data with EOF", iotest.DataErrReader},
}

func decodeAll(t testing.TB, wrap func(io.Reader) io.Reader, in []byte) []byte {
	t.Helper()
	r, _ := decoder("base64", wrap(bytes.NewReader(in)))
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// TestBase64Blocks checks the block decoder against the reference on
// mail-shaped bodies large enough to span many blocks, and on the odd
// cases: padding inside, junk in lines, bare CR, a cut last quad.
func TestBase64Blocks(t *testing.T) {
	data := make([]byte, 200<<10)
	rand.NewChaCha8([32]byte{7}).Read(data)
	lines := func(enc string, width int, eol string) string {
		var b strings.Builder
		for len(enc) > width {
			b.WriteString(enc[:width] + eol)
			enc = enc[width:]
		}
		return b.String() + enc + eol
	}
	enc := base64.StdEncoding.EncodeToString(data)
	cases := map[string]string{
		"76 CRLF":               lines(enc, 76, "\r\n"),
		"76 LF":                 lines(enc, 76, "\n"),
		"one line":              enc,
		"odd width":             lines(enc, 61, "\r\n"),
		"spaces and tabs":       lines(enc, 76, " \t\r\n"),
		"bare CR":               lines(enc, 40, "\r"),
		"padding inside":        strings.Repeat("YWI=\r\nYQ==\r\n", 5000),
		"malformed quads":       strings.Repeat("aGVsbG8=a===\r\n*Y!Q\r\n", 3000),
		"no padding at the end": lines(strings.TrimRight(enc[:len(enc)-5], "="), 76, "\r\n"),
		"junk every few bytes":  strings.ReplaceAll(lines(enc, 76, "\r\n"), "A", "A-"),
		"empty":                 "",
		"only line breaks":      "\r\n\r\n\r\n",
	}
	for name, in := range cases {
		want := refBase64([]byte(in))
		for _, rd := range readers {
			if got := decodeAll(t, rd.wrap, []byte(in)); !bytes.Equal(got, want) {
				t.Errorf("%s, %s reads: got %d bytes, want %d (first difference at %d)",
					name, rd.name, len(got), len(want), firstDiff(got, want))
			}
		}
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func FuzzBase64(f *testing.F) {
	f.Add([]byte("aGVsbG8g\r\nd29ybGQ=\r\n"), uint8(0))
	f.Add([]byte("aGVsbG8=a===YQ==\r\nYWI=*x"), uint8(1))
	f.Add([]byte("Y\rWJj\nZA"), uint8(2))
	f.Fuzz(func(t *testing.T, in []byte, how uint8) {
		rd := readers[int(how)%len(readers)]
		if got, want := decodeAll(t, rd.wrap, in), refBase64(in); !bytes.Equal(got, want) {
			t.Fatalf("%s reads of %q: got %x, want %x", rd.name, in, got, want)
		}
	})
}

// TestBase64NoGarbage: once running, decoding allocates nothing per block.
func TestBase64NoGarbage(t *testing.T) {
	// The reader and its three buffers are made once per attachment; the
	// count must not grow with the size (a block at a time would make
	// 32 per MiB). The race detector adds one now and then, so the bound
	// has room and the check is that 4 MiB costs what 1 MiB does.
	allocs := func(size int) float64 {
		enc := []byte(base64.StdEncoding.EncodeToString(make([]byte, size)))
		src := bytes.NewReader(enc)
		buf := make([]byte, 32<<10)
		return testing.AllocsPerRun(5, func() {
			src.Reset(enc)
			r, _ := decoder("base64", src)
			if _, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{r}, buf); err != nil {
				t.Fatal(err)
			}
		})
	}
	one, four := allocs(1<<20), allocs(4<<20)
	if one > 8 || four > one+2 {
		t.Errorf("%v allocations to decode 1 MiB and %v for 4 MiB; want a few, the same for both", one, four)
	}
}
