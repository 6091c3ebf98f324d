package notice

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/emersion/go-message/charset"
	"github.com/emersion/go-message/mail"
)

var jst = time.FixedZone("JST", 9*3600)

// read parses a generated mail as a mail client would and returns its
// decoded subject and text.
func read(t *testing.T, raw []byte) (*mail.Reader, string, string) {
	t.Helper()
	r, err := mail.CreateReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	subject, err := r.Header.Subject()
	if err != nil {
		t.Fatal(err)
	}
	p, err := r.NextPart()
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(p.Body)
	if err != nil {
		t.Fatal(err)
	}
	return r, subject, string(body)
}

func TestPasswordMailReadsInAMailClient(t *testing.T) {
	for _, charset := range []string{"utf-8", "iso-2022-jp"} {
		t.Run(charset, func(t *testing.T) {
			tm, err := Load(Options{Charset: charset})
			if err != nil {
				t.Fatal(err)
			}
			sent := time.Date(2026, 11, 27, 15, 4, 0, 0, jst)
			raw, err := tm.Mail(Password, Header{
				ID: "abc", Hostname: "gw.example.jp", From: "=?UTF-8?B?5aSq6YOO?= <taro@example.jp>",
				To: "hanako@example.com", Subject: "[パスワード] 見積書の送付", InReplyTo: "<m1@example.jp>",
				Kind: "password", Date: sent,
			}, Data{
				Subject: "見積書の送付", ZipName: "attachments_20261127.zip", Files: []File{{"見積書.pdf", 2048}},
				Password: "Xk7#mQ2p", Sent: sent,
			})
			if err != nil {
				t.Fatal(err)
			}
			if charset == "iso-2022-jp" && !bytes.Contains(raw, []byte("charset=ISO-2022-JP")) {
				t.Fatalf("not ISO-2022-JP:\n%s", raw)
			}
			r, subject, body := read(t, raw)
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
			for _, want := range []string{"「見積書の送付」でお送りした添付ファイル「attachments_20261127.zip」", "パスワード: Xk7#mQ2p", "Password: Xk7#mQ2p", "見積書.pdf (2.0 KB)", "2026-11-27 15:04 JST"} {
				if !strings.Contains(body, want) {
					t.Errorf("%q missing from:\n%s", want, body)
				}
			}
		})
	}
}

func TestSenderNotices(t *testing.T) {
	tm, err := Load(Options{})
	if err != nil {
		t.Fatal(err)
	}
	d := Data{Subject: "見積書", ZipName: "a.zip", Rcpts: []string{"hanako@example.com"},
		Files: []File{{"見積書.pdf", 10}}, Due: time.Date(2026, 11, 27, 15, 14, 0, 0, jst),
		When: time.Date(2026, 11, 27, 15, 10, 0, 0, jst), Link: "https://gw.example.jp/s/TOKEN", Reason: "550 no such user"}
	h := Header{ID: "x", Hostname: "gw", From: "postmaster@example.jp", To: "taro@example.jp", Subject: "s", Kind: "notice", Date: d.When}
	cases := map[string][]string{
		SenderScheduled: {"https://gw.example.jp/s/TOKEN", "2026-11-27 15:14 JST", "hanako@example.com", "見積書.pdf (10 B)", "送信を取り消す"},
		SenderReleased:  {"2026-11-27 15:10 JST", "was sent", "hanako@example.com"},
		SenderCanceled:  {"取り消しました", "will not be sent"},
		SenderFailed:    {"550 no such user", "could not be sent"},
	}
	for name, wants := range cases {
		raw, err := tm.Mail(name, h, d)
		if err != nil {
			t.Fatal(err)
		}
		_, _, body := read(t, raw)
		for _, w := range wants {
			if !strings.Contains(body, w) {
				t.Errorf("%s: %q missing from:\n%s", name, w, body)
			}
		}
		if strings.Contains(body, "Xk7") {
			t.Errorf("%s shows a password", name)
		}
	}
}

func TestEditedTemplatesWin(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, Password), []byte("PW={{.Password}}\n"), 0o600)
	tm, err := Load(Options{Dir: dir, BodyText: "Files are in {{.ZipName}} ({{len .Files}} files)."})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := tm.Mail(Password, Header{ID: "x", Hostname: "h", Kind: "password", Date: time.Now()}, Data{Password: "abc"})
	if _, _, body := read(t, raw); body != "PW=abc\r\n" {
		t.Errorf("password mail %q", body)
	}
	got, err := tm.Body(BodyData{ZipName: "a.zip", Files: []File{{"x", 1}, {"y", 2}}})
	if err != nil || got != "Files are in a.zip (2 files)." {
		t.Fatalf("%q, %v", got, err)
	}
	os.WriteFile(filepath.Join(dir, SenderCanceled), []byte("{{.Nope"), 0o600)
	if _, err := Load(Options{Dir: dir}); err == nil || !strings.Contains(err.Error(), SenderCanceled) {
		t.Fatalf("a broken template must be an error naming the file: %v", err)
	}
}

func TestLongAddressListsAreFolded(t *testing.T) {
	var to []string
	for i := range 40 {
		to = append(to, fmt.Sprintf("=?UTF-8?B?5aSq6YOO?= <user%02d@example.com>", i))
	}
	tm, _ := Load(Options{})
	raw, err := tm.Mail(Password, Header{ID: "x", Hostname: "h", To: strings.Join(to, ", "), Kind: "password", Date: time.Now()}, Data{Password: "p"})
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\r\n") {
		if len(line) > 78 {
			t.Fatalf("line of %d characters: %q", len(line), line)
		}
	}
	r, _, _ := read(t, raw)
	list, err := r.Header.AddressList("To")
	if err != nil || len(list) != 40 || list[39].Address != "user39@example.com" || list[0].Name != "太郎" {
		t.Fatalf("To does not parse back: %v (%d)", err, len(list))
	}
}

// Each language shows only its own text; "ja+en" both, Japanese first.
func TestLanguages(t *testing.T) {
	tm, err := Load(Options{Language: English})
	if err != nil {
		t.Fatal(err)
	}
	sent := time.Date(2026, 11, 27, 15, 4, 0, 0, jst)
	for _, tc := range []struct {
		lang      string
		want, not []string
	}{
		{"", []string{"Password: pw1"}, []string{"パスワード"}}, // the templates' default
		{Japanese, []string{"パスワード: pw1", "でお送りした"}, []string{"Password:"}},
		{English, []string{"Password: pw1"}, []string{"パスワード"}},
		{Both, []string{"パスワード: pw1", "Password: pw1"}, nil},
	} {
		d := Data{Subject: "見積", ZipName: "a.zip", Password: "pw1", Sent: sent, Files: []File{{"a.pdf", 5}}}
		d.SetLanguage(tc.lang)
		raw, err := tm.Mail(Password, Header{ID: "x", Hostname: "h", Kind: "password", Date: sent}, d)
		if err != nil {
			t.Fatal(err)
		}
		_, _, body := read(t, raw)
		for _, w := range tc.want {
			if !strings.Contains(body, w) {
				t.Errorf("%q: %q missing from:\n%s", tc.lang, w, body)
			}
		}
		for _, w := range tc.not {
			if strings.Contains(body, w) {
				t.Errorf("%q: %q in:\n%s", tc.lang, w, body)
			}
		}
		if tc.lang == Both && strings.Index(body, "パスワード:") > strings.Index(body, "Password:") {
			t.Errorf("English before Japanese:\n%s", body)
		}
	}
	b := BodyData{ZipName: "a.zip", Files: []File{{"a.pdf", 5}}}
	b.SetLanguage(Japanese)
	got, err := tm.Body(b)
	if err != nil || !strings.Contains(got, "パスワードは別のメールでお送りします") || strings.Contains(got, "The password") {
		t.Errorf("ja body notice %q, %v", got, err)
	}
}

// Who gets the password changes what the sender and the recipients read.
func TestPasswordToSenderAndManual(t *testing.T) {
	tm, err := Load(Options{})
	if err != nil {
		t.Fatal(err)
	}
	due := time.Date(2026, 11, 27, 15, 14, 0, 0, jst)
	h := Header{ID: "x", Hostname: "gw", From: "postmaster@example.jp", To: "taro@example.jp", Subject: "s", Kind: "notice", Date: due}
	for _, tc := range []struct {
		to        string
		name      string
		want, not []string
	}{
		{"sender", SenderScheduled, []string{"あなた宛てに送られます", "mailed to you at 2026-11-27 15:14 JST", "https://gw/s/T"}, []string{"に宛先へ送られます"}},
		{"manual", SenderScheduled, []string{"「今すぐ送る」を押すまで", `until you press "Release now"`, "https://gw/s/T"}, []string{"15:14"}},
		{"recipient", SenderScheduled, []string{"2026-11-27 15:14 JST に宛先へ送られます", "goes to the recipients at"}, []string{"あなた宛て"}},
		{"sender", PasswordSender, []string{"パスワード: pw9", "Password: pw9", "メール以外の方法", "hanako@example.com"}, nil},
		{"sender", SenderReleased, []string{"あなた宛てに送信しました", "was sent to you at"}, nil},
	} {
		d := Data{Subject: "見積", ZipName: "a.zip", Password: "pw9", Rcpts: []string{"hanako@example.com"}, Due: due, When: due,
			Sent: due, Link: "https://gw/s/T", PasswordTo: tc.to}
		raw, err := tm.Mail(tc.name, h, d)
		if err != nil {
			t.Fatal(err)
		}
		_, _, body := read(t, raw)
		for _, w := range tc.want {
			if !strings.Contains(body, w) {
				t.Errorf("%s %s: %q missing from:\n%s", tc.to, tc.name, w, body)
			}
		}
		for _, w := range tc.not {
			if strings.Contains(body, w) {
				t.Errorf("%s %s: %q in:\n%s", tc.to, tc.name, w, body)
			}
		}
	}
	body, err := tm.Body(BodyData{ZipName: "a.zip", PasswordTo: "sender"})
	if err != nil || !strings.Contains(body, "送信者から") || !strings.Contains(body, "The sender will give you the password") {
		t.Errorf("body notice for password_to sender: %q, %v", body, err)
	}
}

func TestDownloadLinkTexts(t *testing.T) {
	tm, err := Load(Options{})
	if err != nil {
		t.Fatal(err)
	}
	until := time.Date(2026, 12, 4, 15, 4, 0, 0, jst)
	bd := BodyData{Link: "https://zipgate.example.jp/d/TOKEN", Expires: until, MaxDownloads: 5,
		Files: []File{{"見積書.pdf", 2048}}, Auth: "password"}
	text, err := tm.BodyLink(bd)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"https://zipgate.example.jp/d/TOKEN", "2026-12-04 15:04 JST まで", "5 回まで",
		"パスワードは別のメール", "password follows in a separate mail", "見積書.pdf (2.0 KB)"} {
		if !strings.Contains(text, want) {
			t.Errorf("%q missing from:\n%s", want, text)
		}
	}
	bd.Auth, bd.MaxDownloads = "otp", 0
	bd.SetLanguage(English)
	if text, _ = tm.BodyLink(bd); !strings.Contains(text, `press "Send me a code"`) || strings.Contains(text, "password") ||
		strings.Contains(text, "downloads at most") || strings.Contains(text, "ページ") {
		t.Errorf("otp, English:\n%s", text)
	}
	raw, err := tm.Mail(LinkCode, Header{ID: "x", Hostname: "gw", From: "a@b", To: "c@d", Subject: "code", Kind: "code",
		Date: until}, Data{Subject: "見積書", Code: "493817", Expires: until})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, body := read(t, raw); !strings.Contains(body, "確認コード: 493817") || !strings.Contains(body, "Code: 493817") ||
		!strings.Contains(body, "15:04 JST") {
		t.Errorf("code mail:\n%s", body)
	}
	for _, name := range []string{PasswordLink, PasswordLinkSender, SenderLink, LinkDownloaded, LinkLocked} {
		raw, err := tm.Mail(name, Header{ID: "x", Hostname: "gw", Kind: "notice", Date: until},
			Data{Subject: "見積書", Password: "Pw3xample", Sent: until, Due: until, Expires: until, When: until,
				Link: "https://gw/s/T", Client: "192.0.2.7", Item: "見積書.pdf", Rcpts: []string{"hanako@example.com"}})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		_, _, body := read(t, raw)
		if name == PasswordLink && (!strings.Contains(body, "ダウンロードページのパスワード") || !strings.Contains(body, "Password: Pw3xample")) {
			t.Errorf("%s:\n%s", name, body)
		}
		if name == LinkDownloaded && (!strings.Contains(body, "192.0.2.7") || !strings.Contains(body, "見積書.pdf")) {
			t.Errorf("%s:\n%s", name, body)
		}
	}
}
