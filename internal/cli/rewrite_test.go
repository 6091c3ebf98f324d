package cli

import (
	"strings"
	"testing"
)

const rewriteMsg = "From: Taro <taro@example.co.jp>\n" +
	"To: bob@partner.example, carol@rival.example\n" +
	"Cc: jiro@example.co.jp\n" +
	"Subject: quote\n" +
	"MIME-Version: 1.0\n" +
	"Content-Type: multipart/mixed; boundary=b\n" +
	"\n" +
	"--b\n" +
	"Content-Type: text/plain\n" +
	"\n" +
	"see attached\n" +
	"--b\n" +
	"Content-Type: application/pdf; name=quote.pdf\n" +
	"Content-Transfer-Encoding: base64\n" +
	"\n" +
	"JVBERi0xLjQK\n" +
	"--b--\n"

func runRewrite(t *testing.T, msg string, args ...string) (int, string, string) {
	t.Helper()
	old := Stdin
	Stdin = strings.NewReader(msg)
	defer func() { Stdin = old }()
	return runCLI(append([]string{"rewrite"}, args...)...)
}

// The admin's "why was this zipped or passed?": the decision, the rule,
// the files and the password on stderr, the copy on stdout.
func TestRewriteCommand(t *testing.T) {
	data := storeDir(t)
	for _, args := range [][]string{
		{"partner.example", "-zip-method", "zipcrypto"},
		{"rival.example", "-action", "reject"},
		{"pass.example", "-action", "pass"},
	} {
		if code, _, errOut := runCLI(append([]string{"policy", "set", "-data", data}, args...)...); code != 0 {
			t.Fatal(errOut)
		}
	}
	code, out, errOut := runRewrite(t, rewriteMsg, "-data", data, "-to", "bob@partner.example")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"envelope: taro@example.co.jp -> bob@partner.example", "rule partner.example",
		"zipped for bob@partner.example", "zipcrypto", "quote.pdf  9 bytes", "password "} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	if !strings.HasPrefix(out, "X-Zipgate: encrypted; id=") || strings.Contains(out, "JVBERi0xLjQK") || !strings.Contains(out, "\r\n") {
		t.Errorf("stdout is not the zipped copy with CRLF lines:\n%s", out)
	}

	// Envelope from the header fields: the rival domain refuses it.
	code, out, errOut = runRewrite(t, rewriteMsg, "-data", data)
	if code != 1 || out != "" || !strings.Contains(errOut, "refused: 554 5.7.1") || !strings.Contains(errOut, "rival.example") {
		t.Errorf("reject: exit %d, stdout %q, stderr:\n%s", code, out, errOut)
	}

	// A pass domain: stdout is the message as sent (with SMTP's CRLF).
	code, out, errOut = runRewrite(t, rewriteMsg, "-data", data, "-from", "taro@example.co.jp", "-to", "x@pass.example")
	if code != 0 || out != strings.ReplaceAll(rewriteMsg, "\n", "\r\n") || !strings.Contains(errOut, "copy 1: the original") {
		t.Errorf("pass: exit %d, stderr:\n%s", code, errOut)
	}

	// No store: the configuration decides, and it says so.
	code, _, errOut = runRewrite(t, rewriteMsg, "-data", t.TempDir()+"/none", "-to", "bob@partner.example", "-copy", "1")
	if code != 0 || !strings.Contains(errOut, "deciding by the configuration alone") || !strings.Contains(errOut, "aes256") {
		t.Errorf("without a store: exit %d:\n%s", code, errOut)
	}
	if code, _, errOut = runRewrite(t, rewriteMsg, "-data", data, "-to", "bob@partner.example", "-copy", "3"); code != 2 || !strings.Contains(errOut, "there are 1 copies") {
		t.Errorf("-copy 3: exit %d %q", code, errOut)
	}
}
