package zipper

import (
	"bufio"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"slices"
)

const (
	sigLocal = "PK\x03\x04"
	sigDir   = "PK\x01\x02"
	sigEnd   = "PK\x05\x06"
	sigDesc  = "PK\x07\x08"

	localLen = 30
	dirLen   = 46
	endLen   = 22

	flagStrong  = 0x40 // PKWARE strong encryption: not understood here
	methodStore = 0
	methodFlate = 8
	methodAES   = 99
	zipCryptoHd = 12 // ZipCrypto's encryption header
	aesMAC      = 10 // WinZip AES authentication code
)

var errNotZip = errors.New("zipper: not a zip this check understands")

// dirEntry is what IsEncryptedZip needs from one central directory record
// and the local header it points at.
type dirEntry struct {
	name         string
	flags        uint16
	method       uint16
	crc          uint32
	csize, usize uint32
	extra        []byte // central directory extra field
	offset       uint32

	localFlags  uint16
	localMethod uint16
	dataStart   int64 // first byte after the local header
	dataEnd     int64 // after the data and its descriptor
}

// IsEncryptedZip reports whether r holds a zip whose entries are all
// encrypted, reading the central directory, the local headers and the
// entries' data. Used to let mail whose only attachments are
// already-encrypted zips pass untouched, so anything it does not fully
// understand counts as not encrypted: the attachment then gets zipped
// again, which is safe. Not understood, among others: zip64, several
// disks, bytes before the first entry or between entries (a clear zip
// stored in front of an encrypted one, which a reader going from the
// front shows), a local header that disagrees with the directory,
// compression methods other than store and deflate, and PKWARE strong
// encryption.
//
// An entry counts as encrypted when the encryption flag is set and its
// data has the shape of ZipCrypto (a 12-byte header before the data) or
// WinZip AES (its extra field, salt, check value and MAC), and is not
// the clear bytes the flag claims to hide ("pseudo-encryption", which
// readers that ignore the flag open without a password): stored data
// whose CRC-32 matches the directory's, or a deflate stream that inflates
// to the stated size. Directory entries ("dir/", no data) need no
// encryption; a zip must have at least one encrypted file.
func IsEncryptedZip(r io.ReaderAt, size int64) bool {
	entries, dirOff, err := readDirAt(r, size)
	if err != nil || !tiled(entries, dirOff) {
		return false
	}
	files := 0
	for _, e := range entries {
		if isDirEntry(e) {
			continue
		}
		if !encryptedData(r, e) {
			return false
		}
		files++
	}
	return files > 0
}

func isDirEntry(e dirEntry) bool {
	return len(e.name) > 0 && e.name[len(e.name)-1] == '/' && e.csize == 0 && e.usize == 0
}

// tiled reports whether the entries, in offset order, cover every byte
// from the start of the file to the central directory.
func tiled(entries []dirEntry, dirOff int64) bool {
	sorted := slices.Clone(entries)
	slices.SortFunc(sorted, func(a, b dirEntry) int { return int(int64(a.offset) - int64(b.offset)) })
	var pos int64
	for _, e := range sorted {
		if int64(e.offset) != pos {
			return false
		}
		pos = e.dataEnd
	}
	return pos == dirOff
}

// encryptedData checks one entry's flags and data, as the doc comment of
// IsEncryptedZip says.
func encryptedData(r io.ReaderAt, e dirEntry) bool {
	if e.flags&flagEncrypted == 0 || e.localFlags&flagEncrypted == 0 ||
		e.flags&flagStrong != 0 || e.method != e.localMethod {
		return false
	}
	method, overhead, trailer := e.method, int64(zipCryptoHd), int64(0)
	if e.method == methodAES {
		strength, actual, ok := readAESExtra(e.extra)
		if !ok {
			return false
		}
		method, overhead, trailer = actual, int64(4+4*strength)+2, aesMAC
	}
	csize, usize := int64(e.csize), int64(e.usize)
	if csize < overhead+trailer {
		return false
	}
	data := io.NewSectionReader(r, e.dataStart, csize)
	switch method {
	case methodStore:
		if csize != usize+overhead+trailer {
			return false // pseudo-encryption stores the file without the header
		}
		// The directory's CRC-32 is of the clear bytes (0 under AE-2).
		if e.crc != 0 && crcOf(io.NewSectionReader(r, e.dataStart+overhead, usize)) == e.crc {
			return false
		}
	case methodFlate:
		// Clear deflate data where the ciphertext should be.
		for _, off := range []int64{0, overhead} {
			if inflatesTo(io.NewSectionReader(data, off, csize-off), usize) {
				return false
			}
		}
	default:
		return false
	}
	return true
}

// readAESExtra reads the WinZip AES extra field (0x9901): key strength (1-3)
// and the method the data is compressed with.
func readAESExtra(extra []byte) (strength int64, method uint16, ok bool) {
	for len(extra) >= 4 {
		id, n := le16(extra), int(le16(extra[2:]))
		if len(extra) < 4+n {
			return 0, 0, false
		}
		if id == 0x9901 && n >= 7 {
			v := extra[4 : 4+n]
			s := int64(v[4])
			if string(v[2:4]) != "AE" || s < 1 || s > 3 {
				return 0, 0, false
			}
			return s, le16(v[5:]), true
		}
		extra = extra[4+n:]
	}
	return 0, 0, false
}

func crcOf(r io.Reader) uint32 {
	h := crc32.NewIEEE()
	_, _ = io.Copy(h, r)
	return h.Sum32()
}

// inflatesTo reports whether r holds a whole deflate stream of n bytes.
// Ciphertext does not: random bytes fail within a few symbols.
func inflatesTo(r io.Reader, n int64) bool {
	fr := flate.NewReader(bufio.NewReader(r))
	defer fr.Close()
	got, err := io.Copy(io.Discard, io.LimitReader(fr, n+1))
	return err == nil && got == n
}

// readDir reads the central directory and each entry's local header.
func readDir(r io.ReaderAt, size int64) ([]dirEntry, error) {
	entries, _, err := readDirAt(r, size)
	return entries, err
}

// readDirAt is readDir that also returns the directory's offset.
func readDirAt(r io.ReaderAt, size int64) ([]dirEntry, int64, error) {
	if size < endLen {
		return nil, 0, errNotZip
	}
	// The end record is in the last 22 bytes plus a comment of at most 64 KiB.
	tailLen := min(size, endLen+0xffff)
	tail := make([]byte, tailLen)
	if err := readFullAt(r, tail, size-tailLen); err != nil {
		return nil, 0, err
	}
	// The last signature whose comment length reaches exactly to the end.
	i := len(tail)
	for {
		if i = bytes.LastIndex(tail[:i], []byte(sigEnd)); i < 0 {
			return nil, 0, errNotZip
		}
		if i+endLen <= len(tail) && i+endLen+int(le16(tail[i+20:])) == len(tail) {
			break
		}
	}
	end := tail[i:]
	count, dirSize, dirOff := int(le16(end[10:])), int64(le32(end[12:])), int64(le32(end[16:]))
	endOff := size - tailLen + int64(i)
	if le16(end[4:]) != 0 || le16(end[6:]) != 0 || count != int(le16(end[8:])) ||
		count == 0xffff || dirOff == 0xffffffff || dirOff+dirSize != endOff {
		return nil, 0, errNotZip // multi-disk, zip64 or data before the zip
	}

	br := bufio.NewReader(io.NewSectionReader(r, dirOff, dirSize))
	entries := make([]dirEntry, 0, count)
	var h [dirLen]byte
	for range count {
		if _, err := io.ReadFull(br, h[:]); err != nil {
			return nil, 0, err
		}
		if string(h[:4]) != sigDir {
			return nil, 0, errNotZip
		}
		name := make([]byte, le16(h[28:]))
		if _, err := io.ReadFull(br, name); err != nil {
			return nil, 0, err
		}
		extra := make([]byte, le16(h[30:]))
		if _, err := io.ReadFull(br, extra); err != nil {
			return nil, 0, err
		}
		if _, err := br.Discard(int(le16(h[32:]))); err != nil { // comment
			return nil, 0, err
		}
		e := dirEntry{
			name:   string(name),
			flags:  le16(h[8:]),
			method: le16(h[10:]),
			crc:    le32(h[16:]),
			csize:  le32(h[20:]),
			usize:  le32(h[24:]),
			extra:  extra,
			offset: le32(h[42:]),
		}
		if e.csize == 0xffffffff || e.usize == 0xffffffff || e.offset == 0xffffffff {
			return nil, 0, errNotZip // zip64
		}
		var lh [localLen]byte
		if err := readFullAt(r, lh[:], int64(e.offset)); err != nil {
			return nil, 0, err
		}
		if string(lh[:4]) != sigLocal {
			return nil, 0, errNotZip
		}
		e.localFlags = le16(lh[6:])
		e.localMethod = le16(lh[8:])
		e.dataStart = int64(e.offset) + localLen + int64(le16(lh[26:])) + int64(le16(lh[28:]))
		e.dataEnd = e.dataStart + int64(e.csize)
		if e.localFlags&flagDataDescriptor != 0 {
			// crc, sizes, and an optional signature before them.
			var sig [4]byte
			if err := readFullAt(r, sig[:], e.dataEnd); err != nil {
				return nil, 0, err
			}
			e.dataEnd += 12
			if string(sig[:]) == sigDesc {
				e.dataEnd += 4
			}
		}
		if e.dataEnd > dirOff {
			return nil, 0, errNotZip
		}
		entries = append(entries, e)
	}
	return entries, dirOff, nil
}

// readFullAt is ReadAt that accepts io.EOF with a full read, as the
// io.ReaderAt contract allows at the end of the input.
func readFullAt(r io.ReaderAt, b []byte, off int64) error {
	n, err := r.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

func le16(b []byte) uint16 { return binary.LittleEndian.Uint16(b) }
func le32(b []byte) uint32 { return binary.LittleEndian.Uint32(b) }
