package rewrite

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"iter"
	"strings"

	"github.com/zipgate/zipgate/internal/mimeparam"
)

// Limits bound what the parser accepts; every input has one.
type Limits struct {
	MaxHeaderBytes int // one header block
	MaxDepth       int // multipart nesting
	MaxParts       int // parts in the whole message
	// MaxTotalHeaderBytes bounds all header blocks of the message
	// together; 0 means no bound beyond the size of the message.
	MaxTotalHeaderBytes int
	// MaxAttachments bounds the files that go into the zip; 0 means
	// no bound beyond MaxParts.
	MaxAttachments int
}

// Parse errors. Each one means the message cannot be taken apart safely.
var (
	ErrTooDeep         = errors.New("MIME structure nested too deep")
	ErrTooManyParts    = errors.New("too many MIME parts")
	ErrHeaderTooLarge  = errors.New("header block too large")
	ErrHeadersTooLarge = errors.New("header blocks too large in total")
	ErrTooManyFiles    = errors.New("too many attachments")
)

// Field is one header field as it was written.
type Field struct {
	Name       string // as written; "" for an mbox "From " line
	Value      string // unfolded, without the name and colon
	Start, End int64  // the exact bytes, folding and line ending included
}

// Part is one node of the MIME tree. Offsets point into the message, so
// parts that are not changed are copied through byte for byte.
//
// A part keeps no copy of its header fields: memory must not grow with
// the number of header lines. Fields, Get and Params read them again from
// the message when asked.
type Part struct {
	Start     int64 // first byte of the header block
	HeaderEnd int64 // just after the last header field (Start when none)
	BodyStart int64 // first byte after the blank line ending the header
	End       int64 // end of the body (the line break before a delimiter belongs to the delimiter)

	// Delim is where the delimiter that opens this part starts, including
	// the line break before it; DelimEnd is just after its line.
	Delim, DelimEnd int64

	MediaType   string // lower case; "text/plain" when absent (RFC 2045)
	Disposition string // lower case, "" when absent
	Encoding    string // Content-Transfer-Encoding, lower case
	Name        string // decoded file name, "" when none

	Parent *Part // nil for the message itself

	// Multipart only.
	Boundary   string
	Children   []*Part
	CloseDelim int64 // start of the closing delimiter (with its line break); -1 when missing
	CloseEnd   int64 // just after the closing delimiter line

	src          *source
	ambiguity    ambiguity
	implicitBody bool // the header ended at a line that is no field, without a blank line
}

// source is the message a part's offsets point into.
type source struct{ r io.ReaderAt }

// ambiguity is why mail readers could disagree on what a part is.
type ambiguity uint8

const (
	unambiguous ambiguity = iota
	severalTypes
	severalEncodings
	severalBoundaries
	fieldsAfterBody
)

// Ambiguous, when not "", says why mail readers could disagree on what
// this part is (several Content-Type fields, say). Such a part is not
// walked and is zipped whole.
func (p *Part) Ambiguous() string {
	return [...]string{
		unambiguous:       "",
		severalTypes:      "several Content-Type fields that disagree",
		severalEncodings:  "several Content-Transfer-Encoding fields that disagree",
		severalBoundaries: "several boundary parameters",
		fieldsAfterBody:   "header fields after a line that is none",
	}[p.ambiguity]
}

// Get returns the unfolded value of the first field with this name.
func (p *Part) Get(name string) string {
	v := ""
	p.eachField(func(f Field) bool {
		if strings.EqualFold(f.Name, name) {
			v = f.Value
			return false
		}
		return true
	}, name)
	return v
}

// Fields returns the header fields of p as written, in order.
func (p *Part) Fields() iter.Seq[Field] {
	return func(yield func(Field) bool) { p.eachField(yield, "") }
}

// Params returns the parameters of the Content-Type field.
func (p *Part) Params() map[string]string {
	_, params := mimeparam.Parse(p.Get("Content-Type"))
	return params
}

// IsMultipart reports whether the part has children to walk.
func (p *Part) IsMultipart() bool { return p.Boundary != "" }

// eachField reads the header block again and calls fn for each field
// until it returns false. With only set, values of other fields are not
// built. The lines were classified when the message was parsed: every
// line up to HeaderEnd is a field, a continuation or the mbox line.
func (p *Part) eachField(fn func(Field) bool, only string) {
	n := p.HeaderEnd - p.Start
	if n <= 0 || p.src == nil {
		return
	}
	lr := newLineReaderSize(io.NewSectionReader(p.src.r, p.Start, n), int(min(n+1, bufSize)))
	var cur Field
	var val strings.Builder
	have, want := false, false
	emit := func() bool {
		if !have {
			return true
		}
		if want {
			cur.Value = strings.TrimSpace(val.String())
		}
		val.Reset()
		have = false
		return fn(cur)
	}
	for first := true; ; first = false {
		line, start, err := lr.next()
		if err != nil {
			emit()
			return
		}
		content := trimEOL(line.prefix)
		switch {
		case len(content) > 0 && (content[0] == ' ' || content[0] == '\t') && have:
			cur.End = p.Start + lr.off
			if want {
				val.WriteByte(' ')
				val.Write(bytes.TrimSpace(content))
			}
		case first && p.Parent == nil && bytes.HasPrefix(content, []byte("From ")):
			cur, have, want = Field{Start: p.Start + start, End: p.Start + lr.off}, true, false
		default:
			if !emit() {
				return
			}
			name, value, _ := bytes.Cut(content, []byte(":"))
			cur = Field{Name: string(bytes.TrimRight(name, " \t")), Start: p.Start + start, End: p.Start + lr.off}
			have = true
			want = only == "" || strings.EqualFold(cur.Name, only)
			if want {
				val.Write(value)
			}
		}
	}
}

// Parse reads the MIME structure of the message in r in one pass.
func Parse(r io.ReaderAt, size int64, lim Limits) (*Part, error) {
	ps := &parser{
		lr:  newLineReader(io.NewSectionReader(r, 0, size)),
		lim: lim,
		src: &source{r},
	}
	root, err := ps.part(0, nil)
	if err != nil {
		return nil, err
	}
	return root, nil
}

type parser struct {
	lr          *lineReader
	lim         Limits
	src         *source
	stack       []string // boundaries of the open multiparts, outermost first
	parts       int
	headerBytes int // header bytes of all parts so far

	// pending is a delimiter line read but not yet handled by its owner;
	// it points at delimBuf, so reading delimiters allocates nothing.
	pending  *delim
	delimBuf delim

	// The fields of the header being read that decide what a part is.
	val  strings.Builder
	hdr  headerValues
	kind fieldKind
}

type delim struct {
	level      int   // index into stack
	close      bool  // "--b--"
	start, end int64 // line break before the line, end of the line
}

// fieldKind is a header field the parser looks at; the others are only
// counted.
type fieldKind int

const (
	fieldOther fieldKind = iota
	fieldContentType
	fieldDisposition
	fieldEncoding
)

// headerValues are the values of the fields that decide what a part is,
// kept only while its header is read.
type headerValues struct {
	contentType  []string
	dispositions []string
	encodings    []string
}

func (h *headerValues) reset() {
	clear(h.contentType)
	clear(h.dispositions)
	clear(h.encodings)
	*h = headerValues{contentType: h.contentType[:0], dispositions: h.dispositions[:0], encodings: h.encodings[:0]}
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
	p := &Part{Start: ps.lr.off, CloseDelim: -1, Parent: parent, src: ps.src}
	p.HeaderEnd = p.Start
	ps.hdr.reset()
	if err := ps.header(p, top); err != nil {
		return nil, err
	}
	p.classify(&ps.hdr)
	ps.hdr.reset()
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
// body started without the blank line). Only the fields that decide what
// the part is are kept (in ps.hdr); the rest are counted against the
// limits and left in the message.
func (ps *parser) header(p *Part, top bool) error {
	var total int
	first := true
	defer ps.endField()
	for {
		line, start, err := ps.lr.next()
		if err == io.EOF {
			p.BodyStart = ps.lr.off
			return nil
		}
		if err != nil {
			return err
		}
		n := int(ps.lr.off - start)
		total += n
		ps.headerBytes += n
		if total > ps.lim.MaxHeaderBytes {
			return ErrHeaderTooLarge
		}
		if ps.lim.MaxTotalHeaderBytes > 0 && ps.headerBytes > ps.lim.MaxTotalHeaderBytes {
			return ErrHeadersTooLarge
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
		case (content[0] == ' ' || content[0] == '\t') && p.HeaderEnd > p.Start:
			p.HeaderEnd = ps.lr.off
			if ps.kind != fieldOther {
				ps.val.WriteByte(' ')
				ps.val.Write(bytes.TrimSpace(content))
			}
		case first && top && bytes.HasPrefix(content, []byte("From ")):
			// An mbox separator some tools leave in front; keep it verbatim.
			ps.endField()
			p.HeaderEnd = ps.lr.off
		default:
			i := bytes.IndexByte(content, ':')
			if i <= 0 || bytes.ContainsAny(content[:i], " \t") && !isFieldName(bytes.TrimRight(content[:i], " \t")) {
				// Not a header: the body starts here, without a blank line.
				ps.lr.unread(line, start)
				p.BodyStart = start
				p.implicitBody = true
				return nil
			}
			ps.endField()
			p.HeaderEnd = ps.lr.off
			ps.kind = kindOf(bytes.TrimRight(content[:i], " \t"))
			if ps.kind != fieldOther {
				ps.val.Write(content[i+1:])
			}
		}
		first = false
	}
}

// endField files the value of the field just read.
func (ps *parser) endField() {
	if ps.kind != fieldOther {
		v := strings.TrimSpace(ps.val.String())
		switch ps.kind {
		case fieldContentType:
			ps.hdr.contentType = append(ps.hdr.contentType, v)
		case fieldDisposition:
			ps.hdr.dispositions = append(ps.hdr.dispositions, v)
		case fieldEncoding:
			ps.hdr.encodings = append(ps.hdr.encodings, v)
		}
	}
	ps.val.Reset()
	ps.kind = fieldOther
}

func kindOf(name []byte) fieldKind {
	switch {
	case bytes.EqualFold(name, []byte("Content-Type")):
		return fieldContentType
	case bytes.EqualFold(name, []byte("Content-Disposition")):
		return fieldDisposition
	case bytes.EqualFold(name, []byte("Content-Transfer-Encoding")):
		return fieldEncoding
	}
	return fieldOther
}

func isFieldName(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c >= 127 || c == ':' {
			return false
		}
	}
	return len(b) > 0
}

// Longest values a part keeps; longer ones are hostile, and are read the
// way that zips.
const (
	maxTypeLen = 255  // a media type, disposition or transfer encoding
	maxNameLen = 1024 // a file name (the zip cuts it to 240 bytes anyway)
)

// classify fills the content fields from the header values. Where mail
// readers could take a header two ways (several Content-Type or
// Content-Transfer-Encoding fields that disagree, several boundaries),
// the part is marked Ambiguous and zipped whole.
func (p *Part) classify(h *headerValues) {
	ct := ""
	if len(h.contentType) > 0 {
		ct = h.contentType[0]
	}
	mt, params := p.mediaType(ct)
	for _, other := range h.contentType[min(1, len(h.contentType)):] {
		omt, oparams := p.mediaType(other)
		if omt != mt || oparams["boundary"] != params["boundary"] {
			p.ambiguity = severalTypes
		}
	}
	p.MediaType = mt
	// Several Content-Disposition fields: the strictest wins, so a part
	// some client shows as an attachment is treated as one.
	for _, cd := range h.dispositions {
		d, cdParams := mimeparam.Parse(cd)
		if p.Disposition == "" || d == "attachment" {
			p.Disposition = short(d, "attachment")
		}
		if p.Name == "" {
			p.Name = mimeparam.FileNameOf(params, cdParams)
		}
	}
	if len(h.encodings) > 0 {
		p.Encoding = short(strings.ToLower(strings.TrimSpace(h.encodings[0])), "x-too-long")
		for _, e := range h.encodings[1:] {
			if !strings.EqualFold(strings.TrimSpace(e), p.Encoding) {
				p.ambiguity = severalEncodings
			}
		}
	}
	if p.Name == "" {
		p.Name = mimeparam.FileNameOf(params, nil)
	}
	if len(p.Name) > maxNameLen {
		// Keep both ends: the extension is at the end.
		p.Name = strings.ToValidUTF8(p.Name[:maxNameLen/2]+p.Name[len(p.Name)-maxNameLen/2:], "")
	}
	p.Name = strings.Clone(p.Name)
	if strings.HasPrefix(mt, "multipart/") {
		b := params["boundary"]
		switch p.Encoding {
		case "", "7bit", "8bit", "binary":
		default:
			// An encoded multipart is not walked: some clients decode it,
			// so it is zipped whole.
			b = ""
		}
		if mimeparam.Conflicting(ct, "boundary") {
			p.ambiguity = severalBoundaries
		}
		if b != "" && len(b) <= 200 && p.ambiguity == unambiguous {
			p.Boundary = strings.Clone(b)
		}
	}
}

// mediaType is the media type a Content-Type value gives this part, with
// the defaults of RFC 2045 and RFC 2046.
func (p *Part) mediaType(ct string) (string, map[string]string) {
	var mt string
	var params map[string]string
	if ct != "" {
		mt, params = mimeparam.Parse(ct)
	}
	if mt == "" || !strings.Contains(mt, "/") {
		// RFC 2046 5.1.5: in a digest the default is a message. The
		// parameters stay: a name without a type still names a file.
		mt = "text/plain"
		if p.Parent != nil && p.Parent.MediaType == "multipart/digest" {
			mt = "message/rfc822"
		}
	}
	return short(mt, "application/octet-stream"), params
}

// short returns a copy of s that does not hold on to the header it came
// from (common values are not copied at all), or long when s is too long
// to be anything but hostile.
func short(s, long string) string {
	if len(s) > maxTypeLen {
		return long
	}
	if c, ok := common[s]; ok {
		return c
	}
	return strings.Clone(s)
}

var common = map[string]string{}

func init() {
	for _, s := range []string{
		"text/plain", "text/html", "text/calendar", "text/csv",
		"multipart/mixed", "multipart/alternative", "multipart/related", "multipart/signed",
		"multipart/encrypted", "multipart/digest", "multipart/report",
		"application/octet-stream", "application/pdf", "application/zip",
		"image/png", "image/jpeg", "image/gif", "message/rfc822",
		"attachment", "inline",
		"7bit", "8bit", "binary", "base64", "quoted-printable",
	} {
		common[s] = s
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
		if ps.pending == nil { // EOF: no closing delimiter
			p.End = ps.lr.off
			return nil
		}
		d := *ps.pending // a copy: parsing the child reuses the buffer
		if d.level != level {
			// An enclosing multipart's delimiter: this one ends unclosed.
			p.End = max(d.start, p.BodyStart)
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
		ps.delimBuf = delim{level: i, close: isClose, start: start - ps.lr.prevEOL, end: ps.lr.off}
		return &ps.delimBuf
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
	long       []byte // the kept start of the last long line
	unreadLine *line
	unreadAt   int64
}

type line struct {
	prefix   []byte // the line, or its first bufSize bytes
	complete bool   // ended with a line break
}

const bufSize = 64 << 10

func newLineReader(r io.Reader) *lineReader { return newLineReaderSize(r, bufSize) }

// newLineReaderSize keeps size bytes of a long line; a reader of a short
// input needs no more than the input.
func newLineReaderSize(r io.Reader, size int) *lineReader {
	return &lineReader{br: bufio.NewReaderSize(r, size)}
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
		lr.long = append(lr.long[:0], b...)
		lr.cur.prefix = lr.long
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
