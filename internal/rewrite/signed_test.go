package rewrite

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// analyzeNames runs Analyze and returns the pass reason and the names of
// the attachments that go into the zip.
func analyzeNames(t *testing.T, msg string) (string, []string) {
	t.Helper()
	pl, err := Analyze(strings.NewReader(msg), int64(len(msg)), testLimits, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, a := range pl.Attachments {
		names = append(names, a.Name)
	}
	return pl.Pass, names
}

func readCrafted(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata/crafted", file))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestSignedNeedsTheStructureOfASignature: only a message with the
// structure of a signature or an encryption passes untouched (issue 11,
// finding 3); one that only claims it by its media type is rewritten.
func TestSignedNeedsTheStructureOfASignature(t *testing.T) {
	head := "From: a@example.jp\r\nMIME-Version: 1.0\r\n"
	pdf := "Content-Type: application/pdf; name=x.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n"
	text := "Content-Type: text/plain\r\n\r\nhi\r\n"
	pgpSig := readCrafted(t, "gpg_pgp_mime_signed_mixed_text_plus_pdf.eml")
	sigPart := pgpSig[strings.Index(pgpSig, "Content-Type: application/pgp-signature"):strings.LastIndex(pgpSig, "--outer--")]
	signed := func(protocol string, parts ...string) string {
		m := head + "Content-Type: multipart/signed; protocol=\"" + protocol + "\"; micalg=pgp-sha256; boundary=s\r\n\r\n"
		for _, p := range parts {
			m += "--s\r\n" + p
		}
		return m + "--s--\r\n"
	}
	cases := []struct {
		name, msg string
		pass      string
		want      []string
	}{
		// Real ones, made with GnuPG and OpenSSL.
		{"PGP/MIME signed", pgpSig, PassSigned, nil},
		{"PGP/MIME encrypted", readCrafted(t, "gpg_pgp_mime_encrypted_mixed_text_plus_pdf.eml"), PassSigned, nil},
		{"S/MIME signed", readCrafted(t, "openssl_smime_multipart_signed_mixed_text_plus_pdf.eml"), PassSigned, nil},
		{"S/MIME enveloped (Thunderbird)", sample(t, "thunderbird_smime_enveloped_pkcs7_mime.eml"), PassSigned, nil},
		{"S/MIME signed (Thunderbird)", sample(t, "thunderbird_smime_multipart_signed_sha256.eml"), PassSigned, nil},

		// Claims.
		{"signed: a text and a clear PDF, no signature", signed("application/pgp-signature", text, pdf), "", []string{"x.pdf"}},
		{"signed: three parts", signed("application/pgp-signature", text, pdf, sigPart), "", []string{"x.pdf", "signature.asc"}},
		{"signed: second part of another type than the protocol", signed("application/pgp-signature", text, pdf), "", []string{"x.pdf"}},
		{"signed: an unknown protocol", signed("application/x-made-up", text, strings.Replace(pdf, "application/pdf", "application/x-made-up", 1)), "", []string{"x.pdf"}},
		{"signed: a PDF labelled as the signature", signed("application/pgp-signature", text, strings.Replace(pdf, "application/pdf", "application/pgp-signature", 1)), "", []string{"x.pdf"}},
		{"signed: armor with text after it", signed("application/pgp-signature", text, strings.Replace(sigPart, "-----END PGP SIGNATURE-----", "-----END PGP SIGNATURE-----\r\nsecret minutes", 1)), "", []string{"signature.asc"}},
		{"signed: not closed", strings.TrimSuffix(signed("application/pgp-signature", text, sigPart), "--s--\r\n"), "", []string{"signature.asc"}},
		{"S/MIME: the signature part holds the content", readCrafted(t, "openssl_smime_multipart_signed_signature_part_holding_the_content.eml"), "", []string{"report.pdf", "smime.p7s"}},
		{"encrypted: a signed clear OpenPGP message", readCrafted(t, "gpg_pgp_mime_encrypted_claim_holding_signed_clear_message.eml"), "", []string{"attachment.bin", "encrypted.asc"}},
		{"encrypted: a text and a PDF", head + "Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=e\r\n\r\n--e\r\n" + text + "--e\r\n" + pdf + "--e--\r\n", "", []string{"x.pdf"}},
		{"opaque signed-data is clear text (Thunderbird)", sample(t, "thunderbird_smime_opaque_signed_pkcs7_mime.eml"), "", []string{"smime.p7m"}},
		{"opaque signed-data with a PDF inside", sample(t, "smime_opaque_signed_pkcs7_mime_signed_data_with_attachment_inside.eml"), "", []string{"smime.p7m"}},
		{"signed-data labelled enveloped-data", readCrafted(t, "openssl_smime_signed_data_labelled_enveloped_data.eml"), "", []string{"smime.p7m"}},
		{"pkcs7-mime with a PDF inside", head + strings.Replace(pdf, "application/pdf", "application/pkcs7-mime; smime-type=enveloped-data", 1), "", []string{"x.pdf"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pass, names := analyzeNames(t, tc.msg)
			if pass != tc.pass || strings.Join(names, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("pass %q, attachments %q; want pass %q, attachments %q", pass, names, tc.pass, tc.want)
			}
		})
	}
}

func sample(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("../../testdata/samples", file))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// FuzzSignatureParsers: the BER walker, the OpenPGP armor and packet
// readers take any bytes without panicking or hanging.
func FuzzSignatureParsers(f *testing.F) {
	for _, file := range []string{"gpg_pgp_mime_signed_mixed_text_plus_pdf.eml", "gpg_pgp_mime_encrypted_mixed_text_plus_pdf.eml",
		"openssl_smime_multipart_signed_mixed_text_plus_pdf.eml", "openssl_smime_signed_data_labelled_enveloped_data.eml"} {
		b, err := os.ReadFile(filepath.Join("testdata/crafted", file))
		if err != nil {
			f.Fatal(err)
		}
		if i := bytes.Index(b, []byte("-----BEGIN PGP")); i >= 0 {
			f.Add(b[i:])
		}
		if i := bytes.Index(b, []byte("\r\n\r\nMII")); i >= 0 {
			dec, _ := decoder("base64", bytes.NewReader(b[i:]))
			der, _ := io.ReadAll(dec)
			f.Add(der)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		wd := time.AfterFunc(10*time.Second, func() { panic("one input took over 10 s") })
		defer wd.Stop()
		cmsDetachedSignature(b)
		cmsContentType(b)
		berSkip(b, 0)
		pgpArmored(bytes.NewReader(b), "SIGNATURE", pgpSignaturePackets)
		pgpArmored(bytes.NewReader(b), "MESSAGE", pgpEncryptedPackets)
		pgpEncryptedPackets(bufio.NewReader(bytes.NewReader(b)))
		pgpSignaturePackets(bufio.NewReader(bytes.NewReader(b)))
	})
}
