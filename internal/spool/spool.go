// Package spool holds a message (or a zip being built) in memory while it
// is small and in a temporary file once it grows, so memory stays bounded
// whatever the size of the mail.
package spool

import (
	"io"
	"os"
	"sync"
)

// File is written once, then read any number of times through ReaderAt.
// Close removes the temporary file, if one was made.
type File struct {
	dir       string
	threshold int
	buf       []byte // the content while in memory; from memPool
	f         *os.File
	size      int64
}

// New returns an empty spool that moves to a temp file in dir (the system
// default when empty) once more than threshold bytes were written.
func New(dir string, threshold int) *File {
	return &File{dir: dir, threshold: threshold}
}

func (s *File) Write(p []byte) (int, error) {
	if s.f == nil && len(s.buf)+len(p) > s.threshold {
		f, err := os.CreateTemp(s.dir, "zipgate-spool-*")
		if err != nil {
			return 0, err
		}
		// Unlinked at once on Unix: a crash leaves nothing behind.
		_ = os.Remove(f.Name())
		if _, err := f.Write(s.buf); err != nil {
			f.Close()
			return 0, err
		}
		putMem(s.buf)
		s.buf = nil
		s.f = f
	}
	var n int
	var err error
	if s.f != nil {
		n, err = s.f.Write(p)
	} else {
		if s.buf == nil {
			s.buf = getMem(s.threshold)
		}
		s.buf = append(s.buf, p...)
		n = len(p)
	}
	s.size += int64(n)
	return n, err
}

// memPool keeps the memory of closed spools: the gateway makes two or
// three per message, each growing to smtp.spool_memory_bytes, and would
// otherwise leave megabytes of garbage per message.
var memPool sync.Pool

// maxPooled bounds what the pool keeps (and so what stays allocated
// after a burst): thresholds above it get fresh memory.
const maxPooled = 8 << 20

func getMem(threshold int) []byte {
	if threshold <= maxPooled {
		if b, ok := memPool.Get().(*[]byte); ok && cap(*b) >= threshold {
			return (*b)[:0]
		}
		return make([]byte, 0, threshold)
	}
	return nil // append grows it as needed
}

func putMem(b []byte) {
	if b != nil && cap(b) <= maxPooled {
		memPool.Put(&b)
	}
}

// ReadAt reads what was written.
func (s *File) ReadAt(p []byte, off int64) (int, error) {
	if s.f != nil {
		return s.f.ReadAt(p, off)
	}
	b := s.buf
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
	putMem(s.buf)
	s.buf = nil
	if s.f != nil {
		err := s.f.Close()
		s.f = nil
		return err
	}
	return nil
}

// Open reads a file written before (a held message) as a spool: Close
// closes it and leaves it where it is.
func Open(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &File{f: f, size: st.Size(), threshold: -1}, nil
}
