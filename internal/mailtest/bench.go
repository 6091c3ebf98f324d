package mailtest

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
)

// The benchmark workload, shared by BenchmarkRewrite and scripts/bench.sh
// so both measure the same mail.

// BenchMessage is a multipart/mixed mail with a short text body and one
// base64 attachment in 76-character lines, as mail clients send it.
func BenchMessage(name, ctype string, content []byte) []byte {
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

// RandomContent is incompressible: the zipper stores it.
func RandomContent(n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{1})
	r.Read(b)
	return b
}

// TextContent is compressible Japanese and English lines: the zipper
// deflates it.
func TextContent(n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "%06d 本日の会議資料を共有します。ご確認をお願いいたします。 Meeting notes for review, line %d.\r\n", i, i)
	}
	return b.Bytes()[:n]
}
