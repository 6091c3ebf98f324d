package relay

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/dkim"
)

// testKey writes a key file and returns the TXT record for it.
func testKey(t *testing.T, algorithm string) (path, txt string) {
	t.Helper()
	var priv any
	var pub []byte
	var k string
	switch algorithm {
	case "rsa":
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		priv, k = key, "rsa"
		pub, _ = x509.MarshalPKIXPublicKey(&key.PublicKey)
	case "ed25519":
		p, key, _ := ed25519.GenerateKey(rand.Reader)
		priv, k, pub = key, "ed25519", p
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(t.TempDir(), algorithm+".key")
	os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	return path, "v=DKIM1; k=" + k + "; p=" + base64.StdEncoding.EncodeToString(pub)
}

func verify(t *testing.T, msg []byte, txt string) []*dkim.Verification {
	t.Helper()
	v, err := dkim.VerifyWithOptions(bytes.NewReader(msg), &dkim.VerifyOptions{
		LookupTXT: func(domain string) ([]string, error) {
			if domain != "sel._domainkey.example.jp" {
				t.Errorf("looked up %q", domain)
			}
			return []string{txt}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

const lfMessage = "From: =?UTF-8?B?5aSq6YOO?= <taro@Example.JP>\nTo: hanako@example.com\nSubject: test\n" +
	"Date: Fri, 27 Nov 2026 10:00:00 +0900\nMessage-ID: <1@example.jp>\nMIME-Version: 1.0\n" +
	"Content-Type: text/plain; charset=utf-8\n\nbody line  \nsecond line\n"

func TestSignedMailVerifiesAndBreaksWhenChanged(t *testing.T) {
	for _, alg := range []string{"rsa", "ed25519"} {
		t.Run(alg, func(t *testing.T) {
			path, txt := testKey(t, alg)
			d, err := LoadDKIM([]DKIMKey{{Domain: "example.jp", Selector: "sel", Algorithm: alg, KeyFile: path}})
			if err != nil {
				t.Fatal(err)
			}
			r, status, err := d.Sign(func() io.Reader { return strings.NewReader(lfMessage) })
			if err != nil {
				t.Fatal(err)
			}
			if status != "signed d=example.jp s=sel" {
				t.Fatalf("status %q", status)
			}
			signed, _ := io.ReadAll(r)
			v := verify(t, signed, txt)
			if len(v) != 1 || v[0].Err != nil {
				t.Fatalf("does not verify: %+v", v[0])
			}
			for _, tamper := range []struct{ from, to string }{
				{"Subject: test", "Subject: tesT"}, // one header byte
				{"second line", "second lime"},     // one body byte
			} {
				bad := bytes.Replace(signed, []byte(tamper.from), []byte(tamper.to), 1)
				if v := verify(t, bad, txt); v[0].Err == nil {
					t.Errorf("still verifies after %q -> %q", tamper.from, tamper.to)
				}
			}
			// From is oversigned: a second From added later breaks it.
			extra := append([]byte("From: mallory@evil.example\r\n"), signed...)
			if v := verify(t, extra, txt); v[0].Err == nil {
				t.Error("an added From still verifies")
			}
		})
	}
}

func TestNoKeyNoSignature(t *testing.T) {
	path, _ := testKey(t, "ed25519")
	d, err := LoadDKIM([]DKIMKey{{Domain: "other.jp", Selector: "sel", Algorithm: "ed25519", KeyFile: path}})
	if err != nil {
		t.Fatal(err)
	}
	r, status, err := d.Sign(func() io.Reader { return strings.NewReader(lfMessage) })
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(r)
	if status != "unsigned: no key for example.jp" || bytes.Contains(out, []byte("DKIM-Signature")) {
		t.Fatalf("status %q", status)
	}
	if string(out) != strings.ReplaceAll(lfMessage, "\n", "\r\n") {
		t.Fatal("the unsigned message changed beyond line ends")
	}
}

func TestKeyFilesAreChecked(t *testing.T) {
	rsaPath, _ := testKey(t, "rsa")
	edPath, _ := testKey(t, "ed25519")
	junk := filepath.Join(t.TempDir(), "junk.key")
	os.WriteFile(junk, []byte("not a key"), 0o600)
	_, err := LoadDKIM([]DKIMKey{
		{Domain: "a.jp", Selector: "s", Algorithm: "ed25519", KeyFile: rsaPath},
		{Domain: "b.jp", Selector: "s", Algorithm: "rsa", KeyFile: edPath},
		{Domain: "c.jp", Selector: "s", Algorithm: "rsa", KeyFile: junk},
		{Domain: "d.jp", Selector: "s", Algorithm: "rsa", KeyFile: "/nonexistent/key"},
	})
	if err == nil {
		t.Fatal("want errors")
	}
	for _, want := range []string{"a.jp", "holds an RSA key", "b.jp", "holds an Ed25519 key", "c.jp", "no PEM block", "d.jp", "no such file"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q missing from:\n%v", want, err)
		}
	}
}

func TestCRLFReader(t *testing.T) {
	for in, want := range map[string]string{
		"a\nb\n": "a\r\nb\r\n", "a\r\nb": "a\r\nb", "\n\n": "\r\n\r\n", "a\rb\n": "a\rb\r\n", "": "",
	} {
		got, _ := io.ReadAll(crlf(strings.NewReader(in)))
		if string(got) != want {
			t.Errorf("%q: got %q, want %q", in, got, want)
		}
	}
}
