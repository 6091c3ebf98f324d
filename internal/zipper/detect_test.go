package zipper

import (
	stdzip "archive/zip"
	"bytes"
	"compress/flate"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
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

// rawEntry is one entry written as is by archive/zip's CreateRaw.
type rawEntry struct {
	fh   stdzip.FileHeader
	data []byte
}

// zipCryptoEntry has the shape of a ZipCrypto entry made by another tool:
// the flag, a 12-byte header and ciphertext (random bytes here) one
// header longer than the clear file, whose CRC-32 is in the directory.
func zipCryptoEntry(name string) rawEntry {
	clear := []byte("minutes of the board meeting\n")
	data := make([]byte, zipCryptoHd+len(clear))
	rand.Read(data)
	return rawEntry{stdzip.FileHeader{Name: name, Flags: flagEncrypted, Method: stdzip.Store,
		CRC32: crc32.ChecksumIEEE(clear), CompressedSize64: uint64(len(data)), UncompressedSize64: uint64(len(clear))}, data}
}

// clearEntry is a stored entry; encrypted sets the flag on the clear
// bytes ("pseudo-encryption").
func clearEntry(name string, encrypted bool) rawEntry {
	data := []byte("minutes of the board meeting\n")
	fh := stdzip.FileHeader{Name: name, Method: stdzip.Store, CRC32: crc32.ChecksumIEEE(data),
		CompressedSize64: uint64(len(data)), UncompressedSize64: uint64(len(data))}
	if encrypted {
		fh.Flags = flagEncrypted
	}
	return rawEntry{fh, data}
}

func dirEntryOf(name string) rawEntry { return rawEntry{stdzip.FileHeader{Name: name}, nil} }

// stdZip builds a zip with archive/zip from raw entries, standing in for
// zips made by other tools.
func stdZip(t testing.TB, comment string, entries ...rawEntry) []byte {
	t.Helper()
	var b bytes.Buffer
	w := stdzip.NewWriter(&b)
	for _, e := range entries {
		fh := e.fh
		f, err := w.CreateRaw(&fh)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(e.data); err != nil {
			t.Fatal(err)
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
	enc := zipCryptoEntry("secret.pdf")
	plain := clearEntry("plain.txt", false)
	dir := dirEntryOf("folder/")
	tests := []struct {
		name string
		zip  []byte
		want bool
	}{
		{"ours, AES-256", aes, true},
		{"ours, ZipCrypto", zc, true},
		{"encrypted entry and directory", stdZip(t, "", dir, enc), true},
		{"with archive comment", stdZip(t, "パスワードは別途", enc, zipCryptoEntry("b.pdf")), true},
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
	f.Add(stdZip(f, "", zipCryptoEntry("a.txt"), dirEntryOf("d/")))
	f.Add(stdZip(f, "", clearEntry("a.txt", true)))
	f.Add(prepend(stdZip(f, "", clearEntry("a.txt", false)), ourZip(f, AES256)))
	f.Fuzz(func(t *testing.T, b []byte) {
		IsEncryptedZip(bytes.NewReader(b), int64(len(b))) // must not panic
	})
}

// TestClearBytesBehindTheFlag: readers disagree on a zip whose entries
// have the encryption flag but hold clear bytes ("pseudo-encryption":
// readers that ignore the flag open it without a password), and on one
// with a clear zip stored in front of the encrypted one (a reader going
// from the front shows the clear one). Both are zipped again (issue 11,
// finding 4).
func TestClearBytesBehindTheFlag(t *testing.T) {
	clear := []byte("minutes of the board meeting\n")
	deflated := func(b []byte) []byte {
		var out bytes.Buffer
		w, _ := flate.NewWriter(&out, flate.BestCompression)
		w.Write(b)
		w.Close()
		return out.Bytes()
	}
	raw := func(method uint16, data []byte, usize int) rawEntry {
		return rawEntry{stdzip.FileHeader{Name: "secret.txt", Flags: flagEncrypted, Method: method,
			CRC32: crc32.ChecksumIEEE(clear), CompressedSize64: uint64(len(data)), UncompressedSize64: uint64(usize)}, data}
	}
	junk := make([]byte, zipCryptoHd)
	rand.Read(junk)
	aes := ourZip(t, AES256)
	tests := []struct {
		name string
		zip  []byte
	}{
		{"stored, flag on the clear bytes", stdZip(t, "", clearEntry("secret.txt", true))},
		{"stored, a header's worth of junk, then the clear bytes", stdZip(t, "", raw(stdzip.Store, append(junk, clear...), len(clear)))},
		{"deflated, flag on the clear stream", stdZip(t, "", raw(stdzip.Deflate, deflated(clear), len(clear)))},
		{"deflated, junk, then the clear stream", stdZip(t, "", raw(stdzip.Deflate, append(junk, deflated(clear)...), len(clear)))},
		{"a clear zip in front of an encrypted one", prepend(stdZip(t, "", clearEntry("secret.txt", false)), aes)},
		{"bytes between two entries", gapAfterFirstEntry(t, aes)},
		{"an unknown method", stdZip(t, "", raw(12, append(junk, clear...), len(clear)))},
	}
	for _, tt := range tests {
		if IsEncryptedZip(bytes.NewReader(tt.zip), int64(len(tt.zip))) {
			t.Errorf("%s: counted as already encrypted", tt.name)
		}
	}
}

// prepend puts front before z and moves z's offsets, as "zip -A" does
// for a self-extractor, so the directory still finds every entry.
func prepend(front, z []byte) []byte {
	out := append(bytes.Clone(front), z...)
	shiftOffsets(out, len(front), len(front))
	return out
}

// gapAfterFirstEntry inserts bytes after the first entry of z.
func gapAfterFirstEntry(t *testing.T, z []byte) []byte {
	second := bytes.Index(z[4:], []byte(sigLocal)) + 4
	if second < 4 {
		t.Fatal("one entry only")
	}
	gap := []byte("the clear text of something else")
	out := append(append(bytes.Clone(z[:second]), gap...), z[second:]...)
	shiftOffsets(out, second+len(gap), len(gap))
	return out
}

// shiftOffsets adds delta to every offset in the central directory and
// end record of b that points at or after from (in the old layout).
func shiftOffsets(b []byte, from, delta int) {
	end := bytes.LastIndex(b, []byte(sigEnd))
	dirOff := int(binary.LittleEndian.Uint32(b[end+16:]))
	binary.LittleEndian.PutUint32(b[end+16:], uint32(dirOff+delta))
	for p := dirOff + delta; p < end; {
		if off := int(binary.LittleEndian.Uint32(b[p+42:])); off+delta >= from {
			binary.LittleEndian.PutUint32(b[p+42:], uint32(off+delta))
		}
		p += dirLen + int(binary.LittleEndian.Uint16(b[p+28:])) + int(binary.LittleEndian.Uint16(b[p+30:])) + int(binary.LittleEndian.Uint16(b[p+32:]))
	}
}

// TestZipsEncryptedByOtherTools: the stricter check still knows what real
// tools make (skipped when a tool is missing).
func TestZipsEncryptedByOtherTools(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "minutes.txt")
	if err := os.WriteFile(in, textBytes(20000, 3), 0o600); err != nil {
		t.Fatal(err)
	}
	photo := filepath.Join(dir, "photo.bin") // incompressible: stored
	if err := os.WriteFile(photo, randomBytes(5000, 7), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.txt")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	makers := []struct {
		name, tool, pkg string
		args            func(out string) []string
	}{
		{"Info-ZIP zip -P (ZipCrypto)", "zip", "zip", func(out string) []string { return []string{"-q", "-j", "-P", "pw", out, in, photo, empty} }},
		{"7-Zip AES-256", "7z", "p7zip-full", func(out string) []string {
			return []string{"a", "-tzip", "-bd", "-ppw", "-mem=AES256", out, in, photo, empty}
		}},
		{"7-Zip ZipCrypto", "7z", "p7zip-full", func(out string) []string {
			return []string{"a", "-tzip", "-bd", "-ppw", "-mem=ZipCrypto", out, in, photo, empty}
		}},
		{"7-Zip AES-256 stored", "7z", "p7zip-full", func(out string) []string {
			return []string{"a", "-tzip", "-bd", "-mx=0", "-ppw", "-mem=AES256", out, in, photo}
		}},
		{"bsdtar AES-256", "bsdtar", "libarchive-tools", func(out string) []string {
			return []string{"--format", "zip", "--options", "zip:encryption=aes256", "--passphrase", "pw", "-cf", out, "-C", dir, "minutes.txt", "photo.bin"}
		}},
		{"bsdtar ZipCrypto", "bsdtar", "libarchive-tools", func(out string) []string {
			return []string{"--format", "zip", "--options", "zip:encryption=zipcrypt", "--passphrase", "pw", "-cf", out, "-C", dir, "minutes.txt", "photo.bin"}
		}},
	}
	for i, m := range makers {
		t.Run(m.name, func(t *testing.T) {
			tool(t, m.tool, m.pkg)
			out := filepath.Join(dir, fmt.Sprintf("out%d.zip", i))
			if text, code := run(t, m.tool, m.args(out)...); code != 0 {
				t.Fatalf("%s failed (%d): %s", m.tool, code, text)
			}
			b, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if !IsEncryptedZip(bytes.NewReader(b), int64(len(b))) {
				t.Errorf("a zip made by %s is not counted as encrypted", m.name)
			}
		})
	}
}
