package rewrite

import (
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
	cases := []struct {
		name, file, ctype string
		content           func(int) []byte
	}{
		{"random10MB", "data.bin", "application/octet-stream", mailtest.RandomContent},
		{"text10MB", "notes.txt", "text/plain; charset=utf-8", mailtest.TextContent},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			msg := mailtest.BenchMessage(tc.file, tc.ctype, tc.content(size))
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

// rewriteMessage mirrors gateway.Handle without the relay: the zip goes
// into a spool file, the rewritten message into io.Discard. It returns
// the size of the zip.
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
	zw := zipper.NewWriter(zipFile, zipper.Options{
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
	return zipFile.Size(), pl.Write(io.Discard, Output{
		ID: "bench", ZipName: "attachments.zip", Zip: zipFile.Reader(),
		Notice: noticeText, TempDir: tmp,
	})
}
