package rewrite

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/zipgate/zipgate/internal/mimeparam"
)

// Limits bound what the parser accepts; every input has one.
type Limits struct {
	MaxHeaderBytes int // one header block
	MaxDepth       int // multipart nesting
	MaxParts       int // parts in the whole message
}

// Parse errors. Each one means the message cannot be taken apart safely.
var (
	ErrTooDeep        = errors.New("MIME structure nested too deep")
	ErrTooManyParts   = errors.New("too many MIME parts")
	ErrHeaderTooLarge = errors.New("header block too large")
)

// Field is one header field as it was written.
type Field struct {
	Name       string // as written; "" for an mbox "From " line
	Value      string // unfolded, without the name and colon
	Start, End int64  // the exact bytes, folding and line ending included
}

// Part is one node of the MIME tree. Offsets point into the message, so
// parts that are not changed are copied through byte for byte.
type Part struct {
	Fields []Field

	Start     int64 // first byte of the header block
	BodyStart int64 // first byte after the blank line ending the header
	End       int64 // end of the body (the line break before a delimiter belongs to the delimiter)

	// Delim is where the delimiter that opens this part starts, including
	// the line break before it; DelimEnd is just after its line.
	Delim, DelimEnd int64

	MediaType   string // lower case; "text/plain" when absent (RFC 2045)
	Params      map[string]string
	Disposition string // lower case, "" when absent
	Encoding    string // Content-Transfer-Encoding, lower case
	Name        string // decoded file name, "" when none

	Parent *Part // nil for the message itself

	// Multipart only.
	Boundary   string
	Children   []*Part
	CloseDelim int64 // start of the closing delimiter (with its line break); -1 when missing
	CloseEnd   int64 // just after the closing delimiter line
}

// Get returns the unfolded value of the first field with this name.
func (p *Part) Get(name string) string {
	for _, f := range p.Fields {
		if strings.EqualFold(f.Name, name) {
			return f.Value
		}
	}
	return ""
}

// IsMultipart reports whether the part has children to walk.
func (p *Part) IsMultipart() bool { return p.Boundary != "" }

// Parse reads the MIME structure of the message in r in one pass.
func Parse(r io.ReaderAt, size int64, lim Limits) (*Part, error) {
	ps := &parser{
		lr:  newLineReader(io.NewSectionReader(r, 0, size)),
		lim: lim,
	}
	root, err := ps.part(0, nil)
	if err != nil {
		return nil, err
	}
	return root, nil
}

type parser struct {
	lr    *lineReader
	lim   Limits
	stack []string // boundaries of the open multiparts, outermost first
	parts int

	// pending is a delimiter line read but not yet handled by its owner.
	pending *delim
}

type delim struct {
	level      int   // index into stack
	close      bool  // "--b--"
	start, end int64 // line break before the line, end of the line
}

// part parses a header block and body starting at the current line.
func (ps *parser) part(depth int, parent *Part) (*Part, error) {
	top := parent == nil
	ps.parts++
	if ps.parts > ps.lim.MaxParts {
		return nil, ErrTooManyParts
	}
	if depth > ps.lim.MaxDepth {
		return nil, ErrTooDeep
	}
	p := &Part{Start: ps.lr.off, CloseDelim: -1, Parent: parent}
	if err := ps.header(p, top); err != nil {
		return nil, err
	}
	p.classify()
	if ps.pending != nil {
		// The header ran into a delimiter: a part without a body.
		p.BodyStart = max(ps.pending.start, p.Start)
		p.End = p.BodyStart
		p.Boundary = ""
		return p, nil
	}
	if p.Boundary != "" {
		return p, ps.multipart(p, depth)
	}
	return p, ps.leaf(p)
}

// header reads header fields up to the blank line, EOF, a delimiter of an
// enclosing multipart, or a line that cannot be a header (lenient: the
// body started without the blank line).
func (ps *parser) header(p *Part, top bool) error {
	var total int
	first := true
	// The last field's value is built here, so that a field folded over
	// many lines costs linear time.
	var val strings.Builder
	flush := func() {
		if n := len(p.Fields); n > 0 && p.Fields[n-1].Name != "" {
			p.Fields[n-1].Value = strings.TrimSpace(val.String())
		}
		val.Reset()
	}
	defer flush()
	for {
		line, start, err := ps.lr.next()
		if err == io.EOF {
			p.BodyStart = ps.lr.off
			return nil
		}
		if err != nil {
			return err
		}
		total += int(ps.lr.off - start)
		if total > ps.lim.MaxHeaderBytes {
			return ErrHeaderTooLarge
		}
		if d := ps.matchDelim(line.prefix, start); d != nil {
			ps.pending = d
			return nil
		}
		content := trimEOL(line.prefix)
		switch {
		case len(content) == 0: // the blank line (or a lone "\r" at the end)
			p.BodyStart = ps.lr.off
			return nil
		case (content[0] == ' ' || content[0] == '\t') && len(p.Fields) > 0:
			p.Fields[len(p.Fields)-1].End = ps.lr.off
			val.WriteByte(' ')
			val.Write(bytes.TrimSpace(content))
		case first && top && bytes.HasPrefix(content, []byte("From ")):
			// An mbox separator some tools leave in front; keep it verbatim.
			flush()
			p.Fields = append(p.Fields, Field{Start: start, End: ps.lr.off})
		default:
			i := bytes.IndexByte(content, ':')
			if i <= 0 || bytes.ContainsAny(content[:i], " \t") && !isFieldName(bytes.TrimRight(content[:i], " \t")) {
				// Not a header: the body starts here, without a blank line.
				ps.lr.unread(line, start)
				p.BodyStart = start
				return nil
			}
			flush()
			p.Fields = append(p.Fields, Field{
				Name:  string(bytes.TrimRight(content[:i], " \t")),
				Start: start,
				End:   ps.lr.off,
			})
			val.Write(content[i+1:])
		}
		first = false
	}
}

func isFieldName(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c >= 127 || c == ':' {
			return false
		}
	}
	return len(b) > 0
}

// classify fills the content fields from the header.
func (p *Part) classify() {
	ct := p.Get("Content-Type")
	mt, params := mimeparam.Parse(ct)
	if mt == "" || !strings.Contains(mt, "/") {
		// RFC 2046 5.1.5: in a digest the default is a message.
		mt, params = "text/plain", map[string]string{}
		if p.Parent != nil && p.Parent.MediaType == "multipart/digest" {
			mt = "message/rfc822"
		}
	}
	p.MediaType, p.Params = mt, params
	// Several Content-Disposition fields: the strictest wins, so a part
	// some client shows as an attachment is treated as one.
	for _, f := range p.Fields {
		if strings.EqualFold(f.Name, "Content-Disposition") {
			d, _ := mimeparam.Parse(f.Value)
			if p.Disposition == "" || d == "attachment" {
				p.Disposition = d
			}
			if p.Name == "" {
				p.Name = mimeparam.FileName(ct, f.Value)
			}
		}
	}
	p.Encoding = strings.ToLower(strings.TrimSpace(p.Get("Content-Transfer-Encoding")))
	if p.Name == "" {
		p.Name = mimeparam.FileName(ct, "")
	}
	if strings.HasPrefix(mt, "multipart/") {
		b := params["boundary"]
		switch p.Encoding {
		case "", "7bit", "8bit", "binary":
		default:
			// An encoded multipart is not walked: some clients decode it,
			// so it is zipped whole.
			b = ""
		}
		if b != "" && len(b) <= 200 {
			p.Boundary = b
		}
	}
}

// multipart reads the preamble, each child, the closing delimiter and the
// epilogue.
func (ps *parser) multipart(p *Part, depth int) error {
	ps.stack = append(ps.stack, p.Boundary)
	level := len(ps.stack) - 1
	defer func() { ps.stack = ps.stack[:level] }()

	for {
		if ps.pending == nil {
			if err := ps.skipToDelim(); err != nil {
				return err
			}
		}
		d := ps.pending
		if d == nil { // EOF: no closing delimiter
			p.End = ps.lr.off
			return nil
		}
		if d.level != level {
			// An enclosing multipart's delimiter: this one ends unclosed.
			p.End = d.start
			return nil
		}
		ps.pending = nil
		if d.close {
			p.CloseDelim, p.CloseEnd = d.start, d.end
			// This boundary is done: a stray "--b" in the epilogue is text.
			ps.stack = ps.stack[:level]
			// Epilogue: up to the enclosing multipart's next delimiter or EOF.
			if err := ps.skipToDelim(); err != nil {
				return err
			}
			if ps.pending != nil {
				p.End = ps.pending.start
			} else {
				p.End = ps.lr.off
			}
			return nil
		}
		child, err := ps.part(depth+1, p)
		if err != nil {
			return err
		}
		// The first delimiter may directly follow the header's blank line.
		child.Delim, child.DelimEnd = max(d.start, p.BodyStart), d.end
		p.Children = append(p.Children, child)
	}
}

// leaf reads a body up to the next delimiter of any open multipart.
func (ps *parser) leaf(p *Part) error {
	if err := ps.skipToDelim(); err != nil {
		return err
	}
	if ps.pending != nil {
		p.End = max(ps.pending.start, p.BodyStart)
	} else {
		p.End = ps.lr.off
	}
	return nil
}

// skipToDelim reads lines until one is a delimiter of an open multipart
// (left in pending) or EOF (pending stays nil).
func (ps *parser) skipToDelim() error {
	for {
		line, start, err := ps.lr.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if d := ps.matchDelim(line.prefix, start); d != nil {
			ps.pending = d
			return nil
		}
	}
}

// matchDelim checks a line against the open boundaries, innermost first.
// Transport padding (trailing white space) is allowed after the delimiter.
func (ps *parser) matchDelim(prefix []byte, start int64) *delim {
	if len(ps.stack) == 0 || !bytes.HasPrefix(prefix, []byte("--")) {
		return nil
	}
	for i := len(ps.stack) - 1; i >= 0; i-- {
		b := ps.stack[i]
		rest, ok := bytes.CutPrefix(prefix[2:], []byte(b))
		if !ok {
			continue
		}
		isClose := bytes.HasPrefix(rest, []byte("--"))
		if isClose {
			rest = rest[2:]
		}
		if len(bytes.Trim(rest, " \t\r\n")) != 0 {
			continue
		}
		return &delim{level: i, close: isClose, start: start - ps.lr.prevEOL, end: ps.lr.off}
	}
	return nil
}

func trimEOL(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}

// lineReader reads lines and knows their offsets. Lines may be of any
// length; a line longer than the buffer is counted and only its first
// bufSize bytes are kept, enough for every check made on a line.
type lineReader struct {
	br      *bufio.Reader
	off     int64 // offset just after the last line returned
	prevEOL int64 // length of the line break ending the line before the last one
	lastEOL int64 // length of the line break ending the last line

	cur        line
	unreadLine *line
	unreadAt   int64
}

type line struct {
	prefix   []byte // the line, or its first bufSize bytes
	complete bool   // ended with a line break
}

const bufSize = 64 << 10

func newLineReader(r io.Reader) *lineReader {
	return &lineReader{br: bufio.NewReaderSize(r, bufSize)}
}

// unread gives the line back to the next call of next.
func (lr *lineReader) unread(l *line, start int64) {
	lr.unreadLine = &line{prefix: append([]byte(nil), l.prefix...), complete: l.complete}
	lr.unreadAt = start
}

// next returns the next line and the offset where it starts.
func (lr *lineReader) next() (*line, int64, error) {
	if l := lr.unreadLine; l != nil {
		lr.unreadLine = nil
		return l, lr.unreadAt, nil
	}
	start := lr.off
	b, err := lr.br.ReadSlice('\n')
	if len(b) == 0 && err == io.EOF {
		return nil, start, io.EOF
	}
	// The slice is only valid until the next read; long lines are copied
	// because reading on overwrites the buffer.
	lr.cur = line{prefix: b}
	n := int64(len(b))
	var last2 tail
	last2.push(b)
	if err == bufio.ErrBufferFull {
		lr.cur.prefix = append([]byte(nil), b...)
	}
	for err == bufio.ErrBufferFull {
		b, err = lr.br.ReadSlice('\n')
		n += int64(len(b))
		last2.push(b)
	}
	if err != nil && err != io.EOF {
		return nil, start, fmt.Errorf("reading message: %w", err)
	}
	lr.cur.complete = last2.n > 0 && last2.b[1] == '\n'
	lr.prevEOL = lr.lastEOL
	switch {
	case last2.n > 1 && last2.b == [2]byte{'\r', '\n'}:
		lr.lastEOL = 2
	case lr.cur.complete:
		lr.lastEOL = 1
	default:
		lr.lastEOL = 0
	}
	lr.off = start + n
	return &lr.cur, start, nil
}

// tail keeps the last two bytes seen across the pieces of a line.
type tail struct {
	b [2]byte
	n int
}

func (t *tail) push(b []byte) {
	for _, c := range b[max(0, len(b)-2):] {
		t.b[0], t.b[1] = t.b[1], c
		t.n++
	}
}
