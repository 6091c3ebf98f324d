package gateway_test

import (
	"bytes"
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
