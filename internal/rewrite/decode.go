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
		return &base64Reader{r: r, block: min(base64Block, bufLen(r))}, true
	case "quoted-printable":
		return &qpReader{br: bufio.NewReaderSize(r, min(4<<10, bufLen(r)))}, true
	case "x-uuencode", "x-uue", "uuencode":
		return &uuReader{br: bufio.NewReaderSize(r, min(4<<10, bufLen(r)))}, true
	}
	return r, false
}

// bufLen is the read buffer for a decoder of r: 4 KiB (base64: its
// block), less for a small body, so that a message of many tiny parts
// does not make that much garbage for each.
func bufLen(r io.Reader) int {
	if sr, ok := r.(*io.SectionReader); ok && sr.Size() < base64Block {
		return max(16, int(sr.Size())+1)
	}
	return base64Block
}

// base64Reader decodes base64, skipping every byte outside the alphabet
// and tolerating missing padding at the end: the alphabet bytes form
// quads, a malformed quad ("a===", or "YQ==" glued to more data is fine
// but "Y=Q=" is not) is dropped. It works on whole blocks: line breaks
// are cut out with bytes.IndexByte and the rest goes to
// encoding/base64's decoder in one call; only a block that decoder
// rejects (stray characters, padding inside) is decoded quad by quad.
// After the first Read it allocates nothing.
type base64Reader struct {
	r     io.Reader
	in    []byte // raw input
	clean []byte // alphabet bytes; clean[:carry] are left from the last block
	carry int
	out   []byte // decoded bytes; out[pos:] not yet returned
	pos   int
	eof   bool
	block int // bytes of input read at a time
}

// base64Block is how much encoded input is read at a time.
const base64Block = 32 << 10

func (b *base64Reader) Read(p []byte) (int, error) {
	for b.pos == len(b.out) {
		if b.eof {
			return 0, io.EOF
		}
		if b.in == nil {
			if b.block == 0 {
				b.block = base64Block
			}
			b.in = make([]byte, b.block)
			b.clean = make([]byte, 0, b.block+4)
			b.out = make([]byte, 0, b.block/4*3+3)
		}
		n, err := b.r.Read(b.in)
		if err != nil && err != io.EOF {
			return 0, err
		}
		b.out, b.pos = b.out[:0], 0
		b.clean = stripLineBreaks(b.clean[:b.carry], b.in[:n])
		b.decode()
		if err == io.EOF {
			b.eof = true
			if b.carry >= 2 {
				// Missing padding: decode what is there.
				b.clean = append(b.clean[:b.carry], "=="[:4-b.carry]...)
				b.out = appendQuads(b.out, b.clean)
			}
		}
	}
	n := copy(p, b.out[b.pos:])
	b.pos += n
	return n, nil
}

// decode decodes the whole quads of b.clean into b.out and keeps the
// alphabet bytes after them as the carry for the next block.
func (b *base64Reader) decode() {
	k := len(b.clean) &^ 3
	b.out = b.out[:cap(b.out)]
	n, err := base64.StdEncoding.Decode(b.out, b.clean[:k])
	if err == nil {
		b.out = b.out[:n]
		// The tail was not looked at yet: keep its alphabet bytes.
		b.carry = copy(b.clean, keepAlphabet(b.clean[k:k], b.clean[k:]))
		return
	}
	// Something besides the alphabet, or padding inside the block.
	c := keepAlphabet(b.clean[:0], b.clean)
	k = len(c) &^ 3
	b.out = appendQuads(b.out[:0], c[:k])
	b.carry = copy(b.clean, c[k:])
}

// stripLineBreaks appends src to dst without its CR and LF bytes, a line
// at a time.
func stripLineBreaks(dst, src []byte) []byte {
	for len(src) > 0 {
		i := bytes.IndexByte(src, '\n')
		line := src
		if i >= 0 {
			line, src = src[:i], src[i+1:]
		} else {
			src = nil
		}
		if len(line) > 0 && line[len(line)-1] == '\r' {
			line = line[:len(line)-1]
		}
		dst = append(dst, line...)
	}
	return dst
}

// keepAlphabet appends the alphabet bytes of src to dst, which may be
// src[:0].
func keepAlphabet(dst, src []byte) []byte {
	for _, c := range src {
		if isBase64(c) {
			dst = append(dst, c)
		}
	}
	return dst
}

// appendQuads decodes quad by quad, dropping malformed quads as mail
// clients do. len(src) is a multiple of 4.
func appendQuads(dst, src []byte) []byte {
	var q [3]byte
	for i := 0; i+4 <= len(src); i += 4 {
		if n, err := base64.StdEncoding.Decode(q[:], src[i:i+4]); err == nil {
			dst = append(dst, q[:n]...)
		}
	}
	return dst
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
