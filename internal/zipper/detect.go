package zipper

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
)

const (
	sigLocal = "PK\x03\x04"
	sigDir   = "PK\x01\x02"
	sigEnd   = "PK\x05\x06"

	localLen = 30
	dirLen   = 46
	endLen   = 22
)

var errNotZip = errors.New("zipper: not a zip this check understands")

// dirEntry is what IsEncryptedZip needs from one central directory record.
type dirEntry struct {
	name         string
	flags        uint16
	csize, usize uint32
	localFlags   uint16
	offset       uint32
}

// IsEncryptedZip reports whether r holds a zip whose entries are all
// encrypted (general purpose flag bit 0), reading only local headers /
// central directory as needed. Used to let mail whose only attachments are
// already-encrypted zips pass untouched, so anything it does not fully
// understand (zip64, data before the zip, a damaged directory, a
// disagreement between local header and directory) counts as not
// encrypted: the attachment then gets zipped again, which is safe.
// Directory entries ("dir/", no data) need no encryption; a zip must have
// at least one encrypted file.
func IsEncryptedZip(r io.ReaderAt, size int64) bool {
	entries, err := readDir(r, size)
	if err != nil {
		return false
	}
	files := 0
	for _, e := range entries {
		if isDirEntry(e) {
			continue
		}
		if e.flags&flagEncrypted == 0 || e.localFlags&flagEncrypted == 0 {
			return false
		}
		files++
	}
	return files > 0
}

func isDirEntry(e dirEntry) bool {
	return len(e.name) > 0 && e.name[len(e.name)-1] == '/' && e.csize == 0 && e.usize == 0
}

// readDir reads the central directory and each entry's local header flags.
func readDir(r io.ReaderAt, size int64) ([]dirEntry, error) {
	if size < endLen {
		return nil, errNotZip
	}
	// The end record is in the last 22 bytes plus a comment of at most 64 KiB.
	tailLen := min(size, endLen+0xffff)
	tail := make([]byte, tailLen)
	if err := readFullAt(r, tail, size-tailLen); err != nil {
		return nil, err
	}
	// The last signature whose comment length reaches exactly to the end.
	i := len(tail)
	for {
		if i = bytes.LastIndex(tail[:i], []byte(sigEnd)); i < 0 {
			return nil, errNotZip
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
		return nil, errNotZip // multi-disk, zip64 or data before the zip
	}

	br := bufio.NewReader(io.NewSectionReader(r, dirOff, dirSize))
	entries := make([]dirEntry, 0, count)
	var h [dirLen]byte
	for range count {
		if _, err := io.ReadFull(br, h[:]); err != nil {
			return nil, err
		}
		if string(h[:4]) != sigDir {
			return nil, errNotZip
		}
		name := make([]byte, le16(h[28:]))
		if _, err := io.ReadFull(br, name); err != nil {
			return nil, err
		}
		skip := int64(le16(h[30:])) + int64(le16(h[32:])) // extra, comment
		if _, err := br.Discard(int(skip)); err != nil {
			return nil, err
		}
		e := dirEntry{
			name:   string(name),
			flags:  le16(h[8:]),
			csize:  le32(h[20:]),
			usize:  le32(h[24:]),
			offset: le32(h[42:]),
		}
		var lh [localLen]byte
		if err := readFullAt(r, lh[:], int64(e.offset)); err != nil {
			return nil, err
		}
		if string(lh[:4]) != sigLocal {
			return nil, errNotZip
		}
		e.localFlags = le16(lh[6:])
		entries = append(entries, e)
	}
	return entries, nil
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
