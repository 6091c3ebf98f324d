package notice

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message/mail"
)

func TestPasswordMailReadsInAMailClient(t *testing.T) {
	tm, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	sent := time.Date(2026, 11, 27, 15, 4, 0, 0, time.FixedZone("JST", 9*3600))
	raw, err := tm.Password(PasswordMail{
		ID: "abc", Hostname: "gw.example.jp", From: "=?UTF-8?B?5aSq6YOO?= <taro@example.jp>",
		To: "hanako@example.com", Subject: "見積書の送付", MessageID: "<m1@example.jp>",
		ZipName: "attachments_20261127.zip", Files: []File{{"見積書.pdf", 2048}},
		Password: "Xk7#mQ2p", Sent: sent, Now: sent.Add(time.Minute),
	}, "[パスワード] ")
	if err != nil {
		t.Fatal(err)
	}
	r, err := mail.CreateReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	subject, _ := r.Header.Subject()
	if subject != "[パスワード] 見積書の送付" {
		t.Errorf("subject %q", subject)
	}
	from, _ := r.Header.AddressList("From")
	if len(from) != 1 || from[0].Name != "太郎" {
		t.Errorf("from %v", from)
	}
	if r.Header.Get("In-Reply-To") != "<m1@example.jp>" || r.Header.Get("References") != "<m1@example.jp>" {
		t.Error("does not thread under the original")
	}
	p, err := r.NextPart()
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(p.Body)
	for _, want := range []string{"「見積書の送付」でお送りした添付ファイル「attachments_20261127.zip」", "パスワード: Xk7#mQ2p", "Password: Xk7#mQ2p", "見積書.pdf (2.0 KB)", "2026-11-27 15:04 JST"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("%q missing from:\n%s", want, body)
		}
	}
}

func TestBodyNoticeCanBeReplaced(t *testing.T) {
	tm, err := Load("Files are in {{.ZipName}} ({{len .Files}} files).")
	if err != nil {
		t.Fatal(err)
	}
	got, err := tm.Body(BodyData{ZipName: "a.zip", Files: []File{{"x", 1}, {"y", 2}}})
	if err != nil || got != "Files are in a.zip (2 files)." {
		t.Fatalf("%q, %v", got, err)
	}
	if _, err := Load("{{.Nope"); err == nil {
		t.Fatal("a broken template must be an error")
	}
}
