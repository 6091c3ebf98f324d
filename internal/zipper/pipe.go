package zipper

import (
	"hash"
	"io"
	"sync"

	"github.com/klauspost/compress/flate"
)

// blockSize is the unit the pipeline hands over; pipeBlocks of them are in
// flight, so one side can work while the other fills or drains a block.
const (
	blockSize  = 64 << 10
	pipeBlocks = 3
)

// buffers are what one Writer needs, kept in a pool so a busy gateway
// does not make garbage per message.
type buffers struct {
	blocks [pipeBlocks][blockSize]byte
	ct     [32 << 10]byte // ciphertext scratch
}

var bufPool = sync.Pool{New: func() any { return new(buffers) }}

type filled struct {
	i   int // which block
	n   int
	err error // io.EOF at the end
}

// pipe copies the rest of z.br to dst. A second goroutine reads z.br
// (which decodes the attachment, when it comes from a MIME decoder) and
// feeds the hashes, while this one compresses and encrypts: one large
// attachment keeps two cores busy.
func (z *Writer) pipe(dst io.Writer, hashes []hash.Hash) (int64, error) {
	free := make(chan int, pipeBlocks)
	full := make(chan filled, pipeBlocks)
	stop := make(chan struct{})
	for i := range pipeBlocks {
		free <- i
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(full)
		for {
			var i int
			select {
			case i = <-free:
			case <-stop:
				return
			}
			n, err := io.ReadFull(z.br, z.buf.blocks[i][:])
			for _, h := range hashes {
				h.Write(z.buf.blocks[i][:n])
			}
			if err == io.ErrUnexpectedEOF {
				err = io.EOF
			}
			full <- filled{i, n, err} // full has room for every block
			if err != nil {
				return
			}
		}
	}()
	var total int64
	var err error
	for f := range full {
		if f.n > 0 && err == nil {
			_, err = dst.Write(z.buf.blocks[f.i][:f.n])
			total += int64(f.n)
		}
		if f.err != nil && f.err != io.EOF && err == nil {
			err = f.err
		}
		if err != nil {
			break
		}
		free <- f.i
	}
	close(stop)
	<-done // the reader is gone before Add returns
	return total, err
}

// deflateLevel picks the klauspost/compress level from a trial at the
// fastest level on the sample: data that shrinks to under a tenth
// (repetitive text, logs) gains nothing from more effort (level 7 makes
// it larger than 6); everything else, like a CSV export, gets level 7,
// which comes within 8–15 % of 7-Zip's optimal parsing at a tenth of its
// time. See docs/benchmarks.md.
func deflateLevel(head []byte) int {
	if deflatedSize(head) < len(head)/10 {
		return 6
	}
	return 7
}

// flatePools keep one pool per level: a klauspost flate.Writer holds
// about a megabyte of tables, made once and reset per entry.
var flatePools sync.Map // level → *sync.Pool

func getFlate(w io.Writer, level int) *flate.Writer {
	p, _ := flatePools.LoadOrStore(level, &sync.Pool{})
	if fw, ok := p.(*sync.Pool).Get().(*flate.Writer); ok {
		fw.Reset(w)
		return fw
	}
	fw, _ := flate.NewWriter(w, level) // error only for a bad level
	return fw
}

func putFlate(fw *flate.Writer, level int) {
	fw.Reset(io.Discard) // drop the reference to the entry's writer
	p, _ := flatePools.Load(level)
	p.(*sync.Pool).Put(fw)
}
