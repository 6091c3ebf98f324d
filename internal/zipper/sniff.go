package zipper

import (
	"bytes"
	"io"
	"math"
	"sync"

	"github.com/klauspost/compress/flate"
)

// sniffLen is how much of an attachment Add looks at before choosing
// Store or Deflate; it is also the PDF trial-compression sample.
const sniffLen = 64 << 10

// entropyLen bytes are enough for a byte histogram to tell random or
// encrypted data (≈7.95 bits/byte at this length) from text (≈4–6.5).
const entropyLen = 4 << 10

const highEntropy = 7.5 // bits per byte

// magics are file signatures of formats that are already compressed, so
// deflating them again costs CPU and saves next to nothing.
var magics = []struct {
	off int
	sig string
}{
	{0, "\xFF\xD8\xFF"},             // JPEG
	{0, "\x89PNG\r\n\x1A\n"},        // PNG
	{0, "GIF87a"},                   // GIF
	{0, "GIF89a"},                   // GIF
	{0, "PK\x03\x04"},               // zip, docx/xlsx/pptx, odt, jar, apk
	{0, "PK\x05\x06"},               // empty zip
	{0, "PK\x07\x08"},               // spanned zip
	{0, "\x1F\x8B"},                 // gzip
	{0, "BZh"},                      // bzip2
	{0, "\xFD7zXZ\x00"},             // xz
	{0, "\x28\xB5\x2F\xFD"},         // zstd
	{0, "7z\xBC\xAF\x27\x1C"},       // 7z
	{0, "Rar!\x1A\x07"},             // rar 4 and 5
	{0, "MSCF"},                     // cab
	{2, "-lh"},                      // lzh, still common in Japan
	{4, "ftyp"},                     // mp4, mov, m4a, heic, avif, 3gp
	{0, "ID3"},                      // mp3 with tag
	{0, "\xFF\xFB"},                 // mp3 frame, MPEG-1 layer 3
	{0, "\xFF\xF3"},                 // mp3 frame, MPEG-2 layer 3
	{0, "\xFF\xF2"},                 // mp3 frame, MPEG-2.5 layer 3
	{0, "OggS"},                     // ogg, opus
	{0, "fLaC"},                     // flac
	{0, "\x1A\x45\xDF\xA3"},         // webm, mkv
	{0, "\x00\x00\x01\xBA"},         // MPEG program stream
	{0, "\x30\x26\xB2\x75\x8E\x66"}, // wma, wmv
	{8, "WEBP"},                     // RIFF....WEBP
	{8, "AVI "},                     // RIFF....AVI
}

// shouldStore decides Store (true) or Deflate from the first bytes of an
// attachment: known compressed formats and high-entropy data are stored,
// PDFs by a trial compression of the sample, everything else deflated.
func shouldStore(head []byte) bool {
	if len(head) == 0 {
		return true // nothing to compress
	}
	for _, m := range magics {
		if len(head) >= m.off+len(m.sig) && string(head[m.off:m.off+len(m.sig)]) == m.sig {
			return true
		}
	}
	if bytes.HasPrefix(head, []byte("%PDF-")) {
		// Most PDFs hold Flate streams and save 1–3% more; a PDF written
		// without stream compression saves far more. The sample tells.
		return deflatedSize(head) > len(head)*9/10
	}
	return entropy(head[:min(len(head), entropyLen)]) > highEntropy
}

// entropy is the Shannon entropy of b's byte histogram in bits per byte.
func entropy(b []byte) float64 {
	var count [256]int
	for _, c := range b {
		count[c]++
	}
	var h float64
	n := float64(len(b))
	for _, c := range count {
		if c > 0 {
			p := float64(c) / n
			h -= p * math.Log2(p)
		}
	}
	return h
}

var trialPool = sync.Pool{New: func() any {
	w, _ := flate.NewWriter(io.Discard, flate.BestSpeed)
	return w
}}

// deflatedSize is the size of b after the fastest deflate: about 0.1 ms
// for 64 KiB, small beside deflating the whole file.
func deflatedSize(b []byte) int {
	var n counter
	w := trialPool.Get().(*flate.Writer)
	defer trialPool.Put(w)
	w.Reset(&n)
	_, _ = w.Write(b) // a counter never fails
	_ = w.Close()
	return int(n)
}

// counter is an io.Writer that only counts.
type counter int64

func (c *counter) Write(p []byte) (int, error) {
	*c += counter(len(p))
	return len(p), nil
}
