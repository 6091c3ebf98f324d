package rewrite

import "io"

// TopHeader reads only the message's own header block: what the log and
// the message record show of a message that is relayed without a look
// at its body.
func TopHeader(r io.ReaderAt, size int64, lim Limits) (*Part, error) {
	ps := &parser{lr: newLineReader(io.NewSectionReader(r, 0, size)), lim: lim}
	p := &Part{CloseDelim: -1}
	if err := ps.header(p, true); err != nil {
		return nil, err
	}
	return p, nil
}
