package zipper

import (
	stdzip "archive/zip"
	"bytes"
	"encoding/binary"
	"testing"
)

// ourZip is a zip this package wrote, with two entries.
func ourZip(t testing.TB, m Method) []byte {
	t.Helper()
	var b bytes.Buffer
	z := NewWriter(&b, Options{Method: m, Password: password, ModTime: modTime})
	for _, n := range []string{"a.txt", "b.txt"} {
		if _, err := z.Add(n, bytes.NewReader(textBytes(1000, 1))); err != nil {
			t.Fatal(err)
		}
	}
	if err := z.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// stdZip builds a zip with archive/zip; raw entries with flag bit 0 stand
// in for encrypted ones made by other tools.
func stdZip(t *testing.T, comment string, entries ...stdzip.FileHeader) []byte {
	t.Helper()
	var b bytes.Buffer
	w := stdzip.NewWriter(&b)
	for _, fh := range entries {
		fh.CompressedSize64 = 3
		fh.UncompressedSize64 = 3
		if fh.Name[len(fh.Name)-1] == '/' {
			fh.CompressedSize64, fh.UncompressedSize64 = 0, 0
		}
		f, err := w.CreateRaw(&fh)
		if err != nil {
			t.Fatal(err)
		}
		if fh.CompressedSize64 > 0 {
			_, _ = f.Write([]byte("xyz"))
		}
	}
	if err := w.SetComment(comment); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// clearFlag clears bit 0 of the n-th record with signature sig.
func clearFlag(b []byte, sig string, n int) []byte {
	b = bytes.Clone(b)
	off := 0
	for i := 0; ; i++ {
		off += bytes.Index(b[off:], []byte(sig))
		if i == n {
			binary.LittleEndian.PutUint16(b[off+map[string]int{sigLocal: 6, sigDir: 8}[sig]:], 0)
			return b
		}
		off++
	}
}

func TestIsEncryptedZip(t *testing.T) {
	aes, zc := ourZip(t, AES256), ourZip(t, ZipCrypto)
	enc := stdzip.FileHeader{Name: "secret.pdf", Flags: flagEncrypted}
	plain := stdzip.FileHeader{Name: "plain.txt"}
	dir := stdzip.FileHeader{Name: "folder/"}
	tests := []struct {
		name string
		zip  []byte
		want bool
	}{
		{"ours, AES-256", aes, true},
		{"ours, ZipCrypto", zc, true},
		{"encrypted entry and directory", stdZip(t, "", dir, enc), true},
		{"with archive comment", stdZip(t, "パスワードは別途", enc, enc), true},
		{"plain", stdZip(t, "", plain), false},
		{"encrypted and plain", stdZip(t, "", enc, plain), false},
		{"directory only", stdZip(t, "", dir), false},
		{"no entries", stdZip(t, ""), false},
		{"directory says plain", clearFlag(aes, sigDir, 1), false},
		{"local header says plain", clearFlag(aes, sigLocal, 1), false},
		{"truncated", aes[:len(aes)-1], false},
		{"data before the zip", append([]byte("MZ self-extractor"), aes...), false},
		{"not a zip", textBytes(5000, 1), false},
		{"tiny", []byte("PK"), false},
		{"empty", nil, false},
	}
	for _, tt := range tests {
		if got := IsEncryptedZip(bytes.NewReader(tt.zip), int64(len(tt.zip))); got != tt.want {
			t.Errorf("%s: IsEncryptedZip = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func FuzzIsEncryptedZip(f *testing.F) {
	f.Add([]byte("PK\x05\x06" + string(make([]byte, 18))))
	f.Add(ourZip(f, AES256))
	f.Add(ourZip(f, ZipCrypto))
	f.Fuzz(func(t *testing.T, b []byte) {
		IsEncryptedZip(bytes.NewReader(b), int64(len(b))) // must not panic
	})
}
