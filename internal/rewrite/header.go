package rewrite

import (
	"io"
	"strings"
)

// TopHeader reads only the message's own header block: what the log and
// the message record show of a message that is relayed without a look
// at its body. Like every Part, it reads its fields from r when asked.
func TopHeader(r io.ReaderAt, size int64, lim Limits) (*Part, error) {
	src := &source{r}
	ps := &parser{lr: newLineReader(io.NewSectionReader(r, 0, size)), lim: lim, src: src}
	p := &Part{CloseDelim: -1, src: src}
	if err := ps.header(p, true); err != nil {
		return nil, err
	}
	return p, nil
}

// All returns the unfolded values of every field with this name, in
// order (a message may show several To fields).
func (p *Part) All(name string) []string {
	var out []string
	p.eachField(func(f Field) bool {
		if strings.EqualFold(f.Name, name) {
			out = append(out, f.Value)
		}
		return true
	}, name)
	return out
}

// DecodedSizeHint is about the size of the part's content once decoded,
// from the size of its body: for a page that lists the files, without
// decoding them.
func (p *Part) DecodedSizeHint() int64 {
	n := p.End - p.BodyStart
	switch p.Encoding {
	case "base64":
		return n * 3 / 4 * 76 / 78 // less the line breaks
	case "quoted-printable":
		return n * 9 / 10
	}
	return n
}
