package rewrite

import (
	"encoding/base64"
	"io"
)

// base64Lines encodes to base64 in lines of 76 characters ending in CRLF,
// as RFC 2045 asks.
type base64Lines struct {
	w    io.Writer
	enc  io.WriteCloser
	line *lineBreaker
}

func newBase64Lines(w io.Writer) *base64Lines {
	lb := &lineBreaker{w: w}
	return &base64Lines{w: w, line: lb, enc: base64.NewEncoder(base64.StdEncoding, lb)}
}

func (b *base64Lines) Write(p []byte) (int, error) { return b.enc.Write(p) }

// Close flushes the last group; it does not write a final line break.
func (b *base64Lines) Close() error { return b.enc.Close() }

type lineBreaker struct {
	w   io.Writer
	col int
}

const lineLen = 76

func (l *lineBreaker) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		if l.col == lineLen {
			if _, err := io.WriteString(l.w, "\r\n"); err != nil {
				return written, err
			}
			l.col = 0
		}
		n := min(len(p), lineLen-l.col)
		if _, err := l.w.Write(p[:n]); err != nil {
			return written, err
		}
		l.col += n
		written += n
		p = p[n:]
	}
	return written, nil
}
