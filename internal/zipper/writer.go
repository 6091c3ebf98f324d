// Package zipper writes the password-protected zip that replaces a mail's
// attachments: WinZip AES-256 by default, traditional ZipCrypto where a
// recipient needs Windows Explorer, names in UTF-8 or CP932, each entry
// stored or deflated by a look at its first bytes. It streams: memory
// use does not grow with attachment size.
package zipper

import (
	"bufio"
	"compress/flate"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"time"

	stdzip "archive/zip"

	aeszip "github.com/alexmullins/zip"
)

// Method is the encryption of every entry in one zip.
type Method int

const (
	AES256    Method = iota // WinZip AES-256 (AE-2), default
	ZipCrypto               // traditional PKWARE encryption; only for recipients on Windows Explorer
)

// NameEncoding is how entry names are written.
type NameEncoding int

const (
	UTF8  NameEncoding = iota // UTF-8 with general purpose flag bit 11
	CP932                     // Shift_JIS without the UTF-8 flag, for old Japanese Windows
)

// Options configure one zip.
type Options struct {
	Method Method
	// Password must be printable ASCII: tools disagree on how to turn
	// other characters into bytes (7-Zip uses UTF-8 for AES, Explorer the
	// OEM code page for ZipCrypto), so a recipient could not open it.
	Password string
	Names    NameEncoding
	// ModTime is written as DOS time in ModTime's own location, which
	// readers show as local time; zero means now. Before 1980 becomes 1980.
	ModTime time.Time
}

// Entry describes one added attachment.
type Entry struct {
	Name     string // name as stored, after SafeName and dedupe
	Original string // name passed to Add
	Size     int64
	SHA256   [32]byte
	Stored   bool // true = Store, false = Deflate
}

const (
	flagEncrypted      = 0x1
	flagDataDescriptor = 0x8
	flagUTF8           = 0x800

	// deflateLevel for ZipCrypto matches the level alexmullins/zip fixes
	// for AES, so both methods make the same size/speed trade.
	deflateLevel = 5

	// fileMode makes entries Unix-made (host 3) with mode 0644. With the
	// default MS-DOS host Info-ZIP unzip ignores the UTF-8 flag and turns
	// the names into OEM-codepage mojibake; with a Unix host and no mode,
	// it would extract files with mode 0000.
	fileMode = 0o644
)

var errClosed = errors.New("zipper: writer is closed")

// Writer streams one zip. It is not safe for concurrent use. After any
// error the zip is incomplete: every later call returns that error and
// the output must be discarded.
type Writer struct {
	opts Options
	aes  *aeszip.Writer // for AES256
	std  *stdzip.Writer // for ZipCrypto, with entries we encrypt ourselves
	seen names

	br      *bufio.Reader
	buf     []byte        // copy buffer
	encBuf  []byte        // ZipCrypto ciphertext scratch
	deflate *flate.Writer // ZipCrypto deflater, reused across entries

	modDate, modTime uint16 // DOS date and time of every entry
	err              error  // sticky
}

// NewWriter streams a zip to w. Nothing is held whole in memory. Invalid
// options are reported by the first Add or by Close.
func NewWriter(w io.Writer, opts Options) *Writer {
	if opts.ModTime.IsZero() {
		opts.ModTime = time.Now()
	}
	z := &Writer{
		opts: opts,
		seen: names{},
		br:   bufio.NewReaderSize(nil, sniffLen),
		buf:  make([]byte, 32<<10),
	}
	z.modDate, z.modTime = dosTime(opts.ModTime)
	if err := checkPassword(opts.Password); err != nil {
		z.err = err
	}
	switch opts.Method {
	case AES256:
		z.aes = aeszip.NewWriter(w)
	case ZipCrypto:
		z.std = stdzip.NewWriter(w)
		z.encBuf = make([]byte, 32<<10)
	default:
		z.err = fmt.Errorf("zipper: unknown method %d", opts.Method)
	}
	if opts.Names != UTF8 && opts.Names != CP932 {
		z.err = fmt.Errorf("zipper: unknown name encoding %d", opts.Names)
	}
	return z
}

// checkPassword never puts the password into its error.
func checkPassword(p string) error {
	if p == "" {
		return errors.New("zipper: empty password")
	}
	for i := 0; i < len(p); i++ {
		if p[i] < 0x20 || p[i] > 0x7e {
			return errors.New("zipper: password must be printable ASCII")
		}
	}
	return nil
}

// Add reads r to EOF and adds it as one encrypted entry named name. It
// decides Store vs Deflate by a cheap look at the first bytes (not by
// file name alone).
func (z *Writer) Add(name string, r io.Reader) (Entry, error) {
	if z.err != nil {
		return Entry{}, z.err
	}
	e, err := z.add(name, r)
	if err != nil {
		z.err = err
	}
	return e, err
}

func (z *Writer) add(name string, r io.Reader) (Entry, error) {
	e := Entry{Original: name}
	shown := SafeName(name)
	if z.opts.Names == CP932 {
		shown, _ = toCP932(shown)
	}
	e.Name = z.seen.unique(shown)
	raw, flags := e.Name, uint16(flagUTF8)
	if z.opts.Names == CP932 {
		_, b := toCP932(e.Name)
		raw, flags = string(b), 0
	}

	z.br.Reset(r)
	head, err := z.br.Peek(sniffLen)
	if err != nil && err != io.EOF {
		return e, fmt.Errorf("zipper: reading %q: %w", e.Name, err)
	}
	e.Stored = shouldStore(head)

	h := sha256.New()
	if z.aes != nil {
		e.Size, err = z.addAES(raw, flags, e.Stored, h)
	} else {
		e.Size, err = z.addZipCrypto(raw, flags, e.Stored, h)
	}
	if err != nil {
		return e, fmt.Errorf("zipper: adding %q: %w", e.Name, err)
	}
	h.Sum(e.SHA256[:0])
	return e, nil
}

func (z *Writer) addAES(name string, flags uint16, stored bool, h io.Writer) (int64, error) {
	fh := &aeszip.FileHeader{
		Name:   name,
		Flags:  flags, // the library never sets bit 11 itself
		Method: aeszip.Deflate,
		// Not fh.SetModTime: it converts to UTC first.
		ModifiedDate: z.modDate,
		ModifiedTime: z.modTime,
	}
	if stored {
		fh.Method = aeszip.Store
	}
	fh.SetMode(fileMode)
	fh.SetPassword(z.opts.Password)
	w, err := z.aes.CreateHeader(fh)
	if err != nil {
		return 0, err
	}
	return z.copy(io.MultiWriter(w, h))
}

// addZipCrypto compresses and encrypts the entry itself and hands the
// result to archive/zip as a raw entry. The CRC and sizes are known only
// at the end, so the entry has a data descriptor; archive/zip writes the
// descriptor and central directory later from fh, which is why fh is
// filled in after the data.
func (z *Writer) addZipCrypto(name string, flags uint16, stored bool, h io.Writer) (int64, error) {
	fh := &stdzip.FileHeader{
		Name:           name,
		Flags:          flags | flagEncrypted | flagDataDescriptor,
		Method:         stdzip.Deflate,
		ModifiedDate:   z.modDate,
		ModifiedTime:   z.modTime,
		CreatorVersion: 20, // spec 2.0; SetMode sets the host
		ReaderVersion:  20,
	}
	if stored {
		fh.Method = stdzip.Store
	}
	fh.SetMode(fileMode)
	raw, err := z.std.CreateRaw(fh)
	if err != nil {
		return 0, err
	}
	cw := &countWriter{w: raw}
	enc, err := newZipCryptoWriter(cw, []byte(z.opts.Password), byte(z.modTime>>8), z.encBuf)
	if err != nil {
		return 0, err
	}
	var dst io.Writer = enc
	if !stored {
		if z.deflate == nil {
			z.deflate, _ = flate.NewWriter(enc, deflateLevel) // error only for a bad level
		} else {
			z.deflate.Reset(enc)
		}
		dst = z.deflate
	}
	crc := crc32.NewIEEE()
	n, err := z.copy(io.MultiWriter(dst, crc, h))
	if err != nil {
		return n, err
	}
	if !stored {
		if err := z.deflate.Close(); err != nil {
			return n, err
		}
	}
	fh.CRC32 = crc.Sum32()
	fh.CompressedSize64 = uint64(cw.n)
	fh.UncompressedSize64 = uint64(n)
	fh.CompressedSize = uint32(min(fh.CompressedSize64, 1<<32-1))
	fh.UncompressedSize = uint32(min(fh.UncompressedSize64, 1<<32-1))
	if fh.CompressedSize64 >= 1<<32-1 || fh.UncompressedSize64 >= 1<<32-1 {
		fh.ReaderVersion = 45 // zip64
	}
	return n, nil
}

// copy moves the rest of the attachment to w in buf-sized pieces. Hiding
// bufio.Reader's WriteTo matters: it would hand a bytes.Reader's whole
// content to one Write, and the AES writer allocates a copy per Write.
func (z *Writer) copy(w io.Writer) (int64, error) {
	return io.CopyBuffer(w, struct{ io.Reader }{z.br}, z.buf)
}

// Close writes the central directory. It does not close the underlying
// writer.
func (z *Writer) Close() error {
	if z.err != nil {
		return z.err
	}
	var err error
	if z.aes != nil {
		err = z.aes.Close()
	} else {
		err = z.std.Close()
	}
	z.err = errClosed
	if err != nil {
		z.err = err
	}
	return err
}

// dosTime is t as MS-DOS date and time (2 s resolution, 1980–2107), in
// t's own location.
func dosTime(t time.Time) (date, tm uint16) {
	switch {
	case t.Year() < 1980:
		t = time.Date(1980, 1, 1, 0, 0, 0, 0, t.Location())
	case t.Year() > 2107:
		t = time.Date(2107, 12, 31, 23, 59, 58, 0, t.Location())
	}
	date = uint16(t.Day() + int(t.Month())<<5 + (t.Year()-1980)<<9)
	tm = uint16(t.Second()/2 + t.Minute()<<5 + t.Hour()<<11)
	return date, tm
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
