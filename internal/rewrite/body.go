package rewrite

import (
	"bufio"
	"bytes"
	"fmt"
	"html"
	"io"
	"mime"
	"mime/quotedprintable"
	"strings"

	"github.com/emersion/go-message/charset"
	"golang.org/x/text/encoding/htmlindex"

	"github.com/zipgate/zipgate/internal/spool"
)

// bodyEdit is how the notice goes into one text or HTML body. The body
// keeps its charset and transfer encoding where the notice fits in them,
// so bytes that were there stay as they were.
type bodyEdit struct {
	part      *Part
	params    map[string]string // of the Content-Type field
	notice    []byte            // in the body's (new) charset, CRLF line ends
	charset   string            // new charset parameter, "" when unchanged
	encoding  string            // new Content-Transfer-Encoding, "" when unchanged
	transcode bool              // decode the body from its charset to UTF-8 first
}

// planBodyEdit decides how to add notice (UTF-8, "\n" line ends) to p, or
// returns false when it cannot be done safely (unknown charset or
// encoding); the notice then goes into a part of its own.
func planBodyEdit(p *Part, notice string) (*bodyEdit, bool) {
	enc := p.Encoding
	switch enc {
	case "", "7bit", "8bit", "binary", "base64", "quoted-printable":
	default:
		return nil, false
	}
	params := p.Params()
	cs := strings.ToLower(strings.TrimSpace(params["charset"]))
	if cs == "" {
		cs = "us-ascii"
	}
	e := &bodyEdit{part: p, params: params}
	stateful := strings.HasPrefix(cs, "iso-2022-")
	if strings.HasPrefix(cs, "utf-16") || strings.HasPrefix(cs, "utf-32") {
		return nil, false
	}
	if p.MediaType == "text/html" {
		// Pure ASCII with character references fits any ASCII-compatible
		// charset; no charset change needed.
		if _, err := htmlindex.Get(cs); err != nil && !isUTF8(cs) && !isASCII(cs) {
			return nil, false
		}
		e.notice = crlf(htmlNotice(notice))
		if stateful {
			e.notice = append([]byte("\x1b(B"), e.notice...)
		}
		return e, true
	}
	text := crlf("\n\n" + notice)
	switch {
	case isUTF8(cs):
		e.notice = text
	case isASCII(cs):
		e.notice, e.charset = text, "utf-8"
	default:
		ienc, err := htmlindex.Get(cs)
		if err != nil {
			return nil, false
		}
		if b, err := ienc.NewEncoder().Bytes(text); err == nil {
			e.notice = b
			if stateful {
				e.notice = append([]byte("\x1b(B"), e.notice...)
			}
		} else {
			// The charset cannot spell the notice: the body moves to UTF-8.
			e.notice, e.charset, e.transcode = text, "utf-8", true
		}
	}
	if (enc == "" || enc == "7bit") && (e.transcode || !is7bit(e.notice)) {
		e.encoding = "quoted-printable"
	}
	return e, true
}

// write writes the part's header (changed where needed) and new body.
func (e *bodyEdit) write(w io.Writer, pl *Plan, tempDir string) error {
	p := e.part
	hasCTE := false
	for f := range p.Fields() {
		switch {
		case e.charset != "" && strings.EqualFold(f.Name, "Content-Type"):
			params := map[string]string{}
			for k, v := range e.params {
				params[k] = v
			}
			params["charset"] = e.charset
			if _, err := fmt.Fprintf(w, "Content-Type: %s\r\n", mime.FormatMediaType(p.MediaType, params)); err != nil {
				return err
			}
			continue
		case strings.EqualFold(f.Name, "Content-Transfer-Encoding"):
			hasCTE = true
			if e.encoding != "" {
				if _, err := fmt.Fprintf(w, "Content-Transfer-Encoding: %s\r\n", e.encoding); err != nil {
					return err
				}
				continue
			}
		}
		if err := pl.copyRange(w, f.Start, f.End); err != nil {
			return err
		}
	}
	if e.charset != "" && p.Get("Content-Type") == "" {
		if _, err := fmt.Fprintf(w, "Content-Type: text/plain; charset=%s\r\n", e.charset); err != nil {
			return err
		}
	}
	if e.encoding != "" && !hasCTE {
		if _, err := fmt.Fprintf(w, "Content-Transfer-Encoding: %s\r\n", e.encoding); err != nil {
			return err
		}
	}
	if _, err := io.WriteString(w, "\r\n"); err != nil {
		return err
	}

	enc := e.encoding
	if enc == "" {
		enc = p.Encoding
	}
	if enc != "base64" && enc != "quoted-printable" && !e.transcode {
		// Unencoded body: the original bytes, then the notice.
		return e.insert(w, pl.body(p), tempDir)
	}
	var src io.Reader = pl.decoded(p)
	if e.transcode {
		r, err := charset.Reader(e.params["charset"], src)
		if err != nil {
			return err
		}
		src = r
	}
	var dst io.WriteCloser
	if enc == "base64" {
		dst = newBase64Lines(w)
	} else {
		dst = quotedprintable.NewWriter(w)
	}
	if err := e.insert(dst, src, tempDir); err != nil {
		return err
	}
	return dst.Close()
}

// insert copies the body with the notice: at the end of a text, before
// the last </body> of an HTML page (at the end when there is none, or in a
// stateful charset where the tag bytes could be part of a character).
func (e *bodyEdit) insert(w io.Writer, body io.Reader, tempDir string) error {
	if e.part.MediaType != "text/html" || strings.HasPrefix(strings.ToLower(e.params["charset"]), "iso-2022-") {
		if _, err := io.Copy(w, body); err != nil {
			return err
		}
		_, err := w.Write(e.notice)
		return err
	}
	sp := spool.New(tempDir, 1<<20)
	defer sp.Close()
	if _, err := io.Copy(sp, body); err != nil {
		return err
	}
	at := lastIndexFold(sp.Reader(), "</body")
	if at < 0 {
		at = sp.Size()
	}
	if _, err := io.Copy(w, io.NewSectionReader(sp, 0, at)); err != nil {
		return err
	}
	if _, err := w.Write(e.notice); err != nil {
		return err
	}
	_, err := io.Copy(w, io.NewSectionReader(sp, at, sp.Size()-at))
	return err
}

// lastIndexFold finds the last case-insensitive occurrence of an ASCII
// needle in a stream, or -1.
func lastIndexFold(r io.Reader, needle string) int64 {
	br := bufio.NewReader(r)
	n := []byte(strings.ToLower(needle))
	last, off := int64(-1), int64(0)
	window := make([]byte, 0, len(n))
	for {
		c, err := br.ReadByte()
		if err != nil {
			return last
		}
		off++
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if len(window) == len(n) {
			copy(window, window[1:])
			window = window[:len(n)-1]
		}
		window = append(window, c)
		if bytes.Equal(window, n) {
			last = off - int64(len(n))
		}
	}
}

// htmlNotice renders the notice as an HTML block in pure ASCII.
func htmlNotice(notice string) string {
	var b strings.Builder
	b.WriteString("\n<div style=\"border-top:1px solid #999;margin-top:1em;padding-top:.5em\">")
	for i, line := range strings.Split(strings.TrimRight(notice, "\n"), "\n") {
		if i > 0 {
			b.WriteString("<br>\n")
		}
		for _, r := range html.EscapeString(line) {
			if r < 128 {
				b.WriteRune(r)
			} else {
				fmt.Fprintf(&b, "&#%d;", r)
			}
		}
	}
	b.WriteString("</div>\n")
	return b.String()
}

func crlf(s string) []byte {
	return []byte(strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\n", "\r\n"))
}

func isUTF8(cs string) bool { return cs == "utf-8" || cs == "utf8" }

func isASCII(cs string) bool { return cs == "us-ascii" || cs == "ascii" || cs == "ansi_x3.4-1968" }

func is7bit(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}
