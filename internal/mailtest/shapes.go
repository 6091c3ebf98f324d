package mailtest

import (
	"bytes"
	"fmt"
	"strings"
)

// Hostile message shapes for memory measurements, shared by the parser's
// allocation tests (internal/rewrite) and scripts/memshapes.sh, so both
// measure the same mail. Each one is as large as the limits let it be.

// ShapeLimits are the configuration limits a shape is built against
// (config.Defaults' [smtp] values unless a test says otherwise).
type ShapeLimits struct {
	MessageBytes     int // smtp.max_message_bytes
	HeaderBytes      int // smtp.max_header_bytes, one header block
	TotalHeaderBytes int // smtp.max_total_header_bytes, all header blocks
	Parts            int // smtp.max_mime_parts
	Attachments      int // smtp.max_attachments
	LineBytes        int // the longest line smtpd takes (1 MiB)
}

// DefaultShapeLimits are config.Defaults' limits.
var DefaultShapeLimits = ShapeLimits{
	MessageBytes:     50 << 20,
	HeaderBytes:      1 << 20,
	TotalHeaderBytes: 4 << 20,
	Parts:            10000,
	Attachments:      1000,
	LineBytes:        1 << 20,
}

// Shape is one hostile layout.
type Shape struct {
	Name string
	What string
	// Refused says the shape breaks a limit on purpose: zipgate must
	// answer 554 5.6.0, not 250.
	Refused bool
	Build   func(ShapeLimits) []byte
}

// shapeHead is the top-level header of every shape; bodies stay under
// the message limit with this much room for it and for SMTP.
const shapeHead = "From: Sender <sender@example.jp>\r\n" +
	"To: Recipient <rcpt@example.com>\r\n" +
	"Subject: shape\r\n" +
	"Date: Thu, 02 Jan 2025 12:04:06 +0900\r\n" +
	"Message-ID: <shape@example.jp>\r\n" +
	"MIME-Version: 1.0\r\n"

const shapeRoom = 64 << 10

// smallPDF is an attachment, so that a shape goes the whole way through
// the rewrite (zip, notice, output) instead of passing untouched.
const smallPDF = "--b\r\nContent-Type: application/pdf; name=\"a.pdf\"\r\n" +
	"Content-Disposition: attachment; filename=\"a.pdf\"\r\n" +
	"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQKJcTl8uXrp/Og0MTGCg==\r\n"

// Shapes returns every shape.
func Shapes() []Shape {
	return []Shape{
		{
			Name: "short-header-lines",
			What: "parts whose header blocks are short fields (\"a:\\r\\n\"), each block just under the per-block limit, all blocks together just under the total limit",
			Build: func(l ShapeLimits) []byte {
				return shortHeaderLines(l, l.TotalHeaderBytes-shapeRoom)
			},
		},
		{
			Name:    "short-header-lines-over",
			What:    "as short-header-lines, but on up to the message limit: over the total header limit",
			Refused: true,
			Build: func(l ShapeLimits) []byte {
				return shortHeaderLines(l, l.MessageBytes-shapeRoom)
			},
		},
		{
			Name: "folded-header",
			What: "parts with one Content-Description folded over short lines, each block just under the per-block limit, all under the total limit",
			Build: func(l ShapeLimits) []byte {
				var m bytes.Buffer
				m.WriteString(shapeHead + "Content-Type: multipart/mixed; boundary=b\r\n\r\n")
				total := 0
				for total+l.HeaderBytes < l.TotalHeaderBytes-shapeRoom {
					m.WriteString("--b\r\nContent-Description: x\r\n")
					n := 0
					for n+5 < l.HeaderBytes-1024 {
						m.WriteString(" xy\r\n")
						n += 5
					}
					m.WriteString("\r\nhi\r\n")
					total += n
				}
				m.WriteString(smallPDF + "--b--\r\n")
				return m.Bytes()
			},
		},
		{
			Name:  "tiny-attachments",
			What:  "as many one-byte attachments as smtp.max_attachments allows",
			Build: func(l ShapeLimits) []byte { return tinyAttachments(l.Attachments) },
		},
		{
			Name:    "tiny-attachments-over",
			What:    "as many parts as smtp.max_mime_parts allows, each a one-byte attachment: over smtp.max_attachments",
			Refused: true,
			Build:   func(l ShapeLimits) []byte { return tinyAttachments(l.Parts - 2) }, // the message and its text are parts too
		},
		{
			Name: "tiny-parts",
			What: "as many parts as smtp.max_mime_parts allows, each header-less with a one-line text body, and one attachment",
			Build: func(l ShapeLimits) []byte {
				var m bytes.Buffer
				m.WriteString(shapeHead + "Content-Type: multipart/mixed; boundary=b\r\n\r\n")
				for i := 2; i < l.Parts; i++ {
					m.WriteString("--b\r\n\r\nx\r\n")
				}
				m.WriteString(smallPDF + "--b--\r\n")
				return m.Bytes()
			},
		},
		{
			Name: "headerless-40MB",
			What: "one 40 MB part without header fields (a text body of 40 MB) and an attachment",
			Build: func(l ShapeLimits) []byte {
				var m bytes.Buffer
				m.WriteString(shapeHead + "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\n")
				line := strings.Repeat("0123456789", 7) + "\r\n"
				for m.Len() < 40_000_000 {
					m.WriteString(line)
				}
				m.WriteString(smallPDF + "--b--\r\n")
				return m.Bytes()
			},
		},
		{
			Name: "cid-references",
			What: "an HTML body of 40 MB of distinct cid: references in a multipart/related, one inline image and an attachment",
			Build: func(l ShapeLimits) []byte {
				var m bytes.Buffer
				m.WriteString(shapeHead + "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n" +
					"Content-Type: multipart/related; boundary=r\r\n\r\n--r\r\nContent-Type: text/html\r\n\r\n<p>")
				for i := 0; m.Len() < 40_000_000; i++ {
					fmt.Fprintf(&m, "<img src=\"cid:image%08d@example.jp\">\r\n", i)
				}
				m.WriteString("</p>\r\n--r\r\nContent-Type: image/png\r\nContent-ID: <image00000001@example.jp>\r\n\r\nPNG\r\n--r--\r\n")
				m.WriteString(smallPDF + "--b--\r\n")
				return m.Bytes()
			},
		},
		{
			Name: "long-lines",
			What: "lines just under the 1 MiB line limit: in the top-level header, a text body and an 8bit attachment, up to the message limit",
			Build: func(l ShapeLimits) []byte {
				long := strings.Repeat("a", min(l.LineBytes, l.HeaderBytes)-1024)
				var m bytes.Buffer
				m.WriteString(shapeHead + "X-Long: " + long + "\r\n")
				m.WriteString("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n")
				long = strings.Repeat("a", l.LineBytes-1024) + "\r\n"
				half := (l.MessageBytes - shapeRoom) / 2
				for m.Len()+len(long) < half {
					m.WriteString(long)
				}
				m.WriteString("--b\r\nContent-Type: application/octet-stream; name=long.txt\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
				for m.Len()+len(long) < l.MessageBytes-shapeRoom {
					m.WriteString(long)
				}
				m.WriteString("--b--\r\n")
				return m.Bytes()
			},
		},
	}
}

// shortHeaderLines fills header blocks of "a:\r\n" fields, each block just
// under the per-block limit, until about n header bytes are written.
func shortHeaderLines(l ShapeLimits, n int) []byte {
	var m bytes.Buffer
	m.WriteString(shapeHead + "Content-Type: multipart/mixed; boundary=b\r\n\r\n")
	field := "a:\r\n"
	total := 0
	for total+1024 < n {
		m.WriteString("--b\r\n")
		block := 0
		for block+len(field) < l.HeaderBytes-1024 && total+block+len(field) < n {
			m.WriteString(field)
			block += len(field)
		}
		m.WriteString("\r\nx\r\n")
		total += block
	}
	m.WriteString(smallPDF + "--b--\r\n")
	return m.Bytes()
}

// tinyAttachments is a text and n one-byte attachments.
func tinyAttachments(n int) []byte {
	var m bytes.Buffer
	m.WriteString(shapeHead + "Content-Type: multipart/mixed; boundary=b\r\n\r\n")
	m.WriteString("--b\r\nContent-Type: text/plain\r\n\r\nfiles\r\n")
	for i := range n {
		fmt.Fprintf(&m, "--b\r\nContent-Type: application/octet-stream; name=f%d.bin\r\n\r\nx\r\n", i)
	}
	m.WriteString("--b--\r\n")
	return m.Bytes()
}
