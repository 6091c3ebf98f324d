package rewrite

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"time"

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
		{"random10MB", "data.bin", "application/octet-stream", benchRandom},
		{"text10MB", "notes.txt", "text/plain; charset=utf-8", benchText},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			msg := benchMessage(tc.file, tc.ctype, tc.content(size))
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

// benchMessage is a multipart/mixed mail with a short text body and one
// base64 attachment in 76-character lines, as mail clients send it.
func benchMessage(name, ctype string, content []byte) []byte {
	var m bytes.Buffer
	m.WriteString("From: Sender <sender@example.jp>\r\n" +
		"To: Recipient <rcpt@example.com>\r\n" +
		"Subject: =?UTF-8?B?6LOH5paZ44Gu6YCB5LuY?=\r\n" +
		"Date: Thu, 02 Jan 2025 12:04:06 +0900\r\n" +
		"Message-ID: <bench@example.jp>\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"bench-boundary\"\r\n\r\n" +
		"--bench-boundary\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n" +
		"Content-Transfer-Encoding: 8bit\r\n\r\n" +
		"お世話になっております。資料を添付いたします。\r\nPlease find the file attached.\r\n\r\n" +
		"--bench-boundary\r\n")
	fmt.Fprintf(&m, "Content-Type: %s; name=\"%s\"\r\n", ctype, name)
	fmt.Fprintf(&m, "Content-Disposition: attachment; filename=\"%s\"\r\n", name)
	m.WriteString("Content-Transfer-Encoding: base64\r\n\r\n")
	enc := base64.StdEncoding
	line := make([]byte, 76)
	for off := 0; off < len(content); off += 57 {
		chunk := content[off:min(off+57, len(content))]
		n := enc.EncodedLen(len(chunk))
		enc.Encode(line, chunk)
		m.Write(line[:n])
		m.WriteString("\r\n")
	}
	m.WriteString("--bench-boundary--\r\n")
	return m.Bytes()
}

// benchRandom is incompressible: the zipper stores it.
func benchRandom(n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{1})
	r.Read(b)
	return b
}

// benchText is compressible Japanese and English lines: the zipper
// deflates it.
func benchText(n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "%06d 本日の会議資料を共有します。ご確認をお願いいたします。 Meeting notes for review, line %d.\r\n", i, i)
	}
	return b.Bytes()[:n]
}
