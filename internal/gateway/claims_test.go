package gateway_test

import (
	"archive/zip"
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"testing"
)

// claimCase is a message that once passed in the clear, and the bytes
// of its file that must not reach the next hop.
type claimCase struct {
	name, msg, secret string
}

// checkZipped sends each message and checks what the next hop got: the
// rewritten message with the zip, the file's bytes nowhere in the clear.
func checkZipped(t *testing.T, cases []claimCase) {
	h := start(t, nil)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := len(h.hop.Messages())
			if se := send(t, h.addr, "sender@example.co.jp", []string{"rcpt@example.com"}, []byte(tc.msg)); se != nil {
				t.Fatalf("got %d %s, want 250", se.Code, se.Message)
			}
			got := h.hop.Messages()[before:]
			if len(got) != 1 {
				t.Fatalf("next hop got %d messages, want 1", len(got))
			}
			if !bytes.HasPrefix(got[0].Data, []byte("X-Zipgate: encrypted;")) {
				t.Fatalf("passed untouched:\n%s", got[0].Data)
			}
			if bytes.Contains(got[0].Data, []byte(tc.secret)) {
				t.Fatalf("%q reached the next hop in the clear", tc.secret)
			}
		})
	}
}

// TestClaimedSignaturesDoNotPass: a message that only claims to be signed
// or encrypted is zipped (issue 11, finding 3).
func TestClaimedSignaturesDoNotPass(t *testing.T) {
	head := "From: a@example.co.jp\r\nTo: b@example.com\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
	pdf := "Content-Type: application/pdf; name=x.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQKc2VjcmV0\r\n"
	crafted := func(file string) string {
		b, err := os.ReadFile(filepath.Join("../rewrite/testdata/crafted", file))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	checkZipped(t, []claimCase{
		{"multipart/signed: a text and a PDF, no signature",
			head + "Content-Type: multipart/signed; protocol=\"application/pgp-signature\"; micalg=pgp-sha256; boundary=s\r\n\r\n" +
				"--s\r\nContent-Type: text/plain\r\n\r\nhi\r\n--s\r\n" + pdf + "--s--\r\n", "JVBERi0xLjQKc2VjcmV0"},
		{"multipart/encrypted: a text and a PDF",
			head + "Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=e\r\n\r\n" +
				"--e\r\nContent-Type: text/plain\r\n\r\nhi\r\n--e\r\n" + pdf + "--e--\r\n", "JVBERi0xLjQKc2VjcmV0"},
		{"S/MIME signature part holding the content",
			crafted("openssl_smime_multipart_signed_signature_part_holding_the_content.eml"), "JVBERi0xLjQKJSByZXBvcnQg"},
		{"opaque signed-data",
			crafted("openssl_smime_signed_data_labelled_enveloped_data.eml"), "MIIFMAYJKoZIhvcNAQcCoIIFITCCBR0CAQEx"},
	})
}

// TestDifferentialsGetTheZip: where mail readers could take a message two
// ways, the reading that zips wins (issue 11, finding 4).
func TestDifferentialsGetTheZip(t *testing.T) {
	head := "From: a@example.co.jp\r\nTo: b@example.com\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
	pdf := "Content-Type: application/pdf; name=x.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQKc2VjcmV0\r\n"
	uu := "begin 644 minutes.txt\r\n+:&5L;&\\@=V]R;&0`\r\n`\r\nend\r\n"
	mixed := func(parts ...string) string {
		m := head + "Content-Type: multipart/mixed; boundary=b\r\n\r\n"
		for _, p := range parts {
			m += "--b\r\n" + p
		}
		return m + "--b--\r\n"
	}
	zipPart := func(z []byte) string {
		return "Content-Type: application/zip; name=s.zip\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
			base64.StdEncoding.EncodeToString(z) + "\r\n"
	}
	pseudo := pseudoEncryptedZip(t)
	checkZipped(t, []claimCase{
		{"text/plain, then multipart/mixed with a PDF",
			head + "Content-Type: text/plain\r\n" + mixed(pdf)[len(head):], "JVBERi0xLjQKc2VjcmV0"},
		{"two boundaries",
			head + "Content-Type: multipart/mixed; boundary=a; boundary=b\r\n\r\n--a\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b\r\n" + pdf + "--b--\r\n--a--\r\n", "JVBERi0xLjQKc2VjcmV0"},
		{"uuencode under an unknown transfer encoding",
			mixed("Content-Type: text/plain\r\nContent-Transfer-Encoding: x-made-up\r\n\r\nsee below\r\n" + uu), "+:&5L;&"},
		{"uuencode in text/html", mixed("Content-Type: text/html\r\n\r\n<p>see below</p>\r\n" + uu), "+:&5L;&"},
		{"yEnc", mixed("Content-Type: text/plain\r\n\r\n=ybegin line=128 size=5 name=a.bin\r\n\x92\x8f\x96\x96\x99\r\n=yend size=5\r\n"), "\x92\x8f\x96\x96\x99"},
		{"a calendar marked attachment with a file name", head + "Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n" +
			"--b\r\nContent-Type: text/calendar; method=REQUEST\r\nContent-Disposition: attachment; filename=minutes.ics\r\n\r\nBEGIN:VCALENDAR\r\nX-SECRET:board\r\nEND:VCALENDAR\r\n--b--\r\n", "X-SECRET:board"},
		{"a zip whose flags claim encryption over clear bytes", mixed("Content-Type: text/plain\r\n\r\nhi\r\n", zipPart(pseudo)), base64.StdEncoding.EncodeToString(pseudo)[:40]},
	})
}

// pseudoEncryptedZip is a zip of one stored clear file with the
// encryption flag set in both headers.
func pseudoEncryptedZip(t *testing.T) []byte {
	var b bytes.Buffer
	w := zip.NewWriter(&b)
	f, err := w.CreateHeader(&zip.FileHeader{Name: "minutes.txt", Method: zip.Store})
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("minutes of the board meeting, not for the press\n"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	z := b.Bytes()
	for _, sig := range []struct {
		magic string
		flags int
	}{{"PK\x03\x04", 6}, {"PK\x01\x02", 8}} {
		i := bytes.Index(z, []byte(sig.magic))
		z[i+sig.flags] |= 1
	}
	return z
}
