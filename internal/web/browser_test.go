package web

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset"

	"github.com/zipgate/zipgate/internal/policy"
	"github.com/zipgate/zipgate/internal/store"
)

// The admin pages and the sender page in a real browser (Debian's
// headless Chromium, driven over the DevTools protocol), against
// zipgate on loopback: sign in, set a domain to pass and see a mail to
// it arrive as sent, set it back to encrypt and see the next one
// zipped; find the file in the audit and download the CSV; then, as the
// sender, open the link of the notice and cancel the password.
// Screenshots of each page go to the test's temp dir, or to
// $ZIPGATE_SCREENSHOT_DIR (and, with
// ZIPGATE_DOCS_SCREENSHOT=1, the admin page shown in the README to
// docs/).
func TestBrowserAdminAndSenderPages(t *testing.T) {
	chromium := ""
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			chromium = p
			break
		}
	}
	if chromium == "" {
		t.Skip("no chromium on PATH (Debian: apt-get install chromium); the browser test needs it")
	}
	s := startStack(t)
	shots := t.TempDir()
	if dir := os.Getenv("ZIPGATE_SCREENSHOT_DIR"); dir != "" {
		shots = dir // to look at them after the test
	}
	downloads := t.TempDir()

	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("lang", "ja"), chromedp.Flag("accept-lang", "ja,en;q=0.8"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 1000),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 2*time.Minute)
	defer cancelTimeout()

	run := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	// submit clicks and waits for the page that comes.
	submit := func(what string, sel chromedp.CSS) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.WaitEvent(page.LoadEventFired, nil, chromedp.Click(sel))); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	shot := func(name string) string {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		path := filepath.Join(shots, name+".png")
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot %s", path)
		return path
	}
	text := func(sel chromedp.CSS) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(sel))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	admin := s.adminTS.URL

	// Sign in.
	run("login page", chromedp.Navigate(admin+"/admin/domains"), chromedp.WaitVisible(chromedp.ID("name")))
	shot("01-login")
	run("sign in", chromedp.SendKeys(chromedp.ID("name"), adminName), chromedp.SendKeys(chromedp.ID("password"), adminPassword))
	submit("sign in", "form button[type=submit]")
	if h1 := text("h1"); h1 != "ドメイン" {
		t.Fatalf("after sign-in (back to Domains, in Japanese): h1 %q", h1)
	}

	// partner.example: pass.
	run("new rule", chromedp.Navigate(admin+"/admin/domain"), chromedp.WaitVisible(chromedp.ID("f-domain")),
		chromedp.SendKeys(chromedp.ID("f-domain"), "partner.example"),
		chromedp.SetValue(chromedp.ID("f-action"), "pass"),
		chromedp.SendKeys(chromedp.ID("f-note"), "テスト用"))
	submit("save the rule", "form.card button.primary")
	if done := text(".card.ok"); !strings.Contains(done, "partner.example") {
		t.Fatalf("after saving: %q", done)
	}
	shot("02-domains-pass")
	const rcpt = "bob@partner.example"
	passed := mailWith("議事録", "議事録_2026.pdf")
	if se := s.send(t, "taro@example.co.jp", []string{rcpt}, passed); se != nil {
		t.Fatal(se)
	}
	if got := lastTo(t, s.hop, rcpt); !bytes.Equal(got, []byte(passed)) {
		t.Fatalf("with pass, the mail did not arrive as sent:\n%s", got)
	}

	// Back to encrypt: the next mail is zipped.
	run("edit the rule", chromedp.Navigate(admin+"/admin/domain?d=partner.example"), chromedp.WaitVisible(chromedp.ID("f-action")),
		chromedp.SetValue(chromedp.ID("f-action"), "encrypt"))
	submit("save the rule", "form.card button.primary")
	if p, err := s.st.GetPolicy(context.Background(), "partner.example"); err != nil || p.Action != policy.Encrypt || p.Note != "テスト用" {
		t.Fatalf("stored rule %+v, %v", p, err)
	}
	if se := s.send(t, "taro@example.co.jp", []string{rcpt}, mailWith("見積", "見積書_最終.pdf")); se != nil {
		t.Fatal(se)
	}
	if got := lastTo(t, s.hop, rcpt); !bytes.Contains(got, []byte("application/zip")) || bytes.Contains(got, []byte("JVBERi0xLjQK")) {
		t.Fatalf("with encrypt, the file is not in a zip:\n%s", got)
	}

	// The messages, and one of them with its history.
	run("messages", chromedp.Navigate(admin+"/admin/messages"), chromedp.WaitVisible(chromedp.CSS("table")))
	// The passed message was not opened, so it has no file names.
	if list := text("table"); !strings.Contains(list, "見積書_最終.pdf") || !strings.Contains(list, "議事録\t\t配送済み") {
		t.Fatalf("messages page: %q", list)
	}
	shot("03-messages")
	if _, err := chromedp.Run(ctx, chromedp.WaitEvent(page.LoadEventFired, nil, chromedp.Click(chromedp.Search(`//a[text()="見積"]`)))); err != nil {
		t.Fatalf("open a message: %v", err)
	}
	if page := text("main"); !strings.Contains(page, "パスワード送信待ち") || !strings.Contains(page, "rule partner.example: encrypt") {
		t.Fatalf("message page: %q", page)
	}
	msgShot := shot("04-message")
	if os.Getenv("ZIPGATE_DOCS_SCREENSHOT") == "1" {
		b, _ := os.ReadFile(msgShot)
		if err := os.WriteFile("../../docs/admin-message.png", b, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// The audit: search for the file name, download the CSV.
	run("audit", chromedp.Navigate(admin+"/admin/audit"), chromedp.WaitVisible(chromedp.CSS("input[name=q]")),
		chromedp.SendKeys(chromedp.CSS("input[name=q]"), "見積書_最終"))
	submit("audit search", "form.filters button.primary")
	if rows := text("tbody"); !strings.Contains(rows, "見積書_最終.pdf") || strings.Contains(rows, "議事録_2026.pdf") {
		t.Fatalf("audit for the file: %q", rows)
	}
	shot("05-audit")
	progress := chromedp.Events(ctx, cdpbrowser.DownloadProgress)
	run("download the CSV",
		chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			_, err := chromedp.Call(ctx, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
				Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: downloads, EventsEnabled: ptrTrue(),
			})
			return err
		}),
		chromedp.Click(chromedp.Search(`//a[contains(@href, "format=csv")]`)))
	var guid string
	for ev, err := range progress {
		if err != nil {
			t.Fatalf("the CSV download: %v", err)
		}
		if ev.State == cdpbrowser.DownloadProgressStateCompleted {
			guid = ev.GUID
			break
		}
	}
	csvData, err := os.ReadFile(filepath.Join(downloads, guid))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(csvData, []byte("\ufefftime,message,event,")) || !bytes.Contains(csvData, []byte("見積書_最終.pdf")) ||
		bytes.Contains(csvData, []byte("議事録_2026.pdf")) {
		t.Fatalf("downloaded CSV:\n%s", csvData)
	}

	// English, by the switch.
	submit("switch to English", "header .me a")
	if h1 := text("h1"); h1 != "Audit" {
		t.Fatalf("after the switch: %q", h1)
	}

	// As the sender: the notice's link, and Cancel.
	if _, err := s.sched.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	link := senderLink(t, s)
	run("sender page", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS("button.cancel")))
	shot("06-sender-page")
	submit("cancel", "button.cancel")
	if state := text(".state"); !strings.Contains(state, "取り消されました") {
		t.Fatalf("after cancel: %q", state)
	}
	shot("07-sender-canceled")
	msgs, _ := s.st.FindMessages(context.Background(), store.MessageQuery{File: "見積書_最終"})
	if len(msgs) != 1 || len(msgs[0].Jobs) != 1 || msgs[0].Jobs[0] != store.Canceled {
		t.Fatalf("after the sender's cancel: %+v", msgs)
	}
	evs, _ := s.st.Events(context.Background(), msgs[0].ID)
	if last := evs[len(evs)-1]; last.Event != "password_canceled" || last.Actor != "taro@example.co.jp" || last.Via != "page" {
		t.Errorf("the sender's cancel in the history: %+v", last)
	}
}

func ptrTrue() *bool { v := true; return &v }

var senderLinkRe = regexp.MustCompile(`http://127\.0\.0\.1:[0-9]+/s/[A-Za-z0-9_-]{40,}`)

// senderLink finds the link in the sender notice the next hop got.
func senderLink(t *testing.T, s *stack) string {
	t.Helper()
	for _, m := range s.hop.Messages() {
		if len(m.Rcpts) != 1 || m.Rcpts[0] != "taro@example.co.jp" {
			continue
		}
		e, err := message.Read(bytes.NewReader(m.Data))
		if err != nil && !message.IsUnknownCharset(err) {
			continue
		}
		var found string
		e.Walk(func(_ []int, p *message.Entity, _ error) error {
			if p.MultipartReader() != nil {
				return nil
			}
			b, _ := io.ReadAll(p.Body)
			if l := senderLinkRe.Find(b); l != nil {
				found = string(l)
			}
			return nil
		})
		if found != "" {
			return found
		}
	}
	t.Fatal("no sender notice with a link")
	return ""
}
