// Package spool holds a message (or a zip being built) in memory while it
// is small and in a temporary file once it grows, so memory stays bounded
// whatever the size of the mail.
package spool

import (
	"bytes"
	"io"
	"os"
)

// File is written once, then read any number of times through ReaderAt.
// Close removes the temporary file, if one was made.
type File struct {
	dir       string
	threshold int
	buf       bytes.Buffer
	f         *os.File
	size      int64
}

// New returns an empty spool that moves to a temp file in dir (the system
// default when empty) once more than threshold bytes were written.
func New(dir string, threshold int) *File {
	return &File{dir: dir, threshold: threshold}
}

func (s *File) Write(p []byte) (int, error) {
	if s.f == nil && s.buf.Len()+len(p) > s.threshold {
		f, err := os.CreateTemp(s.dir, "zipgate-spool-*")
		if err != nil {
			return 0, err
		}
		// Unlinked at once on Unix: a crash leaves nothing behind.
		_ = os.Remove(f.Name())
		if _, err := f.Write(s.buf.Bytes()); err != nil {
			f.Close()
			return 0, err
		}
		s.buf = bytes.Buffer{}
		s.f = f
	}
	var n int
	var err error
	if s.f != nil {
		n, err = s.f.Write(p)
	} else {
		n, err = s.buf.Write(p)
	}
	s.size += int64(n)
	return n, err
}

// ReadAt reads what was written.
func (s *File) ReadAt(p []byte, off int64) (int, error) {
	if s.f != nil {
		return s.f.ReadAt(p, off)
	}
	b := s.buf.Bytes()
	if off >= int64(len(b)) {
		return 0, io.EOF
	}
	n := copy(p, b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Size is the number of bytes written.
func (s *File) Size() int64 { return s.size }

// OnDisk reports whether the content moved to a temporary file.
func (s *File) OnDisk() bool { return s.f != nil }

// Reader returns a fresh reader over the whole content.
func (s *File) Reader() *io.SectionReader { return io.NewSectionReader(s, 0, s.size) }

// Close frees the memory or the temporary file.
func (s *File) Close() error {
	s.buf = bytes.Buffer{}
	if s.f != nil {
		err := s.f.Close()
		s.f = nil
		return err
	}
	return nil
}
