package rewrite

import "io"

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
