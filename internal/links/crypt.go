package links

import (
	"bufio"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// A stored file is a header and a run of chunks, each chunkSize bytes of
// the file (the last one shorter, possibly empty) sealed with AES-256-GCM:
//
//	"ZGL1" | salt (8 random bytes) | seal(chunk 0) | seal(chunk 1) | ...
//
// The nonce of chunk i is salt || i (32 bits, big endian); the additional
// data binds the chunk to its link, its file number and whether it is the
// last one, so chunks cannot be reordered, dropped, cut off at a chunk
// boundary, or moved to another file or link. Writing and reading hold
// one chunk in memory, whatever the file's size.
const (
	chunkSize = 64 << 10
	tagSize   = 16
	magic     = "ZGL1"
	saltSize  = 8
	maxChunks = 1<<32 - 1
)

// KeySize is the length of a message's file key.
const KeySize = 32

// NewKey makes a random file key.
func NewKey() ([]byte, error) {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, err
	}
	return k, nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("links: file key has %d bytes, want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// chunkAD is the additional data of one chunk.
func chunkAD(dst []byte, link string, n int, last bool) []byte {
	dst = append(dst[:0], link...)
	dst = binary.BigEndian.AppendUint32(append(dst, 0), uint32(n))
	if last {
		return append(dst, 1)
	}
	return append(dst, 0)
}

type sealer struct {
	w     io.Writer
	aead  cipher.AEAD
	link  string
	n     int
	nonce [12]byte
	ctr   uint32
	buf   []byte // plain text of the chunk being filled
	out   []byte
	ad    []byte
	err   error
}

// encrypt returns a writer that seals what is written to it into w; Close
// writes the last chunk (it does not close w).
func encrypt(w io.Writer, key []byte, link string, n int) (io.WriteCloser, error) {
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	s := &sealer{w: w, aead: aead, link: link, n: n, buf: make([]byte, 0, chunkSize), out: make([]byte, 0, chunkSize+tagSize)}
	if _, err := rand.Read(s.nonce[:saltSize]); err != nil {
		return nil, err
	}
	head := append([]byte(magic), s.nonce[:saltSize]...)
	if _, err := w.Write(head); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *sealer) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	done := 0
	for len(p) > 0 {
		// A full chunk is sealed only when more follows: the last one,
		// full or not, is sealed by Close with the mark of the last.
		if len(s.buf) == chunkSize {
			if s.err = s.flush(false); s.err != nil {
				return done, s.err
			}
		}
		k := copy(s.buf[len(s.buf):chunkSize], p)
		s.buf = s.buf[:len(s.buf)+k]
		p, done = p[k:], done+k
	}
	return done, nil
}

func (s *sealer) flush(last bool) error {
	if s.ctr == maxChunks {
		return errors.New("links: file too large")
	}
	binary.BigEndian.PutUint32(s.nonce[saltSize:], s.ctr)
	s.ad = chunkAD(s.ad, s.link, s.n, last)
	s.out = s.aead.Seal(s.out[:0], s.nonce[:], s.buf, s.ad)
	s.ctr++
	s.buf = s.buf[:0]
	_, err := s.w.Write(s.out)
	return err
}

func (s *sealer) Close() error {
	if s.err != nil {
		return s.err
	}
	s.err = s.flush(true)
	if s.err == nil {
		s.err = errors.New("links: writer closed")
		return nil
	}
	return s.err
}

// ErrCorrupt: a stored file does not decrypt: another key, a changed or
// cut file.
var ErrCorrupt = errors.New("links: stored file is damaged or not this link's")

type opener struct {
	r     *bufio.Reader
	aead  cipher.AEAD
	link  string
	n     int
	nonce [12]byte
	ctr   uint32
	in    []byte
	plain []byte
	pos   int
	ad    []byte
	last  bool // the last chunk was read
	err   error
}

// decrypt returns a reader of the plain text sealed in r by encrypt.
func decrypt(r io.Reader, key []byte, link string, n int) (io.Reader, error) {
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	o := &opener{r: bufio.NewReaderSize(r, 32<<10), aead: aead, link: link, n: n,
		in: make([]byte, chunkSize+tagSize), plain: make([]byte, 0, chunkSize)}
	head := make([]byte, len(magic)+saltSize)
	if _, err := io.ReadFull(o.r, head); err != nil || string(head[:len(magic)]) != magic {
		return nil, ErrCorrupt
	}
	copy(o.nonce[:saltSize], head[len(magic):])
	return o, nil
}

func (o *opener) Read(p []byte) (int, error) {
	for o.pos == len(o.plain) {
		if o.err != nil {
			return 0, o.err
		}
		if o.last {
			o.err = io.EOF
			return 0, io.EOF
		}
		o.err = o.next()
	}
	k := copy(p, o.plain[o.pos:])
	o.pos += k
	return k, nil
}

// next opens the next chunk.
func (o *opener) next() error {
	k, err := io.ReadFull(o.r, o.in)
	switch {
	case err == io.ErrUnexpectedEOF || err == io.EOF:
		o.last = true // a short chunk ends the file
	case err != nil:
		return err
	default:
		if _, perr := o.r.Peek(1); perr == io.EOF {
			o.last = true
		} else if perr != nil {
			return perr
		}
	}
	if k < tagSize {
		return ErrCorrupt // cut off, or an empty file without its last chunk
	}
	binary.BigEndian.PutUint32(o.nonce[saltSize:], o.ctr)
	o.ad = chunkAD(o.ad, o.link, o.n, o.last)
	plain, err := o.aead.Open(o.plain[:0], o.nonce[:], o.in[:k], o.ad)
	if err != nil {
		return ErrCorrupt
	}
	o.ctr++
	o.plain, o.pos = plain, 0
	return nil
}
