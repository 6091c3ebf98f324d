package rewrite

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"mime"
	"strings"
)

// Output is what the rewritten message carries besides its own parts.
type Output struct {
	ID      string    // zipgate id, in the X-Zipgate trace header
	ZipName string    // file name of the zip part
	Zip     io.Reader // the finished zip; nil: no zip part (the files are behind a download link)
	Notice  string    // plain-text notice, UTF-8, "\n" line ends
	TempDir string    // for spooling an HTML body while the notice goes in
	// DropField, when set, removes top-level header fields it accepts
	// (signatures the rewrite breaks).
	DropField func(name, value string) bool
}

// Open returns the decoded content of an attachment, for the zip.
func (pl *Plan) Open(a *Attachment) io.Reader {
	if a.Whole {
		return io.NewSectionReader(pl.msg, a.Part.Start, a.Part.End-a.Part.Start)
	}
	return pl.decoded(a.Part)
}

// Write writes the rewritten message: the original with the attachments
// taken out, the notice added to the bodies, and the zip attached to the
// top-level multipart/mixed (made when the message has none). Everything
// else is copied byte for byte.
func (pl *Plan) Write(w io.Writer, o Output) error {
	if pl.Pass != "" {
		return fmt.Errorf("rewrite: message passes untouched (%s)", pl.Pass)
	}
	wr := &writer{pl: pl, w: w, out: o, edits: map[*Part]*bodyEdit{}}
	for _, b := range pl.bodies {
		if e, ok := planBodyEdit(b, o.Notice); ok {
			wr.edits[b] = e
		} else {
			wr.noticePart = true
		}
	}
	if len(wr.edits) == 0 {
		wr.noticePart = true
	}
	kind := "encrypted"
	if o.Zip == nil {
		kind = "link"
	}
	if _, err := fmt.Fprintf(w, "X-Zipgate: %s; id=%s\r\n", kind, o.ID); err != nil {
		return err
	}
	root := pl.Root
	if root.MediaType == "multipart/mixed" && root.IsMultipart() && !pl.removed[root] {
		return wr.part(root, true)
	}
	return wr.wrap(root)
}

type writer struct {
	pl         *Plan
	w          io.Writer
	out        Output
	edits      map[*Part]*bodyEdit
	noticePart bool // the notice needs a part of its own
}

// part writes p; host is the multipart/mixed that receives the zip.
func (wr *writer) part(p *Part, host bool) error {
	if e := wr.edits[p]; e != nil {
		return e.write(wr.w, wr.pl, wr.out.TempDir)
	}
	if !wr.pl.dirty[p] && !host {
		return wr.pl.copyRange(wr.w, p.Start, p.End)
	}
	if err := wr.multipartHeader(p); err != nil {
		return err
	}
	if !host {
		return wr.body(p)
	}
	pos, err := wr.children(p)
	if err != nil {
		return err
	}
	closeAt := p.CloseDelim
	if closeAt < 0 {
		closeAt = p.End
	}
	if err := wr.pl.copyRange(wr.w, pos, closeAt); err != nil {
		return err
	}
	if err := wr.addedParts(p.Boundary); err != nil {
		return err
	}
	if p.CloseDelim < 0 {
		_, err := fmt.Fprintf(wr.w, "\r\n--%s--\r\n", p.Boundary)
		return err
	}
	return wr.pl.copyRange(wr.w, p.CloseDelim, p.End)
}

// multipartHeader copies the header of a multipart that is rewritten.
func (wr *writer) multipartHeader(p *Part) error {
	if err := wr.fields(p, func(string) bool { return true }); err != nil {
		return err
	}
	return wr.pl.copyRange(wr.w, p.HeaderEnd, p.BodyStart) // the blank line
}

// fields copies the header fields of p that keep accepts. A multipart
// Content-Type only a lenient parser understands (say, no ";" before the
// boundary) is written anew, so that every client finds the parts; an
// mbox "From " line, which is no header field, is dropped.
func (wr *writer) fields(p *Part, keep func(name string) bool) error {
	normalize := false
	if p.Boundary != "" {
		_, params, err := mime.ParseMediaType(p.Get("Content-Type"))
		normalize = err != nil || params["boundary"] != p.Boundary
	}
	for f := range p.Fields() {
		switch {
		case f.Name == "" || !keep(f.Name):
		case p == wr.pl.Root && wr.out.DropField != nil && wr.out.DropField(f.Name, f.Value):
		case normalize && strings.EqualFold(f.Name, "Content-Type"):
			normalize = false
			clean := map[string]string{"boundary": p.Boundary}
			if _, err := fmt.Fprintf(wr.w, "Content-Type: %s\r\n", mime.FormatMediaType(p.MediaType, clean)); err != nil {
				return err
			}
		default:
			if err := wr.pl.copyRange(wr.w, f.Start, f.End); err != nil {
				return err
			}
		}
	}
	return nil
}

// wrap makes a multipart/mixed around a message that has none: the
// top-level header keeps every field but the Content-* ones, which move to
// the first part together with the original body.
func (wr *writer) wrap(root *Part) error {
	boundary := newBoundary()
	hasVersion := false
	for f := range root.Fields() {
		hasVersion = hasVersion || strings.EqualFold(f.Name, "MIME-Version")
	}
	if err := wr.fields(root, func(name string) bool { return !isContentField(name) }); err != nil {
		return err
	}
	if !hasVersion {
		if _, err := io.WriteString(wr.w, "MIME-Version: 1.0\r\n"); err != nil {
			return err
		}
	}
	if _, err := fmt.Fprintf(wr.w, "Content-Type: multipart/mixed; boundary=\"%s\"\r\n\r\n", boundary); err != nil {
		return err
	}
	if !wr.pl.removed[root] {
		if _, err := fmt.Fprintf(wr.w, "--%s\r\n", boundary); err != nil {
			return err
		}
		if e := wr.edits[root]; e != nil {
			if err := e.write(wr.w, wr.pl, wr.out.TempDir); err != nil {
				return err
			}
		} else {
			if err := wr.fields(root, isContentField); err != nil {
				return err
			}
			if _, err := io.WriteString(wr.w, "\r\n"); err != nil {
				return err
			}
			// The body of the old top level, its children rewritten.
			if err := wr.body(root); err != nil {
				return err
			}
		}
	}
	if err := wr.addedParts(boundary); err != nil {
		return err
	}
	_, err := fmt.Fprintf(wr.w, "\r\n--%s--\r\n", boundary)
	return err
}

// body writes p from its body start, with changed children rewritten.
func (wr *writer) body(p *Part) error {
	pos, err := wr.children(p)
	if err != nil {
		return err
	}
	if err := wr.pl.copyRange(wr.w, pos, p.End); err != nil {
		return err
	}
	return wr.closeIfUnclosed(p)
}

// children writes p's body up to the end of its last child: removed
// children go with the delimiter before them, changed ones are written
// anew, the rest is copied. It returns where it stopped.
func (wr *writer) children(p *Part) (int64, error) {
	pos := p.BodyStart
	for _, c := range p.Children {
		switch {
		case wr.pl.removed[c]:
			if err := wr.pl.copyRange(wr.w, pos, c.Delim); err != nil {
				return 0, err
			}
			pos = c.End
		case wr.pl.dirty[c]:
			if err := wr.pl.copyRange(wr.w, pos, c.Start); err != nil {
				return 0, err
			}
			if err := wr.part(c, false); err != nil {
				return 0, err
			}
			pos = c.End
		}
	}
	return pos, nil
}

// closeIfUnclosed ends a rewritten multipart that came without its closing
// delimiter, so strict clients still find the parts after it.
func (wr *writer) closeIfUnclosed(p *Part) error {
	if !p.IsMultipart() || p.CloseDelim >= 0 {
		return nil
	}
	_, err := fmt.Fprintf(wr.w, "\r\n--%s--", p.Boundary)
	return err
}

// addedParts writes the notice part (when needed) and the zip part (when
// there is a zip), each opened by a delimiter of the host multipart.
func (wr *writer) addedParts(boundary string) error {
	if wr.noticePart {
		if _, err := fmt.Fprintf(wr.w, "\r\n--%s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n", boundary); err != nil {
			return err
		}
		enc := newBase64Lines(wr.w)
		if _, err := enc.Write(crlf(wr.out.Notice)); err != nil {
			return err
		}
		if err := enc.Close(); err != nil {
			return err
		}
	}
	if wr.out.Zip == nil {
		return nil
	}
	name := wr.out.ZipName
	ct := mime.FormatMediaType("application/zip", map[string]string{"name": name})
	cd := mime.FormatMediaType("attachment", map[string]string{"filename": name})
	if _, err := fmt.Fprintf(wr.w, "\r\n--%s\r\nContent-Type: %s\r\nContent-Disposition: %s\r\nContent-Transfer-Encoding: base64\r\n\r\n", boundary, ct, cd); err != nil {
		return err
	}
	enc := newBase64Lines(wr.w)
	if _, err := io.Copy(enc, wr.out.Zip); err != nil {
		return err
	}
	return enc.Close()
}

func isContentField(name string) bool {
	return len(name) >= 8 && strings.EqualFold(name[:8], "Content-")
}

func newBoundary() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return "zipgate-" + hex.EncodeToString(b[:])
}

// copyRange copies message bytes [from, to) through one buffer per
// plan: a header of many short fields is copied field by field, and a
// reader for each would be garbage proportional to the header.
func (pl *Plan) copyRange(w io.Writer, from, to int64) error {
	if to <= from {
		return nil
	}
	if pl.copyBuf == nil {
		pl.copyBuf = make([]byte, 64<<10)
	}
	for from < to {
		n, err := pl.msg.ReadAt(pl.copyBuf[:min(int64(len(pl.copyBuf)), to-from)], from)
		if n > 0 {
			if _, err := w.Write(pl.copyBuf[:n]); err != nil {
				return err
			}
			from += int64(n)
		}
		if err != nil && from < to {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}
