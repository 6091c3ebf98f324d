package rewrite

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"io"
	"strings"
)

// decoder returns a reader of the decoded body for a transfer encoding,
// and false when the encoding is unknown (the raw bytes are returned then).
// The decoders are lenient like mail clients: stray characters in base64,
// bad escapes in quoted-printable are kept or skipped, never fatal.
func decoder(encoding string, r io.Reader) (io.Reader, bool) {
	switch strings.ToLower(encoding) {
	case "", "7bit", "8bit", "binary":
		return r, true
	case "base64":
		return &base64Reader{r: r, in: make([]byte, bufLen(r))}, true
	case "quoted-printable":
		return &qpReader{br: bufio.NewReaderSize(r, bufLen(r))}, true
	case "x-uuencode", "x-uue", "uuencode":
		return &uuReader{br: bufio.NewReaderSize(r, bufLen(r))}, true
	}
	return r, false
}

// bufLen is the read buffer for a decoder of r: 4 KiB, less for a small
// body, so that a message of many tiny parts does not make 4 KiB of
// garbage for each.
func bufLen(r io.Reader) int {
	if sr, ok := r.(*io.SectionReader); ok && sr.Size() < 4<<10 {
		return max(16, int(sr.Size())+1)
	}
	return 4 << 10
}

// base64Reader decodes base64, skipping every byte outside the alphabet
// and tolerating missing padding at the end.
type base64Reader struct {
	r    io.Reader
	quad []byte // alphabet bytes not yet decoded (< 4)
	out  []byte // decoded bytes; out[pos:] not yet returned
	pos  int
	in   []byte
	eof  bool
}

func (b *base64Reader) Read(p []byte) (int, error) {
	for b.pos == len(b.out) {
		if b.eof {
			return 0, io.EOF
		}
		b.out, b.pos = b.out[:0], 0 // reuse the buffer
		n, err := b.r.Read(b.in[:])
		for _, c := range b.in[:n] {
			if !isBase64(c) {
				continue
			}
			b.quad = append(b.quad, c)
			if len(b.quad) == 4 {
				b.decodeQuad()
			}
		}
		if err == io.EOF {
			b.eof = true
			if len(b.quad) >= 2 {
				// Missing padding: decode what is there.
				for len(b.quad) < 4 {
					b.quad = append(b.quad, '=')
				}
				b.decodeQuad()
			}
		} else if err != nil {
			return 0, err
		}
	}
	n := copy(p, b.out[b.pos:])
	b.pos += n
	return n, nil
}

func (b *base64Reader) decodeQuad() {
	var dst [3]byte
	n, err := base64.StdEncoding.Decode(dst[:], b.quad)
	if err == nil {
		b.out = append(b.out, dst[:n]...)
	}
	// A malformed quad ("a===") is dropped, as clients do.
	b.quad = b.quad[:0]
}

func isBase64(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '/' || c == '='
}

// qpReader decodes quoted-printable (RFC 2045 6.7). An '=' that starts no
// valid escape is kept as it is; trailing white space is dropped.
type qpReader struct {
	br    *bufio.Reader
	out   []byte // out[pos:] not yet returned
	pos   int
	carry []byte // the start of an escape cut by a piece boundary
	err   error
}

func (q *qpReader) Read(p []byte) (int, error) {
	for q.pos == len(q.out) {
		if q.err != nil {
			return 0, q.err
		}
		line, err := q.br.ReadSlice('\n')
		piece := err == bufio.ErrBufferFull // a long line, decoded in pieces
		if piece {
			err = nil
		} else if err != nil {
			q.err = err
		}
		buf := append(q.carry, line...)
		q.carry = nil
		if piece {
			// An escape cut at the end of a piece waits for the next one.
			if i := bytes.LastIndexByte(buf, '='); i >= 0 && i >= len(buf)-2 {
				q.carry = append([]byte(nil), buf[i:]...)
				buf = buf[:i]
			}
		}
		q.out, q.pos = appendQP(q.out[:0], buf, !piece), 0
	}
	n := copy(p, q.out[q.pos:])
	q.pos += n
	return n, nil
}

// appendQP decodes one line, or a piece of a long one (whole = false:
// no line end, and its trailing blanks are not at the end of a line).
func appendQP(dst, line []byte, whole bool) []byte {
	body, eol := line, []byte(nil)
	if i := bytes.IndexByte(line, '\n'); i >= 0 {
		body, eol = line[:i], []byte("\r\n")
		body = bytes.TrimSuffix(body, []byte("\r"))
	}
	if whole {
		body = bytes.TrimRight(body, " \t")
	}
	if bytes.HasSuffix(body, []byte("=")) && eol != nil {
		body, eol = body[:len(body)-1], nil // soft line break
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		if c == '=' && i+2 < len(body) {
			if h, ok := unhex(body[i+1]); ok {
				if l, ok := unhex(body[i+2]); ok {
					dst = append(dst, h<<4|l)
					i += 2
					continue
				}
			}
		}
		dst = append(dst, c)
	}
	return append(dst, eol...)
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// uuReader decodes an x-uuencode body: "begin mode name", lines, "end".
type uuReader struct {
	br      *bufio.Reader
	out     []byte // out[pos:] not yet returned
	pos     int
	started bool
	done    bool
}

func (u *uuReader) Read(p []byte) (int, error) {
	for u.pos == len(u.out) {
		if u.done {
			return 0, io.EOF
		}
		line, err := u.br.ReadString('\n')
		if err != nil && line == "" {
			u.done = true
			continue
		}
		line = strings.TrimRight(line, "\r\n")
		switch {
		case !u.started:
			u.started = strings.HasPrefix(line, "begin ")
		case line == "end":
			u.done = true
		default:
			u.out, u.pos = appendUULine(u.out[:0], line), 0
		}
	}
	n := copy(p, u.out[u.pos:])
	u.pos += n
	return n, nil
}

func appendUULine(dst []byte, line string) []byte {
	if line == "" {
		return dst
	}
	n := int((line[0] - ' ') & 0x3f)
	data := line[1:]
	for i := 0; n > 0; i += 4 {
		var c [4]byte
		for j := range 4 {
			if i+j < len(data) {
				c[j] = (data[i+j] - ' ') & 0x3f
			}
		}
		b := [3]byte{c[0]<<2 | c[1]>>4, c[1]<<4 | c[2]>>2, c[2]<<6 | c[3]}
		take := min(n, 3)
		dst = append(dst, b[:take]...)
		n -= take
	}
	return dst
}
