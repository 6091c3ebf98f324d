package rewrite

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/zipgate/zipgate/internal/mailtest"
	"github.com/zipgate/zipgate/internal/spool"
	"github.com/zipgate/zipgate/internal/zipper"
)

// benchLimits are the defaults of config.Defaults (smtp.max_header_bytes,
// max_mime_depth, max_mime_parts).
var benchLimits = Limits{MaxHeaderBytes: 1 << 20, MaxDepth: 50, MaxParts: 10000}

// benchSpoolMemory is config.Defaults' smtp.spool_memory_bytes: above it
// the zip is spooled to disk, as the gateway does.
const benchSpoolMemory = 1 << 20

// BenchmarkRewrite measures the whole path of one message through the
// rewrite: Analyze, zip every attachment (AES-256) into a spool file,
// write the rewritten message. Throughput is in message bytes.
func BenchmarkRewrite(b *testing.B) {
	const size = 10 << 20
	for _, k := range mailtest.Kinds {
		b.Run(k.Name+"10MB", func(b *testing.B) {
			msg := mailtest.BenchMessage(k.File, k.Type, k.Content(size))
			tmp := b.TempDir()
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			var zipSize int64
			for b.Loop() {
				n, err := rewriteMessage(bytes.NewReader(msg), int64(len(msg)), tmp)
				if err != nil {
					b.Fatal(err)
				}
				zipSize = n
			}
			b.ReportMetric(float64(zipSize), "zip-bytes")
		})
	}
}

// rewriteMessage mirrors gateway.Handle without the relay: the zip and
// the rewritten message go into spools through 64 KiB buffers. It
// returns the size of the zip.
func rewriteMessage(msg io.ReaderAt, size int64, tmp string) (int64, error) {
	pl, err := Analyze(msg, size, benchLimits, tmp)
	if err != nil {
		return 0, err
	}
	if pl.Pass != "" {
		return 0, fmt.Errorf("message passes: %s", pl.Pass)
	}
	zipFile := spool.New(tmp, benchSpoolMemory)
	defer zipFile.Close()
	zbuf := bufio.NewWriterSize(zipFile, 64<<10)
	zw := zipper.NewWriter(zbuf, zipper.Options{
		Method:   zipper.AES256,
		Password: "bench-Passw0rd",
		ModTime:  time.Date(2025, 1, 2, 3, 4, 6, 0, time.UTC),
	})
	for _, a := range pl.Attachments {
		if _, err := zw.Add(a.Name, pl.Open(a)); err != nil {
			return 0, err
		}
	}
	if err := zw.Close(); err != nil {
		return 0, err
	}
	if err := zbuf.Flush(); err != nil {
		return 0, err
	}
	out := spool.New(tmp, benchSpoolMemory)
	defer out.Close()
	obuf := bufio.NewWriterSize(out, 64<<10)
	if err := pl.Write(obuf, Output{
		ID: "bench", ZipName: "attachments.zip", Zip: zipFile.Reader(),
		Notice: noticeText, TempDir: tmp,
	}); err != nil {
		return 0, err
	}
	return zipFile.Size(), obuf.Flush()
}
