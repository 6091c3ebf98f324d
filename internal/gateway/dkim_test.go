package gateway_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/zipgate/zipgate/internal/relay"
)

func ed25519Key(t *testing.T) (path, txt string) {
	t.Helper()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(priv)
	path = filepath.Join(t.TempDir(), "dkim.key")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub)
}

// verifications checks msg against our key for example.co.jp (any other
// domain's key is unknown).
func verifications(t *testing.T, msg []byte, txt string) []*dkim.Verification {
	t.Helper()
	v, err := dkim.VerifyWithOptions(bytes.NewReader(msg), &dkim.VerifyOptions{
		LookupTXT: func(domain string) ([]string, error) {
			if domain == "zg._domainkey.example.co.jp" {
				return []string{txt}, nil
			}
			return nil, os.ErrNotExist
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// oldSignatures stand for signatures made before zipgate: one by our own
// domain (broken by the rewrite, so removed) and one by another domain.
const oldSignatures = "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.co.jp; s=mua;\r\n" +
	"\th=from:subject; bh=AAAA; b=BBBB\r\n" +
	"DKIM-Signature: v=1; a=rsa-sha256; d=list.example.net; s=x; h=from; bh=CCCC; b=DDDD\r\n"

func TestEverythingZipgateSendsIsSigned(t *testing.T) {
	path, txt := ed25519Key(t)
	h := startSigning(t, nil, []relay.DKIMKey{{Domain: "example.co.jp", Selector: "zg", Algorithm: "ed25519", KeyFile: path}})
	if se := send(t, h.addr, "taro@example.co.jp", []string{"hanako@example.com"}, []byte(oldSignatures+withAttachment)); se != nil {
		t.Fatal(se)
	}
	h.release(t)
	kinds := byKind(h.hop.Messages())
	msg := kinds["encrypted"][0].Data
	if bytes.Contains(msg, []byte("s=mua;")) {
		t.Error("the sender's own broken signature is still there")
	}
	if !bytes.Contains(msg, []byte("d=list.example.net")) {
		t.Error("another domain's signature was removed")
	}
	all := append([][]byte{msg}, kinds["password"][0].Data)
	for _, n := range kinds["notice"] {
		all = append(all, n.Data)
	}
	for i, m := range all {
		var ours *dkim.Verification
		for _, v := range verifications(t, m, txt) {
			if v.Domain == "example.co.jp" {
				ours = v
			}
		}
		if ours == nil || ours.Err != nil {
			t.Errorf("mail %d is not signed by example.co.jp or does not verify: %+v", i, ours)
		}
		// One byte of the body changed breaks it.
		bad := bytes.Replace(m, []byte("\r\n\r\n"), []byte("\r\n\r\nX"), 1)
		for _, v := range verifications(t, bad, txt) {
			if v.Domain == "example.co.jp" && v.Err == nil {
				t.Errorf("mail %d still verifies after a body change", i)
			}
		}
	}
	if !strings.Contains(h.logs.String(), `"dkim":"signed d=example.co.jp s=zg"`) {
		t.Error("the log does not say the message was signed")
	}
}

func TestUntouchedAndKeylessMail(t *testing.T) {
	path, _ := ed25519Key(t)
	h := startSigning(t, nil, []relay.DKIMKey{{Domain: "example.co.jp", Selector: "zg", Algorithm: "ed25519", KeyFile: path}})
	// Passed untouched: its signatures stay and nothing is added.
	plain := oldSignatures + "From: taro@example.co.jp\r\nTo: b@example.com\r\nSubject: hi\r\n\r\nno files\r\n"
	if se := send(t, h.addr, "taro@example.co.jp", []string{"b@example.com"}, []byte(plain)); se != nil {
		t.Fatal(se)
	}
	if got := h.hop.Messages()[0].Data; string(got) != plain {
		t.Fatalf("untouched mail changed:\n%s", got)
	}
	// A domain without a key: relayed unsigned, and the log says so.
	other := strings.Replace(withAttachment, "From: Taro <taro@example.co.jp>", "From: Jiro <jiro@other.example>", 1)
	if se := send(t, h.addr, "jiro@other.example", []string{"b@example.com"}, []byte(other)); se != nil {
		t.Fatal(se)
	}
	if m := h.hop.Messages()[1].Data; bytes.Contains(m, []byte("DKIM-Signature")) {
		t.Error("signed without a key")
	}
	if !strings.Contains(h.logs.String(), `"dkim":"unsigned: no key for other.example"`) {
		t.Error("the log does not say the mail went unsigned")
	}
}
