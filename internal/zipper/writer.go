// Package zipper writes the password-protected zip that replaces a mail's
// attachments: WinZip AES-256 by default, traditional ZipCrypto where a
// recipient needs Windows Explorer, names in UTF-8 or CP932, each entry
// stored or deflated by a look at its first bytes. It streams: memory
// use does not grow with attachment size.
package zipper

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"time"

	stdzip "archive/zip"

	"github.com/zipgate/zipgate/internal/spool"
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
	// readers show as local time, and as UTC in an extended timestamp;
	// zero means now. Before 1980 becomes 1980.
	ModTime time.Time
	// TempDir holds, in CP932 mode, an entry larger than a megabyte
	// while it is compressed (see writeEntry); empty means os.TempDir().
	TempDir string
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

	// fileMode makes entries Unix-made (host 3) with mode 0644. With the
	// default MS-DOS host Info-ZIP unzip ignores the UTF-8 flag and turns
	// the names into OEM-codepage mojibake; with a Unix host and no mode,
	// it would extract files with mode 0000.
	fileMode = 0o644

	extTimeID     = 0x5455 // Info-ZIP extended timestamp: modification time in UTC
	unicodePathID = 0x7075 // Info-ZIP Unicode Path: the UTF-8 name beside a CP932 one
)

var errClosed = errors.New("zipper: writer is closed")

// Writer streams one zip. It is not safe for concurrent use. After any
// error the zip is incomplete: every later call returns that error and
// the output must be discarded.
type Writer struct {
	opts Options
	zw   *stdzip.Writer // every entry is written raw: we compress and encrypt
	seen names

	br  *bufio.Reader
	buf *buffers // pipeline blocks and cipher scratch, from a pool

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
		zw:   stdzip.NewWriter(w),
		seen: names{},
		br:   bufio.NewReaderSize(nil, sniffLen),
	}
	z.modDate, z.modTime = dosTime(opts.ModTime)
	if err := checkPassword(opts.Password); err != nil {
		z.err = err
	}
	if opts.Method != AES256 && opts.Method != ZipCrypto {
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
// file name alone). While the entry is compressed and encrypted, another
// goroutine reads r (and so decodes the attachment) and hashes it; r is
// no longer read when Add returns.
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

	z.br.Reset(r)
	head, err := z.br.Peek(sniffLen)
	if err != nil && err != io.EOF {
		return e, fmt.Errorf("zipper: reading %q: %w", e.Name, err)
	}
	switch {
	case len(head) == 0:
		// Nothing to compress. An empty deflated ZipCrypto entry makes
		// old macOS Archive Utility ask for the password forever;
		// Info-ZIP's zip -e stores it too.
		e.Stored = true
	case z.opts.Method == ZipCrypto:
		// Never Store with ZipCrypto: a stored file of a known format
		// hands known-plaintext attacks (bkcrack) the 12 bytes they need
		// at a known offset. Deflated, its first bytes are Huffman codes.
		e.Stored = false
	default:
		e.Stored = shouldStore(head)
	}
	level := 0
	if !e.Stored {
		level = deflateLevel(head)
	}
	if z.buf == nil {
		z.buf = bufPool.Get().(*buffers)
	}
	if e.Size, e.SHA256, err = z.writeEntry(e.Name, level); err != nil {
		return e, fmt.Errorf("zipper: adding %q: %w", e.Name, err)
	}
	return e, nil
}

// writeEntry writes one entry from z.br: level 0 stores, others deflate
// at that level.
//
// Entries normally stream: sizes and CRC follow the data in a data
// descriptor. In CP932 mode, though, Info-ZIP unzip refuses a Unicode
// Path field together with a data descriptor ("invalid zip file with
// overlapped components"), so there the compressed entry is spooled
// first and the sizes go into the local header.
func (z *Writer) writeEntry(name string, level int) (int64, [32]byte, error) {
	var sum [32]byte
	known := z.opts.Names == CP932 // sizes in the local header
	fh := &stdzip.FileHeader{
		Name:         name,
		Flags:        flagUTF8 | flagEncrypted | flagDataDescriptor,
		ModifiedDate: z.modDate,
		ModifiedTime: z.modTime,
		Extra:        extTime(z.opts.ModTime),
	}
	if known {
		_, raw := toCP932(name)
		fh.Name, fh.Flags = string(raw), flagEncrypted
		fh.Extra = append(fh.Extra, unicodePath(raw, name)...)
	}
	method := uint16(stdzip.Deflate)
	if level == 0 {
		method = stdzip.Store
	}
	overhead := int64(zipCryptoHeaderLen)
	if z.opts.Method == AES256 {
		fh.Method = aesMethod
		fh.CreatorVersion, fh.ReaderVersion = 51, 51 // AE-x needs 5.1
		fh.Extra = append(fh.Extra, aesExtra(method)...)
		overhead = aesOverhead
	} else {
		fh.Method = method
		fh.CreatorVersion, fh.ReaderVersion = 20, 20
	}
	fh.SetMode(fileMode) // sets the Unix host in CreatorVersion

	sha := sha256.New()
	var crc hash.Hash32
	hashes := []hash.Hash{sha}
	if z.opts.Method == ZipCrypto {
		crc = crc32.NewIEEE()
		hashes = append(hashes, crc)
	}
	// seal starts the cipher over out; the ZipCrypto check byte is the
	// high byte of the DOS time with a data descriptor, of the CRC without.
	seal := func(out io.Writer, check byte) (io.WriteCloser, error) {
		if z.opts.Method == AES256 {
			return newAESWriter(out, z.opts.Password, z.buf.ct[:])
		}
		return newZipCryptoWriter(out, []byte(z.opts.Password), check, z.buf.ct[:])
	}
	// compress runs the pipeline into dst (through the compressor).
	compress := func(dst io.Writer) (int64, error) {
		if level == 0 {
			return z.pipe(dst, hashes)
		}
		fw := getFlate(dst, level)
		defer putFlate(fw, level)
		n, err := z.pipe(fw, hashes)
		if err == nil {
			err = fw.Close()
		}
		return n, err
	}

	var n int64
	if known {
		sp := spool.New(z.opts.TempDir, 1<<20)
		defer sp.Close()
		var err error
		if n, err = compress(sp); err != nil {
			return n, sum, err
		}
		var check byte
		if crc != nil {
			fh.CRC32 = crc.Sum32()
			check = byte(fh.CRC32 >> 24)
		}
		setSizes(fh, sp.Size()+overhead, n)
		raw, err := z.zw.CreateRaw(fh)
		if err != nil {
			return n, sum, err
		}
		sealer, err := seal(raw, check)
		if err != nil {
			return n, sum, err
		}
		if _, err := io.CopyBuffer(sealer, struct{ io.Reader }{sp.Reader()}, z.buf.blocks[0][:]); err != nil {
			return n, sum, err
		}
		if err := sealer.Close(); err != nil {
			return n, sum, err
		}
	} else {
		raw, err := z.zw.CreateRaw(fh)
		if err != nil {
			return 0, sum, err
		}
		cw := &countWriter{w: raw}
		sealer, err := seal(cw, byte(z.modTime>>8))
		if err != nil {
			return 0, sum, err
		}
		if n, err = compress(sealer); err != nil {
			return n, sum, err
		}
		if err := sealer.Close(); err != nil {
			return n, sum, err
		}
		// archive/zip writes the data descriptor and the central
		// directory from fh at the next entry or Close.
		if crc != nil {
			fh.CRC32 = crc.Sum32() // AE-2 leaves it 0
		}
		setSizes(fh, cw.n, n)
	}
	sha.Sum(sum[:0])
	return n, sum, nil
}

func setSizes(fh *stdzip.FileHeader, compressed, size int64) {
	fh.CompressedSize64 = uint64(compressed)
	fh.UncompressedSize64 = uint64(size)
	fh.CompressedSize = uint32(min(fh.CompressedSize64, 1<<32-1))
	fh.UncompressedSize = uint32(min(fh.UncompressedSize64, 1<<32-1))
	if fh.CompressedSize64 >= 1<<32-1 || fh.UncompressedSize64 >= 1<<32-1 {
		fh.ReaderVersion = max(fh.ReaderVersion, 45) // zip64
	}
}

// extTime is the extended timestamp extra field with the modification
// time in UTC, so readers show the right time whatever the zone of the
// DOS time. The same 9 bytes serve the local header and the central
// directory, which has only the modification time too.
func extTime(t time.Time) []byte {
	b := make([]byte, 9)
	binary.LittleEndian.PutUint16(b, extTimeID)
	binary.LittleEndian.PutUint16(b[2:], 5)
	b[4] = 1 // modification time present
	binary.LittleEndian.PutUint32(b[5:], uint32(max(t.Unix(), 0)))
	return b
}

// unicodePath is the Info-ZIP Unicode Path extra field: the UTF-8 name,
// tied to the raw (CP932) header name by its CRC, which a reader checks
// before it trusts the field.
func unicodePath(raw []byte, name string) []byte {
	b := make([]byte, 9, 9+len(name))
	binary.LittleEndian.PutUint16(b, unicodePathID)
	binary.LittleEndian.PutUint16(b[2:], uint16(5+len(name)))
	b[4] = 1 // version
	binary.LittleEndian.PutUint32(b[5:], crc32.ChecksumIEEE(raw))
	return append(b, name...)
}

// Close writes the central directory. It does not close the underlying
// writer.
func (z *Writer) Close() error {
	if z.err != nil {
		return z.err
	}
	err := z.zw.Close()
	z.err = errClosed
	if err != nil {
		z.err = err
	}
	if z.buf != nil {
		bufPool.Put(z.buf)
		z.buf = nil
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
