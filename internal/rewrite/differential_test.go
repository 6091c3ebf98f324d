package rewrite

import (
	"bytes"
	"strings"
	"testing"
)

// TestReadersThatCouldDisagreeGetTheZip: where mail readers could take a
// message two ways, the reading that zips wins (issue 11, finding 4).
func TestReadersThatCouldDisagreeGetTheZip(t *testing.T) {
	head := "From: a@example.jp\r\nMIME-Version: 1.0\r\n"
	pdf := "Content-Type: application/pdf; name=x.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n"
	uu := "begin 644 a.txt\r\n+:&5L;&\\@=V]R;&0`\r\n`\r\nend\r\n"
	mixed := func(parts ...string) string {
		m := head + "Content-Type: multipart/mixed; boundary=b\r\n\r\n"
		for _, p := range parts {
			m += "--b\r\n" + p
		}
		return m + "--b--\r\n"
	}
	cases := []struct {
		name, msg string
		want      []string
	}{
		{"text/plain, then multipart/mixed with a PDF", head + "Content-Type: text/plain\r\n" + mixed(pdf)[len(head):], []string{"message.eml"}},
		{"two Content-Type fields in a part", mixed("Content-Type: text/plain\r\n\r\nhi\r\n",
			"Content-Type: text/plain\r\nContent-Type: application/pdf; name=y.pdf\r\n\r\n%PDF-1.4\r\n"), []string{"part.eml"}},
		{"the same Content-Type twice is no doubt", mixed("Content-Type: text/plain\r\n\r\nhi\r\n", "Content-Type: application/pdf; name=x.pdf\r\n"+pdf), []string{"x.pdf"}},
		{"two boundaries", head + "Content-Type: multipart/mixed; boundary=a; boundary=b\r\n\r\n--a\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b\r\n" + pdf + "--b--\r\n--a--\r\n", []string{"message.eml"}},
		{"boundary and boundary*", head + "Content-Type: multipart/mixed; boundary=a; boundary*=utf-8''b\r\n\r\n--b\r\n" + pdf + "--b--\r\n", []string{"message.eml"}},
		{"two transfer encodings", mixed("Content-Type: text/plain\r\nContent-Transfer-Encoding: 7bit\r\nContent-Transfer-Encoding: base64\r\n\r\naGk=\r\n", pdf), []string{"part.eml", "x.pdf"}},
		{"Content-Type after a line that is no field", head + "X-Junk\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n" + pdf + "--b--\r\n", []string{"message.eml"}},
		{"uuencode under an unknown transfer encoding", mixed("Content-Type: text/plain\r\nContent-Transfer-Encoding: x-made-up\r\n\r\nsee below\r\n" + uu), []string{"attachment.txt"}},
		{"uuencode in text/html", mixed("Content-Type: text/html\r\n\r\n<p>see below</p>\r\n" + uu), []string{"attachment.html"}},
		{"uuencode, base64 flavour", mixed("Content-Type: text/plain\r\n\r\nbegin-base64 644 a.txt\r\naGVsbG8=\r\n====\r\n"), []string{"attachment.txt"}},
		{"uuencode in quoted-printable", mixed("Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nsee=\r\n\r\nbegin 644 a.txt\r\n+:&5L;&\\@=3DV]R;&0`\r\nend\r\n"), []string{"attachment.txt"}},
		{"yEnc", mixed("Content-Type: text/plain\r\n\r\n=ybegin line=128 size=5 name=a.bin\r\n\x92\x8f\x96\x96\x99\r\n=yend size=5\r\n"), []string{"attachment.txt"}},
		{"a calendar marked attachment with a file name", head + "Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n" +
			"--b\r\nContent-Type: text/calendar; method=REQUEST\r\nContent-Disposition: attachment; filename=\"minutes.ics\"\r\n\r\nBEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n--b--\r\n", []string{"minutes.ics"}},
		{"a calendar with a file inside", head + "Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n" +
			"--b\r\nContent-Type: text/calendar; method=REQUEST\r\n\r\nBEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nATTACH;FMTTYPE=application/pdf;FILENAME=x.pdf;\r\n ENCODING=BASE64;VALUE=BINARY:JVBERi0xLjQK\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n--b--\r\n", []string{"attachment.bin"}},
		{"a boundary with a space no line matches", head + "Content-Type: multipart/mixed; boundary=\"b \"\r\n\r\n--b\r\n" + pdf + "--b--\r\n", []string{"attachment.bin"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pass, names := analyzeNames(t, tc.msg)
			if pass != "" || strings.Join(names, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("pass %q, attachments %q; want %q", pass, names, tc.want)
			}
			// And nothing of the file is left in the rewritten message.
			out := rewriteOne(t, tc.msg)
			for _, secret := range []string{"JVBERi0xLjQK", "%PDF-1.4", "+:&5L;&", "aGVsbG8=", "\x92\x8f\x96"} {
				if strings.Contains(tc.msg, secret) && bytes.Contains(out, []byte(secret)) {
					t.Fatalf("%q is still in the rewritten message:\n%s", secret, out)
				}
			}
		})
	}

	// Invites and links stay as they are.
	invite := head + "Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n" +
		"--b\r\nContent-Type: text/calendar; method=REQUEST\r\n\r\nBEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nATTACH;FMTTYPE=application/pdf;\r\n FILENAME=x.pdf:https://drive.example.com/x.pdf\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n--b--\r\n"
	if pass, names := analyzeNames(t, invite); pass != PassNoAttachments {
		t.Errorf("an invite with a linked file: pass %q, attachments %q; want it to pass", pass, names)
	}
	if pass, names := analyzeNames(t, head+"Content-Type: text/plain\r\n\r\nWe begin 644 new tests.\r\nbegin 10 minutes early\r\n"); pass != PassNoAttachments {
		t.Errorf("prose: pass %q, attachments %q; want it to pass", pass, names)
	}
}

// A name in a Content-Type without a media type still names a file.
func TestNameWithoutAType(t *testing.T) {
	msg := "From: a@example.jp\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nhi\r\n" +
		"--b\r\nContent-Type: ; name=\"x.pdf\"\r\n\r\n%PDF-1.4\r\n--b--\r\n"
	if pass, names := analyzeNames(t, msg); pass != "" || strings.Join(names, ",") != "x.pdf" {
		t.Fatalf("pass %q, attachments %q; want x.pdf", pass, names)
	}
}

// TopHeader's fields are read from the message, as every part's are.
func TestTopHeader(t *testing.T) {
	msg := "Received: from a (Postfix) with ESMTP id 6C39D984ABF\r\nSubject: =?UTF-8?B?6KaL56mN?=\r\n folded\r\nMessage-ID: <x@example.jp>\r\n\r\nbody\r\n"
	p, err := TopHeader(strings.NewReader(msg), int64(len(msg)), testLimits)
	if err != nil {
		t.Fatal(err)
	}
	if p.Get("Message-ID") != "<x@example.jp>" || p.Get("subject") != "=?UTF-8?B?6KaL56mN?= folded" || !strings.Contains(p.Get("Received"), "6C39D984ABF") {
		t.Fatalf("Message-ID %q, Subject %q, Received %q", p.Get("Message-ID"), p.Get("Subject"), p.Get("Received"))
	}
}
