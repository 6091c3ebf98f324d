package zipper

import (
	stdzip "archive/zip"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	aeszip "github.com/alexmullins/zip"
)

const password = "Tr0ub4dor&3-zipgate"

var jst = time.FixedZone("JST", 9*3600)

// modTime is written as the DOS time 2026-11-03 14:25:36 (wall clock).
var modTime = time.Date(2026, 11, 3, 14, 25, 37, 0, jst)

// input is one attachment and what the zip should hold for it.
type input struct {
	name   string // as the mail gave it
	data   []byte
	stored string // expected stored name
	store  bool   // expected Store (true) or Deflate with AES-256
}

// stored is the method an entry must get: ZipCrypto deflates everything
// but an empty file, so that no known file header lies open to a
// known-plaintext attack.
func (f input) isStored(m Method) bool {
	return len(f.data) == 0 || m == AES256 && f.store
}

func inputs() []input {
	jpeg := withPrefix("\xFF\xD8\xFF\xE0\x00\x10JFIF\x00", randomBytes(100<<10, 3))
	return []input{
		{"empty.txt", nil, "empty.txt", true},
		{"one.txt", []byte("x"), "one.txt", false},
		{"64k.txt", textBytes(64<<10, 4), "64k.txt", false},
		{"random.bin", randomBytes(1<<20, 5), "random.bin", true},
		{"text.txt", textBytes(1<<20, 6), "text.txt", false},
		{"写真.jpg", jpeg, "写真.jpg", true},
		{"請求書_2026年11月.pdf", withPrefix("%PDF-1.7\n", randomBytes(100<<10, 7)), "請求書_2026年11月.pdf", true},
		{"見積もり (1).xlsx", withPrefix("PK\x03\x04", randomBytes(20<<10, 8)), "見積もり (1).xlsx", true},
		{"a.pdf", []byte("first a.pdf"), "a.pdf", false},
		{"A.PDF", []byte("second, other case"), "A (2).PDF", false},
		{"dir/a.pdf", []byte("third, with a directory"), "a (3).pdf", false},
		{"../../etc/passwd", []byte("root:x:0:0:root:/root:/bin/bash\n"), "passwd", false},
		{`C:\Users\x\a.txt`, []byte("unescaped backslashes"), "a.txt", false},
		{`..\..\Windows\win.ini`, []byte("[fonts]\r\n"), "win.ini", false},
		{"/etc/cron.d/job", []byte("* * * * * root id\n"), "job", false},
		{"CON.txt", []byte("device name"), "CON_.txt", false},
		{"invoice.pdf   .exe", []byte("MZ not really"), "invoice.pdf .exe", false},
		{"invoice.pdf\x00.exe", []byte("NUL in the name"), "invoice.pdf_.exe", false},
		{"ctrl\x01\x1b[31m\r\n.txt", []byte("control characters"), "ctrl__[31m__.txt", false},
		{"invoice\u202Efdp.exe", []byte("bidi override"), "invoice_fdp.exe", false},
	}
}

// want maps stored name → content.
func want(in []input) map[string][]byte {
	m := map[string][]byte{}
	for _, f := range in {
		m[f.stored] = f.data
		if f.data == nil {
			m[f.stored] = []byte{}
		}
	}
	return m
}

// writeZip builds a zip of in with opts into a file and checks the
// returned entries.
func writeZip(t *testing.T, opts Options, in []input) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "attachments.zip")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z := NewWriter(f, opts)
	for _, a := range in {
		// OneByteReader: attachments arrive from a MIME decoder in pieces.
		e, err := z.Add(a.name, iotest.OneByteReader(bytes.NewReader(a.data)))
		if err != nil {
			t.Fatalf("Add(%q): %v", a.name, err)
		}
		if e.Name != a.stored || e.Original != a.name || e.Size != int64(len(a.data)) ||
			e.SHA256 != sha256.Sum256(a.data) || e.Stored != a.isStored(opts.Method) {
			t.Errorf("Add(%q) = {%q %q %d %x stored=%v}, want {%q size %d stored=%v}", a.name,
				e.Name, e.Original, e.Size, e.SHA256[:4], e.Stored, a.stored, len(a.data), a.isStored(opts.Method))
		}
	}
	if err := z.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func equalFiles(t *testing.T, who string, got, want map[string][]byte) {
	t.Helper()
	for name, w := range want {
		g, ok := got[name]
		if !ok {
			t.Errorf("%s: %q missing", who, name)
		} else if !bytes.Equal(g, w) {
			t.Errorf("%s: %q has %d bytes that differ from the %d added", who, name, len(g), len(w))
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("%s: unexpected %q", who, name)
		}
	}
}

var methods = []struct {
	name   string
	method Method
}{{"AES256", AES256}, {"ZipCrypto", ZipCrypto}}

// TestTools opens every zip with 7-Zip and libarchive (and, for
// ZipCrypto, Info-ZIP unzip and CPython), compares names and bytes
// exactly and checks that a wrong password is refused.
func TestTools(t *testing.T) {
	in := inputs()
	for _, m := range methods {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			path := writeZip(t, Options{Method: m.method, Password: password, ModTime: modTime}, in)
			tools := []extractor{sevenZip, bsdtar}
			if m.method == ZipCrypto {
				tools = append(tools, unzip) // Info-ZIP has no AES
			}
			for _, x := range tools {
				t.Run(x.name, func(t *testing.T) {
					t.Parallel()
					equalFiles(t, x.name, x.extract(t, path, password), want(in))
					x.refuses(t, path, password+"x")
				})
			}
		})
	}
}

// TestReadBack reads each zip back with a reader that understands it:
// the library's own for AES, CPython's zipfile for ZipCrypto.
func TestReadBack(t *testing.T) {
	in := inputs()
	t.Run("AES256/alexmullins", func(t *testing.T) {
		t.Parallel()
		path := writeZip(t, Options{Method: AES256, Password: password, ModTime: modTime}, in)
		got, err := aesRead(path, password)
		if err != nil {
			t.Fatal(err)
		}
		equalFiles(t, "alexmullins/zip", got, want(in))
		if _, err := aesRead(path, "wrong"); err == nil {
			t.Error("alexmullins/zip read the zip with a wrong password")
		}
	})
	t.Run("ZipCrypto/python3", func(t *testing.T) {
		t.Parallel()
		// zipfile decrypts in pure Python at ~1 MB/s: leave out the 1 MB files.
		var small []input
		for _, f := range in {
			if len(f.data) <= 128<<10 {
				small = append(small, f)
			}
		}
		path := writeZip(t, Options{Method: ZipCrypto, Password: password, ModTime: modTime}, small)
		got, ok := pythonRead(t, path, password, false)
		if !ok {
			t.Fatal("python3 zipfile could not read the zip")
		}
		equalFiles(t, "python3 zipfile", got, want(small))
		if _, ok := pythonRead(t, path, "wrong", false); ok {
			t.Error("python3 zipfile read the zip with a wrong password")
		}
	})
}

func aesRead(path, password string) (map[string][]byte, error) {
	r, err := aeszip.OpenReader(path)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	got := map[string][]byte{}
	for _, f := range r.File {
		f.SetPassword(password)
		rc, err := f.Open()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.Name, err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.Name, err)
		}
		got[f.Name] = b
	}
	return got, nil
}

// TestHeaders checks what the library gets wrong or leaves out: the UTF-8
// flag in both local header and central directory, the local DOS time,
// the Unix host that makes Info-ZIP honour that flag, and the method.
func TestHeaders(t *testing.T) {
	in := inputs()
	wantDate, wantTime := dosTime(modTime)
	for _, m := range methods {
		for _, enc := range []NameEncoding{UTF8, CP932} {
			t.Run(fmt.Sprintf("%s/%d", m.name, enc), func(t *testing.T) {
				path := writeZip(t, Options{Method: m.method, Password: password, Names: enc, ModTime: modTime}, in)
				f, err := os.Open(path)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				fi, _ := f.Stat()
				wantUTF8 := uint16(flagUTF8)
				if enc == CP932 {
					wantUTF8 = 0
				}
				dir, err := readDir(f, fi.Size())
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range dir {
					if e.flags&flagUTF8 != wantUTF8 || e.localFlags&flagUTF8 != wantUTF8 {
						t.Errorf("%q: UTF-8 flag: directory %#x, local %#x, want %#x", e.name, e.flags, e.localFlags, wantUTF8)
					}
					if e.flags&flagEncrypted == 0 || e.localFlags&flagEncrypted == 0 {
						t.Errorf("%q: not encrypted: directory %#x, local %#x", e.name, e.flags, e.localFlags)
					}
				}
				r, err := stdzip.NewReader(f, fi.Size())
				if err != nil {
					t.Fatal(err)
				}
				if len(r.File) != len(in) {
					t.Fatalf("%d entries, want %d", len(r.File), len(in))
				}
				for i, zf := range r.File {
					name := in[i].stored
					if enc == CP932 {
						_, raw := toCP932(name)
						name = string(raw)
					}
					if zf.Name != name {
						t.Errorf("entry %d name %q, want %q", i, zf.Name, name)
					}
					// archive/zip takes Modified from the extended
					// timestamp: the UTC instant, whatever the DOS zone.
					if !zf.Modified.Equal(modTime) {
						t.Errorf("%q: extended timestamp %v, want %v", zf.Name, zf.Modified, modTime.UTC())
					}
					if len(in[i].data) == 0 {
						want := map[Method]uint64{AES256: aesOverhead, ZipCrypto: zipCryptoHeaderLen}[m.method]
						if zf.CompressedSize64 != want {
							t.Errorf("%q: empty entry takes %d bytes, want %d (stored, only the encryption framing)", zf.Name, zf.CompressedSize64, want)
						}
					}
					if zf.ModifiedDate != wantDate || zf.ModifiedTime != wantTime {
						t.Errorf("%q: DOS date/time %#x %#x, want %#x %#x", zf.Name, zf.ModifiedDate, zf.ModifiedTime, wantDate, wantTime)
					}
					if zf.CreatorVersion>>8 != 3 || zf.Mode().Perm() != 0o644 {
						t.Errorf("%q: creator %#x mode %v, want Unix host and 0644", zf.Name, zf.CreatorVersion, zf.Mode())
					}
					method := zf.Method
					if m.method == AES256 {
						method = aesRealMethod(zf.Extra)
					}
					if wantM := map[bool]uint16{true: stdzip.Store, false: stdzip.Deflate}[in[i].isStored(m.method)]; method != wantM {
						t.Errorf("%q: method %d, want %d", zf.Name, method, wantM)
					}
				}
			})
		}
	}
}

// aesRealMethod returns the real compression method from the WinZip AES extra field.
func aesRealMethod(extra []byte) uint16 {
	for len(extra) >= 4 {
		id, n := le16(extra), int(le16(extra[2:]))
		if id == 0x9901 && n >= 7 && len(extra) >= 4+n {
			return le16(extra[9:])
		}
		extra = extra[min(len(extra), 4+n):]
	}
	return 0xffff
}

// TestCP932 checks Shift_JIS names as the tools see them: libarchive
// decodes them when told the charset, Python decodes them by hand, and
// 7-Zip and Info-ZIP unzip, in a UTF-8 locale where Shift_JIS means
// nothing, take the UTF-8 name from the Unicode Path extra field. unzip
// also checks that no two parts of the zip overlap, which a Unicode Path
// field beside a data descriptor must not trip.
func TestCP932(t *testing.T) {
	in := []input{
		{"請求書_2026年11月.pdf", []byte("pdf"), "請求書_2026年11月.pdf", false},
		{"見積もり (1).xlsx", []byte("xlsx"), "見積もり (1).xlsx", false},
		{"表計算.xlsx", []byte("0x5C as second byte"), "表計算.xlsx", false},
		{"4月〜6月.txt", []byte("wave dash"), "4月～6月.txt", false},
		{"①㈱髙橋.txt", []byte("NEC and IBM extensions"), "①㈱髙橋.txt", false},
		{"😀.txt", []byte("not in CP932"), "_.txt", false},
		{"ｶﾀｶﾅ.txt", []byte("half-width katakana"), "ｶﾀｶﾅ.txt", false},
	}
	for _, m := range methods {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			path := writeZip(t, Options{Method: m.method, Password: password, Names: CP932, ModTime: modTime}, in)
			equalFiles(t, "bsdtar", bsdtar.extract(t, path, password, "--options", "hdrcharset=CP932"), want(in))
			equalFiles(t, "7z", sevenZip.extract(t, path, password), want(in))
			if m.method == ZipCrypto {
				equalFiles(t, "unzip", unzip.extract(t, path, password), want(in))
				got, ok := pythonRead(t, path, password, true)
				if !ok {
					t.Fatal("python3 zipfile could not read the zip")
				}
				equalFiles(t, "python3 zipfile", got, want(in))
			}
		})
	}
}

func TestOptionErrors(t *testing.T) {
	tests := []struct {
		name string
		opts Options
	}{
		{"empty password", Options{}},
		{"non-ASCII password", Options{Password: "パスワード"}},
		{"control character in password", Options{Password: "pass\nword"}},
		{"unknown method", Options{Password: password, Method: 7}},
		{"unknown name encoding", Options{Password: password, Names: 9}},
	}
	for _, tt := range tests {
		var b bytes.Buffer
		z := NewWriter(&b, tt.opts)
		_, errAdd := z.Add("a.txt", strings.NewReader("x"))
		errClose := z.Close()
		if errAdd == nil || errClose == nil {
			t.Errorf("%s: Add error %v, Close error %v; want both", tt.name, errAdd, errClose)
		}
		if tt.opts.Password != "" && strings.Contains(fmt.Sprint(errAdd, errClose), tt.opts.Password) {
			t.Errorf("%s: error reveals the password: %v", tt.name, errAdd)
		}
	}
}

// TestStickyError: a failed read leaves a broken zip, so the writer must
// refuse to go on and Close must not pretend success.
func TestStickyError(t *testing.T) {
	for _, m := range methods {
		for _, at := range []int{0, 100 << 10} { // during the sniff, during the copy
			var b bytes.Buffer
			z := NewWriter(&b, Options{Method: m.method, Password: password})
			boom := errors.New("boom")
			r := io.MultiReader(bytes.NewReader(textBytes(at, 1)), iotest.ErrReader(boom))
			if _, err := z.Add("a.txt", r); !errors.Is(err, boom) {
				t.Errorf("%s at %d: Add error %v, want boom", m.name, at, err)
			}
			if _, err := z.Add("b.txt", strings.NewReader("x")); !errors.Is(err, boom) {
				t.Errorf("%s at %d: second Add error %v, want boom", m.name, at, err)
			}
			if err := z.Close(); !errors.Is(err, boom) {
				t.Errorf("%s at %d: Close error %v, want boom", m.name, at, err)
			}
		}
	}
}

func TestAddAfterClose(t *testing.T) {
	z := NewWriter(io.Discard, Options{Password: password})
	if err := z.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := z.Add("a.txt", strings.NewReader("x")); err == nil {
		t.Error("Add after Close succeeded")
	}
}

func TestDosTime(t *testing.T) {
	tests := []struct {
		in         time.Time
		date, time uint16
	}{
		{time.Date(2026, 11, 3, 14, 25, 37, 0, jst), 46<<9 | 11<<5 | 3, 14<<11 | 25<<5 | 18},
		{time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC), 0<<9 | 1<<5 | 1, 0},
		{time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC), 127<<9 | 12<<5 | 31, 23<<11 | 59<<5 | 29},
	}
	for _, tt := range tests {
		if d, tm := dosTime(tt.in); d != tt.date || tm != tt.time {
			t.Errorf("dosTime(%v) = %#x %#x, want %#x %#x", tt.in, d, tm, tt.date, tt.time)
		}
	}
}

// BenchmarkAdd measures one 10 MB attachment into a zip, the cost per
// attachment the gateway pays.
func BenchmarkAdd(b *testing.B) {
	const size = 10 << 20
	data := []struct {
		name string
		b    []byte
	}{{"random", randomBytes(size, 9)}, {"text", textBytes(size, 9)}}
	for _, m := range methods {
		for _, d := range data {
			b.Run(m.name+"/"+d.name+"-10MB", func(b *testing.B) {
				b.SetBytes(size)
				b.ReportAllocs()
				for b.Loop() {
					z := NewWriter(io.Discard, Options{Method: m.method, Password: password})
					if _, err := z.Add(d.name, bytes.NewReader(d.b)); err != nil {
						b.Fatal(err)
					}
					if err := z.Close(); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
