package rewrite

import (
	"bufio"
	"bytes"
	"io"
	"net/url"
	"regexp"
	"strings"

	"github.com/zipgate/zipgate/internal/spool"
	"github.com/zipgate/zipgate/internal/zipper"
)

// Plan is what the rewrite will do to one message: which parts leave the
// message for the zip, which bodies get the notice, or why the message
// passes untouched.
type Plan struct {
	Root    *Part
	msg     io.ReaderAt
	tempDir string

	// Attachments go into the zip, in message order.
	Attachments []*Attachment
	// Pass, when set, says why the message is relayed as it is.
	Pass string
	// Files counts the parts that are files, also when the message
	// passes (a signed message's, already-encrypted zips): a policy that
	// refuses mail with attachments looks at it.
	Files int

	bodies  []*Part        // text/plain and text/html that get the notice
	removed map[*Part]bool // parts (attachments and emptied multiparts) dropped
	dirty   map[*Part]bool // parts written differently from the original

	br      *bufio.Reader // for reading bodies line by line, one at a time
	copyBuf []byte        // for copying message bytes through
	lim     Limits
	err     error // ErrTooManyFiles, once found
}

// lines returns a line reader of r. Its buffer is the plan's, so a
// message of many parts reuses one; only one may be in use at a time.
func (pl *Plan) lines(r io.Reader) *bufio.Reader {
	if pl.br == nil {
		pl.br = bufio.NewReaderSize(r, 4<<10)
	} else {
		pl.br.Reset(r)
	}
	return pl.br
}

// Attachment is one part that goes into the zip.
type Attachment struct {
	Part *Part
	// Name is the decoded file name, or one made from the type.
	Name string
	// Undecoded is set when the transfer encoding is unknown: the raw
	// body goes into the zip, so nothing leaves in the clear.
	Undecoded bool
	// Whole is set for a part mail readers could read more than one way:
	// the part as written, header included, goes into the zip as a
	// message of its own (.eml), for the recipient's reader to take apart.
	Whole bool
}

// Reasons a message passes untouched.
const (
	PassNoAttachments = "no attachments"
	PassSigned        = "signed or encrypted (S/MIME or PGP): rewriting would break it"
	PassEncryptedZips = "only already-encrypted zip attachments"
)

// Analyze parses the message and decides what happens to it. tempDir
// holds spool files of large attachments it must look into.
func Analyze(msg io.ReaderAt, size int64, lim Limits, tempDir string) (*Plan, error) {
	root, err := Parse(msg, size, lim)
	if err != nil {
		return nil, err
	}
	pl := &Plan{Root: root, msg: msg, tempDir: tempDir, removed: map[*Part]bool{}, dirty: map[*Part]bool{}, lim: lim}
	if pl.signedWhole(root) {
		pl.Pass = PassSigned
		// Counted on a copy: what is signed is never rewritten.
		probe := &Plan{Root: root, msg: msg, tempDir: tempDir, removed: map[*Part]bool{}, dirty: map[*Part]bool{}}
		probe.walk(root, nil)
		pl.Files = len(probe.Attachments)
		return pl, nil
	}
	pl.walk(root, nil)
	if pl.err != nil {
		return nil, pl.err
	}
	// A body that is an inline PGP message or signature keeps its bytes
	// (the notice goes into a part of its own); its attachments are still
	// zipped: a signature never exempts a file.
	kept := pl.bodies[:0]
	for _, b := range pl.bodies {
		if pl.pgpInline(b) {
			delete(pl.dirty, b)
		} else {
			kept = append(kept, b)
		}
	}
	pl.bodies = kept
	pl.Files = len(pl.Attachments)
	switch {
	case len(pl.Attachments) == 0:
		pl.Pass = PassNoAttachments
	case pl.onlyEncryptedZips():
		pl.Pass = PassEncryptedZips
	}
	if pl.Pass != "" {
		pl.Attachments = nil
	}
	return pl, nil
}

// walk classifies p; referenced holds the Content-IDs the HTML of an
// enclosing multipart/related points at. It reports whether p was removed.
func (pl *Plan) walk(p *Part, referenced map[string]bool) bool {
	if pl.err != nil {
		return false
	}
	if p.ambiguity == unambiguous && p.implicitBody && pl.fieldsInBody(p) {
		p.ambiguity = fieldsAfterBody
	}
	if p.ambiguity != unambiguous {
		return pl.attachWhole(p)
	}
	if p.IsMultipart() {
		if p.MediaType == "multipart/related" {
			referenced = pl.cidReferences(p)
		}
		kept := 0
		for _, c := range p.Children {
			if pl.walk(c, referenced) {
				pl.dirty[p] = true
			} else {
				kept++
			}
			if pl.dirty[c] {
				pl.dirty[p] = true
			}
		}
		if len(p.Children) == 0 && len(bytes.TrimSpace(pl.bodyBytes(p, 1<<10))) > 0 {
			// Content but no part found (a boundary no line matches): what
			// some client may show cannot be checked, so it is zipped whole.
			return pl.attach(p)
		}
		// A multipart left without children is dropped with them (the
		// top-level one always keeps the zip).
		if kept == 0 && len(p.Children) > 0 && p != pl.Root {
			pl.removed[p] = true
			return true
		}
		return false
	}
	inline := referenced != nil && strings.HasPrefix(p.MediaType, "image/") && referenced[contentID(p)]
	if isAttachment(p, inline) || strings.HasPrefix(p.MediaType, "text/") && pl.carriesFile(p) {
		return pl.attach(p)
	}
	if (p.MediaType == "text/plain" || p.MediaType == "text/html") && !pl.hasBody(p.MediaType) {
		pl.bodies = append(pl.bodies, p)
		pl.dirty[p] = true // it gets the notice
	}
	return false
}

// attach takes p out of the message for the zip.
func (pl *Plan) attach(p *Part) bool {
	a := &Attachment{Part: p, Name: p.Name}
	if a.Name == "" {
		a.Name = defaultName(p.MediaType)
	}
	a.Undecoded = !knownEncoding(p.Encoding)
	return pl.add(a)
}

// add puts a into the zip; every file costs memory on the way (the zip's
// directory, the notice, the log line), so there is a bound.
func (pl *Plan) add(a *Attachment) bool {
	if pl.lim.MaxAttachments > 0 && len(pl.Attachments) >= pl.lim.MaxAttachments {
		pl.err = ErrTooManyFiles
	}
	pl.Attachments = append(pl.Attachments, a)
	pl.removed[a.Part] = true
	return true
}

// attachWhole takes p out of the message for the zip as written, header
// included: the recipient's reader takes it apart from the zip.
func (pl *Plan) attachWhole(p *Part) bool {
	name := "part.eml"
	if p == pl.Root {
		name = "message.eml"
	}
	return pl.add(&Attachment{Part: p, Name: name, Whole: true})
}

// fieldsInBody reports a part whose header ended at a line that is no
// header field, without the blank line, while Content-* fields follow
// before the first blank line: a lenient reader that skips the odd line
// takes those fields as the header, a strict one as the body.
func (pl *Plan) fieldsInBody(p *Part) bool {
	br := pl.lines(io.LimitReader(pl.body(p), 64<<10))
	for {
		line, err := br.ReadSlice('\n')
		if len(bytes.TrimSpace(line)) == 0 && err != bufio.ErrBufferFull {
			return false // the blank line, or the end
		}
		if len(line) >= 8 && bytes.EqualFold(line[:8], []byte("content-")) {
			if i := bytes.IndexByte(line, ':'); i > 8 && isFieldName(bytes.TrimRight(line[:i], " \t")) {
				return true
			}
		}
		if err != nil && err != bufio.ErrBufferFull {
			return false
		}
	}
}

// bodyBytes returns up to n bytes of p's raw body.
func (pl *Plan) bodyBytes(p *Part, n int64) []byte {
	b, _ := io.ReadAll(io.LimitReader(pl.body(p), n))
	return b
}

// carriesFile reports a text part that carries a file some readers show
// as an attachment: uuencoded ("begin 644 name" ... "end", as
// "uuencode f f | mail" sends it, or "begin-base64"), yEnc ("=ybegin"),
// or, in a calendar, an ATTACH property with the file inline. The body is
// read decoded, and as sent when its transfer encoding is unknown (a
// reader that does not know it shows the raw bytes).
func (pl *Plan) carriesFile(p *Part) bool {
	br := pl.lines(pl.decoded(p))
	calendar := p.MediaType == "text/calendar"
	for {
		line, err := br.ReadSlice('\n')
		// The prefix first: the regexp costs more than the rest of the scan.
		if bytes.HasPrefix(line, []byte("begin")) && uuBegin.Match(line) || bytes.HasPrefix(line, []byte("=ybegin ")) {
			return true
		}
		if calendar && len(line) > 7 && bytes.EqualFold(line[:7], []byte("ATTACH;")) && inlineAttach(line, br) {
			return true
		}
		if err != nil && err != bufio.ErrBufferFull {
			return false
		}
	}
}

var uuBegin = regexp.MustCompile(`^begin(-base64)?[ \t]+[0-7]{3,4}[ \t]+\S`)

// inlineAttach reads the parameters of an iCalendar ATTACH property
// (RFC 5545 3.8.1.1), unfolding its continuation lines, and reports one
// whose value is the file itself (ENCODING=BASE64 or VALUE=BINARY)
// rather than a link.
func inlineAttach(first []byte, br *bufio.Reader) bool {
	params := bytes.ToUpper(bytes.TrimRight(first, "\r\n"))
	for len(params) < 4<<10 && !hasColonOutsideQuotes(params) {
		next, err := br.Peek(1)
		if err != nil || (next[0] != ' ' && next[0] != '\t') {
			break
		}
		line, _ := br.ReadSlice('\n')
		params = append(params, bytes.ToUpper(bytes.TrimRight(line[1:], "\r\n"))...)
	}
	return bytes.Contains(params, []byte("ENCODING=BASE64")) || bytes.Contains(params, []byte("VALUE=BINARY"))
}

func hasColonOutsideQuotes(b []byte) bool {
	quoted := false
	for _, c := range b {
		switch {
		case c == '"':
			quoted = !quoted
		case c == ':' && !quoted:
			return true
		}
	}
	return false
}

func (pl *Plan) hasBody(mediaType string) bool {
	for _, b := range pl.bodies {
		if b.MediaType == mediaType {
			return true
		}
	}
	return false
}

// isAttachment is the rule for what leaves the message: a part marked
// attachment, any named part (a named text is a file, even shown inline),
// forwarded and partial messages, and any other non-text leaf except an
// image the HTML shows inline. A calendar invite in its alternative stays
// (unless it is marked attachment or named: then it is a file).
func isAttachment(p *Part, referencedInline bool) bool {
	mt := p.MediaType
	switch {
	case mt == "text/calendar" && p.Parent != nil && p.Parent.MediaType == "multipart/alternative" &&
		p.Disposition != "attachment" && p.Name == "":
		return false
	case mt == "message/delivery-status" || mt == "message/disposition-notification" || mt == "message/feedback-report":
		return p.Disposition == "attachment" // parts of a report, not files
	case strings.HasPrefix(mt, "message/"):
		return true
	case p.Disposition == "attachment":
		return true
	case referencedInline && strings.HasPrefix(mt, "image/"):
		return false // shown in the HTML, often named by the mailer
	case p.Name != "":
		return true
	case strings.HasPrefix(mt, "text/"):
		return false
	}
	return true
}

func contentID(p *Part) string {
	id := strings.TrimSpace(p.Get("Content-ID"))
	return strings.TrimSuffix(strings.TrimPrefix(id, "<"), ">")
}

// cidReferences returns the Content-IDs of the images under a
// multipart/related that its HTML parts refer to by cid: URLs. Only ids
// of those images are kept, so an HTML body of many references costs no
// memory.
func (pl *Plan) cidReferences(rel *Part) map[string]bool {
	ids := map[string]bool{}
	var images, pages func(p *Part)
	images = func(p *Part) {
		for _, c := range p.Children {
			images(c)
		}
		if strings.HasPrefix(p.MediaType, "image/") {
			if id := contentID(p); id != "" {
				ids[id] = true
			}
		}
	}
	images(rel)
	refs := map[string]bool{}
	if len(ids) == 0 {
		return refs
	}
	pages = func(p *Part) {
		for _, c := range p.Children {
			pages(c)
		}
		if p.MediaType != "text/html" || p.Disposition == "attachment" {
			return
		}
		r, _ := decoder(p.Encoding, pl.body(p))
		scanCIDs(pl.lines(r), ids, refs)
	}
	pages(rel)
	return refs
}

// scanCIDs adds to refs every id of ids found as "cid:id" in br.
func scanCIDs(br *bufio.Reader, ids, refs map[string]bool) {
	for {
		line, err := br.ReadSlice('\n')
		for rest := line; ; {
			i := indexFoldASCII(rest, "cid:")
			if i < 0 {
				break
			}
			rest = rest[i+4:]
			end := bytes.IndexAny(rest, "\"' >)\r\n\t")
			if end < 0 {
				end = len(rest)
			}
			id := rest[:end]
			if ids[string(id)] {
				refs[string(id)] = true
			} else if bytes.IndexByte(id, '%') >= 0 {
				if u, err := url.PathUnescape(string(id)); err == nil && ids[u] {
					refs[u] = true
				}
			}
		}
		if err != nil && err != bufio.ErrBufferFull {
			return
		}
	}
}

// indexFoldASCII is bytes.Index ignoring ASCII case; unlike
// bytes.ToLower it keeps every offset where it was.
func indexFoldASCII(b []byte, needle string) int {
	for i := 0; i+len(needle) <= len(b); i++ {
		match := true
		for j := 0; j < len(needle); j++ {
			c := b[i+j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != needle[j] {
				match = false
				break
			}
		}
		if match {
			return i
		}
	}
	return -1
}

// onlyEncryptedZips reports whether every attachment is a zip whose
// entries are all encrypted already.
func (pl *Plan) onlyEncryptedZips() bool {
	for _, a := range pl.Attachments {
		if a.Undecoded || a.Whole || !pl.isEncryptedZip(a.Part) {
			return false
		}
	}
	return true
}

func (pl *Plan) isEncryptedZip(p *Part) bool {
	// Cheap look first: a zip starts with a local file header.
	var magic [4]byte
	if _, err := io.ReadFull(pl.decoded(p), magic[:]); err != nil || string(magic[:]) != "PK\x03\x04" {
		return false
	}
	sp := spool.New(pl.tempDir, 1<<20)
	defer sp.Close()
	if _, err := io.Copy(sp, pl.decoded(p)); err != nil {
		return false
	}
	return zipper.IsEncryptedZip(sp, sp.Size())
}

// pgpInline reports a body that is an inline PGP message or signature.
func (pl *Plan) pgpInline(b *Part) bool {
	r, ok := decoder(b.Encoding, pl.body(b))
	if !ok {
		return false
	}
	br := pl.lines(io.LimitReader(r, 1<<20))
	for {
		line, err := br.ReadSlice('\n')
		if bytes.HasPrefix(line, []byte("-----BEGIN PGP SIGNED MESSAGE-----")) ||
			bytes.HasPrefix(line, []byte("-----BEGIN PGP MESSAGE-----")) {
			return true
		}
		if err != nil && err != bufio.ErrBufferFull {
			return false
		}
	}
}

// body returns the raw (transfer-encoded) body of p.
func (pl *Plan) body(p *Part) *io.SectionReader {
	return io.NewSectionReader(pl.msg, p.BodyStart, p.End-p.BodyStart)
}

// decoded returns the body of p with its transfer encoding undone (or raw
// when the encoding is unknown).
func (pl *Plan) decoded(p *Part) io.Reader {
	r, _ := decoder(p.Encoding, pl.body(p))
	return r
}

func knownEncoding(encoding string) bool {
	_, ok := decoder(encoding, nil)
	return ok
}

// defaultName names an attachment that came without a file name.
func defaultName(mediaType string) string {
	ext := map[string]string{
		"message/rfc822": ".eml", "message/global": ".eml",
		"application/pdf": ".pdf", "application/zip": ".zip",
		"image/jpeg": ".jpg", "image/png": ".png", "image/gif": ".gif",
		"text/plain": ".txt", "text/csv": ".csv", "text/html": ".html",
		"application/ms-tnef": ".dat",
	}[mediaType]
	if ext == "" {
		ext = ".bin"
	}
	if ext == ".eml" {
		return "message" + ext
	}
	return "attachment" + ext
}
