package rewrite

import (
	"encoding/base64"
	"io"
)

// lineLen is the length of a base64 line; lineIn bytes make one.
const (
	lineLen = 76
	lineIn  = lineLen / 4 * 3
)

// base64Lines encodes to base64 in lines of 76 characters separated by
// CRLF, as RFC 2045 asks. It encodes whole lines straight into a block
// buffer and writes the block in one call, so the writer below sees few,
// large writes; it allocates only its buffer, once.
type base64Lines struct {
	w       io.Writer
	pend    [lineIn]byte // input of the unfinished line
	npend   int
	buf     []byte // encoded lines waiting to be written
	in      []byte // ReadFrom's input buffer
	started bool   // a line was encoded: the next one needs a CRLF first
}

// base64LinesBlock lines are written at a time (32 KiB of output).
const base64LinesBlock = 420

func newBase64Lines(w io.Writer) *base64Lines { return &base64Lines{w: w} }

func (b *base64Lines) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		var in []byte
		if b.npend == 0 && len(p) >= lineIn {
			in, p = p[:lineIn], p[lineIn:]
		} else {
			c := copy(b.pend[b.npend:], p)
			b.npend += c
			p = p[c:]
			if b.npend < lineIn {
				break
			}
			in, b.npend = b.pend[:], 0
		}
		b.line(in)
		if len(b.buf) >= base64LinesBlock*(lineLen+2) {
			if err := b.flush(); err != nil {
				return n - len(p), err
			}
		}
	}
	return n, nil
}

// line encodes one line (or the short last one) into the buffer.
func (b *base64Lines) line(in []byte) {
	if b.buf == nil {
		b.buf = make([]byte, 0, (base64LinesBlock+1)*(lineLen+2))
	}
	if b.started {
		b.buf = append(b.buf, '\r', '\n')
	}
	b.started = true
	n := len(b.buf)
	b.buf = b.buf[:n+base64.StdEncoding.EncodedLen(len(in))]
	base64.StdEncoding.Encode(b.buf[n:], in)
}

func (b *base64Lines) flush() error {
	_, err := b.w.Write(b.buf)
	b.buf = b.buf[:0]
	return err
}

// ReadFrom encodes r to its end (io.Copy calls it).
func (b *base64Lines) ReadFrom(r io.Reader) (int64, error) {
	if b.in == nil {
		b.in = make([]byte, base64LinesBlock*lineIn)
	}
	var total int64
	for {
		n, err := r.Read(b.in)
		total += int64(n)
		if _, werr := b.Write(b.in[:n]); werr != nil {
			return total, werr
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// Close encodes and writes what is left; it does not write a final line
// break.
func (b *base64Lines) Close() error {
	if b.npend > 0 {
		b.line(b.pend[:b.npend])
		b.npend = 0
	}
	if len(b.buf) == 0 {
		return nil
	}
	return b.flush()
}
