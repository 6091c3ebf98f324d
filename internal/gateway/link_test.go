package gateway_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/zipgate/zipgate/internal/config"
	"github.com/zipgate/zipgate/internal/gateway"
	"github.com/zipgate/zipgate/internal/links"
	"github.com/zipgate/zipgate/internal/mailtest"
	"github.com/zipgate/zipgate/internal/notice"
	"github.com/zipgate/zipgate/internal/policy"
	"github.com/zipgate/zipgate/internal/relay"
	"github.com/zipgate/zipgate/internal/store"
	"github.com/zipgate/zipgate/internal/web"
)

// linkRig is the harness with download links: their files, their
// scheduler, and the web listener serving the recipients' and the
// sender's pages on loopback.
type linkRig struct {
	*harness
	files *links.Files
	dir   string // data_dir/links
	sched *links.Scheduler
	web   *web.Server
	srv   *httptest.Server
	// ahead moves the clocks of the pages and the links scheduler.
	ahead time.Duration
}

func startLinks(t *testing.T, mutate func(*config.Config)) *linkRig {
	t.Helper()
	h := start(t, mutate)
	r := &linkRig{harness: h, dir: filepath.Join(h.cfg.DataDir, "links")}
	d, err := links.NewDir(r.dir)
	if err != nil {
		t.Fatal(err)
	}
	r.files = &links.Files{Blobs: d}
	log := slog.New(slog.NewJSONHandler(io.MultiWriter(tlog{t}, h.logs), nil))
	tmpl, err := notice.Load(notice.Options{})
	if err != nil {
		t.Fatal(err)
	}
	next := &relay.Client{Addr: h.cfg.Relay.NextHop, HeloName: "zipgate.test", Timeout: 10 * time.Second}
	r.sched = links.NewScheduler(h.store, r.files, next, tmpl, log)
	r.sched.Hostname = "zipgate.test"
	r.sched.Now = func() time.Time { return time.Now().Add(r.ahead) }
	key := make([]byte, 32)
	rand.Read(key)
	r.web = web.New(h.store, func() {}, key, log)
	r.web.Links = &web.LinkPages{Files: r.files, Codes: r.sched, Wake: func() {}}
	r.web.Now = func() time.Time { return time.Now().Add(r.ahead) }
	r.srv = httptest.NewServer(r.web.Handler())
	t.Cleanup(r.srv.Close)
	h.gw.Linking = gateway.Linking{Files: r.files, BaseURL: r.srv.URL}
	return r
}

// runLinks runs the links scheduler once, as its loop would.
func (r *linkRig) runLinks(t *testing.T) {
	t.Helper()
	if _, err := r.sched.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// runLinksAfterGrace runs the links scheduler once the files of a link
// ended now may go (links.FilesGrace later).
func (r *linkRig) runLinksAfterGrace(t *testing.T) {
	t.Helper()
	r.runLinks(t)
	r.ahead += links.FilesGrace
	r.runLinks(t)
}

// browser is a recipient's browser: cookies kept, redirects shown.
type browser struct {
	t *testing.T
	c *http.Client
}

func newBrowser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

func (b *browser) get(u string) (*http.Response, []byte) {
	b.t.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	req.Header.Set("User-Agent", "linktest/1.0")
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	return resp, body
}

var csrfRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// post sends a form of the page at page to its action.
func (b *browser) post(page, action string, form url.Values) (*http.Response, []byte) {
	b.t.Helper()
	_, body := b.get(page)
	m := csrfRe.FindSubmatch(body)
	if m == nil {
		b.t.Fatalf("no form on %s:\n%s", page, body)
	}
	form.Set("csrf", string(m[1]))
	resp, err := b.c.PostForm(page+"/"+action, form)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp, out
}

// Two attachments, one with a Japanese name (RFC 2231).
var (
	pdfBytes  = bytes.Repeat([]byte("%PDF-1.4 見積 "), 20000) // 300 KB, several chunks
	noteBytes = []byte("議事録\r\n第1回\r\n")
	pdfName   = "見積書 2026年11月.pdf"
)

func linkMail() []byte {
	b64 := func(p []byte) string {
		s := base64.StdEncoding.EncodeToString(p)
		var out strings.Builder
		for len(s) > 76 {
			out.WriteString(s[:76] + "\r\n")
			s = s[76:]
		}
		return out.String() + s + "\r\n"
	}
	return []byte("From: Taro <taro@example.co.jp>\r\nTo: bob@partner.example\r\nSubject: =?UTF-8?B?" +
		base64.StdEncoding.EncodeToString([]byte("見積書の送付")) + "?=\r\nMessage-ID: <link-1@example.co.jp>\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" +
		"お世話になっております。\r\n--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename*=UTF-8''" +
		url.PathEscape(pdfName) + "\r\nContent-Transfer-Encoding: base64\r\n\r\n" + b64(pdfBytes) +
		"--b\r\nContent-Type: text/plain; charset=utf-8; name=notes.txt\r\nContent-Disposition: attachment; filename=notes.txt\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\n" + b64(noteBytes) + "--b--\r\n")
}

var dlLinkRe = regexp.MustCompile(`http://127\.0\.0\.1:\d+/d/[A-Za-z0-9_-]{43}`)

// sendLinked sends the mail to bob@partner.example and returns the
// linked copy the next hop got and the link in it.
func (r *linkRig) sendLinked(t *testing.T, p policy.Policy) (mailtest.Received, string) {
	t.Helper()
	p.Domain, p.Action = "partner.example", policy.Link
	setPolicy(t, r.harness, p)
	if se := send(t, r.addr, "taro@example.co.jp", []string{"bob@partner.example"}, linkMail()); se != nil {
		t.Fatalf("got %d %s", se.Code, se.Message)
	}
	got := byKind(r.hop.Messages())["link"]
	if len(got) != 1 {
		t.Fatalf("next hop got %d linked copies: %v", len(got), byKind(r.hop.Messages()))
	}
	var link string
	for _, e := range leaves(t, got[0].Data) {
		if m := dlLinkRe.Find(e.body); m != nil {
			link = string(m)
		}
	}
	if link == "" {
		t.Fatalf("no link in the delivered message:\n%s", got[0].Data)
	}
	return got[0], link
}

// linkID is the id of the only link of the rig's store.
func (r *linkRig) only(t *testing.T) *store.Link {
	t.Helper()
	list, err := r.store.ListLinks(context.Background(), 10)
	if err != nil || len(list) != 1 {
		t.Fatalf("links: %d, %v", len(list), err)
	}
	return list[0]
}

// noticeSaying returns the text of the notice that says what.
func noticeSaying(t *testing.T, msgs []mailtest.Received, what string) string {
	t.Helper()
	for _, m := range msgs {
		for _, e := range leaves(t, m.Data) {
			if strings.Contains(string(e.body), what) {
				return string(e.body)
			}
		}
	}
	return ""
}

func filesOnDisk(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return nil
	})
	return n
}

func TestDownloadLinkFromMailToFileAndTakenBack(t *testing.T) {
	r := startLinks(t, localDomains)
	msg, link := r.sendLinked(t, policy.Policy{})

	// What left holds no byte of the files, and says where they are.
	raw := msg.Data
	for _, leak := range [][]byte{[]byte("%PDF-1.4"), []byte(base64.StdEncoding.EncodeToString(pdfBytes[:300])),
		[]byte(base64.StdEncoding.EncodeToString(noteBytes))} {
		if bytes.Contains(raw, leak) {
			t.Fatalf("attachment bytes in the delivered message")
		}
	}
	var text string
	for _, e := range leaves(t, raw) {
		if mt, _, _ := e.header.ContentType(); mt != "text/plain" {
			t.Errorf("a %s part left with the message", mt)
		}
		text += string(e.body)
	}
	for _, want := range []string{"お世話になっております。", pdfName, "notes.txt", "パスワードは別のメール"} {
		if !strings.Contains(text, want) {
			t.Errorf("%q missing from the delivered text:\n%s", want, text)
		}
	}
	l := r.only(t)
	if l.State != store.LinkActive || filesOnDisk(t, r.dir) != 2 {
		t.Fatalf("link %s with %d files on disk", l.State, filesOnDisk(t, r.dir))
	}
	for _, name := range []string{"0", "1"} {
		b, _ := os.ReadFile(filepath.Join(r.dir, l.ID, name))
		if bytes.Contains(b, []byte("%PDF")) || bytes.Contains(b, noteBytes[:9]) {
			t.Fatalf("file %s is stored in the clear", name)
		}
	}

	// The password mail, as for a zip.
	r.release(t)
	kinds := byKind(r.hop.Messages())
	if len(kinds["password"]) != 1 {
		t.Fatalf("password mails: %d", len(kinds["password"]))
	}
	pwMail := kinds["password"][0]
	pw := passwordOf(t, pwMail.Data)
	if rcptsOf(pwMail) != "bob@partner.example" || dlLinkRe.Match(pwMail.Data) {
		t.Fatalf("the password mail went to %s, or carries the link", rcptsOf(pwMail))
	}
	if !strings.Contains(string(leaves(t, pwMail.Data)[0].body), "ダウンロードページのパスワード") {
		t.Errorf("the password mail does not say it opens the download page")
	}

	// The page: who, what, until when; no file without the password.
	b := newBrowser(t)
	resp, page := b.get(link)
	if resp.StatusCode != 200 {
		t.Fatalf("page: %d", resp.StatusCode)
	}
	for _, want := range []string{"Taro &lt;taro@example.co.jp&gt;", "見積書の送付", pdfName, "notes.txt", "312.5 KB", `type="password"`} {
		if !strings.Contains(string(page), want) {
			t.Errorf("%q missing from the page", want)
		}
	}
	if resp, _ := b.get(link + "/f/0"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("a file without the password: %d", resp.StatusCode)
	}

	// A wrong password is refused and counted.
	resp, body := b.post(link, "open", url.Values{"password": {pw + "x"}})
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "Wrong password") {
		t.Fatalf("wrong password: %d", resp.StatusCode)
	}
	if got, _ := r.store.GetLink(context.Background(), l.ID); got.Failures != 1 {
		t.Fatalf("failures %d", got.Failures)
	}
	resp, _ = b.post(link, "open", url.Values{"password": {pw}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("right password: %d", resp.StatusCode)
	}

	// Each file, as a download, byte for byte.
	resp, got := b.get(link + "/f/0")
	if resp.StatusCode != 200 || !bytes.Equal(got, pdfBytes) {
		t.Fatalf("file 0: %d, %d bytes", resp.StatusCode, len(got))
	}
	cd := resp.Header.Get("Content-Disposition")
	if _, params, err := mime.ParseMediaType(cd); err != nil || params["filename"] != pdfName || !strings.HasPrefix(cd, "attachment;") {
		t.Errorf("Content-Disposition %q: %v %v", cd, params, err)
	}
	if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("Content-Type") != "application/octet-stream" ||
		!strings.Contains(resp.Header.Get("Content-Security-Policy"), "sandbox") {
		t.Errorf("headers %v", resp.Header)
	}
	if _, got = b.get(link + "/f/1"); !bytes.Equal(got, noteBytes) {
		t.Fatalf("file 1: %q", got)
	}

	// All as one zip, AES-256 with the same password: 7-Zip opens it.
	resp, zipData := b.get(link + "/all")
	if resp.StatusCode != 200 {
		t.Fatalf("zip: %d", resp.StatusCode)
	}
	names, files := unzip(t, zipData, pw)
	if len(names) != 2 || !bytes.Equal(files[pdfName], pdfBytes) || !bytes.Equal(files["notes.txt"], noteBytes) {
		t.Fatalf("zip holds %q", names)
	}
	checkWithTools(t, zipData, pw, map[string][]byte{pdfName: pdfBytes, "notes.txt": noteBytes})

	// The first download is told to the sender.
	r.runLinks(t)
	told := byKind(r.hop.Messages())["notice"]
	first := noticeSaying(t, told, "downloaded for the first time")
	if first == "" {
		t.Fatalf("no first-download notice to the sender")
	} else if !strings.Contains(first, "127.0.0.1") || !strings.Contains(first, pdfName) {
		t.Errorf("first-download notice:\n%s", first)
	}

	// Take back, from the sender's page (its link is in their notice).
	senderPage := ""
	if s := regexp.MustCompile(`https://zipgate\.example\.jp/s/[A-Za-z0-9_-]+`).FindString(
		noticeSaying(t, told, "Take back")); s != "" {
		senderPage = strings.Replace(s, "https://zipgate.example.jp", r.srv.URL, 1)
	}
	if senderPage == "" {
		t.Fatal("no sender page link in the notices")
	}
	sb := newBrowser(t)
	if _, sp := sb.get(senderPage); !strings.Contains(string(sp), "Take back") || strings.Contains(string(sp), ">送信を取り消す / Cancel<") {
		t.Fatalf("sender page:\n%s", sp)
	}
	if resp, _ := sb.post(senderPage, "revoke", url.Values{}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("take back: %d", resp.StatusCode)
	}
	resp, page = b.get(link)
	if resp.StatusCode != http.StatusGone || !strings.Contains(string(page), "withdrew the files") ||
		!strings.Contains(string(page), "送信者がファイルを取り消しました") || strings.Contains(string(page), pdfName) {
		t.Fatalf("after take back: %d\n%s", resp.StatusCode, page)
	}
	if resp, _ := b.get(link + "/f/0"); resp.StatusCode != http.StatusGone {
		t.Fatalf("a file after take back: %d", resp.StatusCode)
	}
	r.runLinksAfterGrace(t)
	if n := filesOnDisk(t, r.dir); n != 0 {
		t.Fatalf("%d files left on disk after take back", n)
	}

	// The history has it all.
	ev, _ := r.store.Events(context.Background(), l.Message)
	var seen []string
	for _, e := range ev {
		seen = append(seen, e.Event)
	}
	all := strings.Join(seen, ",")
	for _, want := range []string{"link_view", "link_password_wrong", "link_password_ok", "link_download", "link_revoked"} {
		if !strings.Contains(all, want) {
			t.Errorf("%s missing from the history %s", want, all)
		}
	}
	downloads := 0
	for _, e := range ev {
		if e.Event == "link_download" {
			downloads++
			if e.Actor != "127.0.0.1" || !strings.Contains(e.Detail, "linktest/1.0") {
				t.Errorf("download event %+v", e)
			}
		}
	}
	if downloads != 3 {
		t.Errorf("%d downloads recorded, want 3", downloads)
	}
}

func TestDownloadLinkEnds(t *testing.T) {
	open := func(t *testing.T, r *linkRig, link string) *browser {
		t.Helper()
		r.release(t)
		pw := passwordOf(t, byKind(r.hop.Messages())["password"][0].Data)
		b := newBrowser(t)
		if resp, _ := b.post(link, "open", url.Values{"password": {pw}}); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("open: %d", resp.StatusCode)
		}
		return b
	}
	gone := func(t *testing.T, r *linkRig, b *browser, link, why string) {
		t.Helper()
		resp, page := b.get(link)
		if resp.StatusCode != http.StatusGone || !strings.Contains(string(page), why) {
			t.Fatalf("want 410 saying %q; got %d\n%s", why, resp.StatusCode, page)
		}
		if resp, _ := b.get(link + "/all"); resp.StatusCode != http.StatusGone {
			t.Fatalf("zip after the end: %d", resp.StatusCode)
		}
		r.runLinksAfterGrace(t)
		if n := filesOnDisk(t, r.dir); n != 0 {
			t.Fatalf("%d files left on disk after the end", n)
		}
	}

	t.Run("download limit", func(t *testing.T) {
		r := startLinks(t, localDomains)
		one := 1
		_, link := r.sendLinked(t, policy.Policy{MaxDownloads: &one})
		b := open(t, r, link)
		if resp, got := b.get(link + "/f/1"); resp.StatusCode != 200 || !bytes.Equal(got, noteBytes) {
			t.Fatalf("the one download: %d", resp.StatusCode)
		}
		gone(t, r, b, link, "downloaded as many times as allowed")
		if l := r.only(t); l.State != store.LinkUsedUp {
			t.Fatalf("state %s", l.State)
		}
	})

	t.Run("expiry", func(t *testing.T) {
		r := startLinks(t, localDomains)
		_, link := r.sendLinked(t, policy.Policy{LinkExpiry: dur(time.Hour)})
		b := open(t, r, link)
		r.ahead = time.Hour + time.Minute
		gone(t, r, b, link, "time to download is over")
		if l := r.only(t); l.State != store.LinkExpired {
			t.Fatalf("state %s", l.State)
		}
	})

	t.Run("zipgate jobs revoke", func(t *testing.T) {
		r := startLinks(t, localDomains)
		_, link := r.sendLinked(t, policy.Policy{})
		b := open(t, r, link)
		l := r.only(t)
		// As the CLI does it, from another process's handle.
		st, _, err := store.Open(context.Background(), r.cfg.DBFile(), r.cfg.KeyFile())
		if err != nil {
			t.Fatal(err)
		}
		err = st.EndLink(context.Background(), l.ID, store.LinkRevoked, "admin",
			store.Event{Message: l.Message, At: time.Now(), Event: links.EventRevoked, Actor: "admin", Via: "cli"})
		st.Close()
		if err != nil {
			t.Fatal(err)
		}
		gone(t, r, b, link, "withdrew the files")
	})

	t.Run("lock after ten wrong passwords", func(t *testing.T) {
		r := startLinks(t, localDomains)
		_, link := r.sendLinked(t, policy.Policy{})
		r.release(t)
		b := newBrowser(t)
		for i := 1; i <= 10; i++ {
			if i == 6 {
				// The sixth within ten minutes is not even checked.
				resp, body := b.post(link, "open", url.Values{"password": {"wrong"}})
				if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(body), "Too many wrong tries") {
					t.Fatalf("sixth try: %d", resp.StatusCode)
				}
				if l := r.only(t); l.Failures != 5 {
					t.Fatalf("a limited try was counted: %d", l.Failures)
				}
				r.ahead += 11 * time.Minute
			}
			resp, _ := b.post(link, "open", url.Values{"password": {fmt.Sprintf("wrong%d", i)}})
			want := http.StatusForbidden
			if i == 10 {
				want = http.StatusGone
			}
			if resp.StatusCode != want {
				t.Fatalf("try %d: %d, want %d", i, resp.StatusCode, want)
			}
		}
		gone(t, r, b, link, "too many wrong passwords or codes")
		// The sender is told.
		if lock := noticeSaying(t, byKind(r.hop.Messages())["notice"], "was locked"); lock == "" {
			t.Fatalf("no lock notice to the sender")
		}
	})
}

var codeRe = regexp.MustCompile(`Code: (\d{6})`)

func TestDownloadLinkWithOneTimeCode(t *testing.T) {
	r := startLinks(t, localDomains)
	_, link := r.sendLinked(t, policy.Policy{LinkAuth: policy.AuthOTP})
	r.release(t)
	kinds := byKind(r.hop.Messages())
	if len(kinds["password"]) != 0 {
		t.Fatalf("a password mail went for a link opened by codes")
	}
	b := newBrowser(t)
	_, page := b.get(link)
	if !strings.Contains(string(page), "Send me a code") || !strings.Contains(string(page), "b***@partner.example") ||
		strings.Contains(string(page), `type="password"`) {
		t.Fatalf("page:\n%s", page)
	}
	resp, body := b.post(link, "code", url.Values{})
	if resp.StatusCode != 200 || !strings.Contains(string(body), "code is on its way") {
		t.Fatalf("send me a code: %d\n%s", resp.StatusCode, body)
	}
	codes := byKind(r.hop.Messages())["code"]
	if len(codes) != 1 || rcptsOf(codes[0]) != "bob@partner.example" {
		t.Fatalf("code mails: %d", len(codes))
	}
	m := codeRe.FindSubmatch(leaves(t, codes[0].Data)[0].body)
	if m == nil {
		t.Fatalf("no code in:\n%s", codes[0].Data)
	}
	code := string(m[1])
	// Asking again at once sends nothing.
	if resp, _ := b.post(link, "code", url.Values{}); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("second code at once: %d", resp.StatusCode)
	}
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	if resp, body := b.post(link, "open", url.Values{"code": {wrong}}); resp.StatusCode != http.StatusForbidden ||
		!strings.Contains(string(body), "Wrong code") {
		t.Fatalf("wrong code: %d", resp.StatusCode)
	}
	if resp, _ := b.post(link, "open", url.Values{"code": {code}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("right code: %d", resp.StatusCode)
	}
	if resp, got := b.get(link + "/f/0"); resp.StatusCode != 200 || !bytes.Equal(got, pdfBytes) {
		t.Fatalf("download after the code: %d", resp.StatusCode)
	}
	// The page shows the zip's password, which nobody mailed.
	_, page = b.get(link)
	pm := regexp.MustCompile(`<code>([^<]+)</code>`).FindSubmatch(page)
	if pm == nil {
		t.Fatalf("no zip password on the opened page:\n%s", page)
	}
	_, zipData := b.get(link + "/all")
	if names, _ := unzip(t, zipData, string(pm[1])); len(names) != 2 {
		t.Fatalf("zip: %q", names)
	}
	// A used code does not open it again.
	nb := newBrowser(t)
	if resp, _ := nb.post(link, "open", url.Values{"code": {code}}); resp.StatusCode == http.StatusSeeOther {
		t.Fatalf("a used code opened the page again")
	}
}

// The files stay encrypted and the mail goes as for a zip when the next
// hop defers: the retry carries the same link, and nothing is left of a
// copy refused for good.
func TestDownloadLinkAcrossRetries(t *testing.T) {
	r := startLinks(t, localDomains)
	setPolicy(t, r.harness, policy.Policy{Domain: "partner.example", Action: policy.Link})
	r.hop.SetFault(mailtest.Fault{Drop: true}) // the try ends without knowing
	if se := send(t, r.addr, "taro@example.co.jp", []string{"bob@partner.example"}, linkMail()); se == nil || se.Code != 451 {
		t.Fatalf("first try: %v", se)
	}
	first := r.only(t)
	if first.State != store.LinkPending {
		t.Fatalf("state after an uncertain try: %s", first.State)
	}
	r.hop.SetFault(mailtest.Fault{})
	_, link := r.sendLinkedAgain(t)
	if l := r.only(t); l.ID != first.ID || l.State != store.LinkActive ||
		!strings.HasSuffix(link, "/d/"+first.Token) {
		t.Fatalf("the retry made another link: %s %s", l.ID, l.State)
	}
	if n := filesOnDisk(t, r.dir); n != 2 {
		t.Fatalf("%d files on disk", n)
	}

	// Refused for good: no link, no files.
	r2 := startLinks(t, localDomains)
	setPolicy(t, r2.harness, policy.Policy{Domain: "partner.example", Action: policy.Link})
	r2.hop.SetFault(mailtest.Fault{Data: &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "policy says no"}})
	if se := send(t, r2.addr, "taro@example.co.jp", []string{"bob@partner.example"}, linkMail()); se == nil || se.Code != 550 {
		t.Fatalf("refused: %v", se)
	}
	if list, _ := r2.store.ListLinks(context.Background(), 10); len(list) != 0 {
		t.Fatalf("a link was kept for a copy refused for good")
	}
	if n := filesOnDisk(t, r2.dir); n != 0 {
		t.Fatalf("%d files left for a copy refused for good", n)
	}
}

// An admin takes back a link whose copy is pending (the first try ended
// without knowing): Postfix's retry does not bring it back with a fresh
// link.
func TestRetryAfterTakeBackDoesNotSendTheLink(t *testing.T) {
	r := startLinks(t, localDomains)
	setPolicy(t, r.harness, policy.Policy{Domain: "partner.example", Action: policy.Link})
	r.hop.SetFault(mailtest.Fault{Drop: true})
	if se := send(t, r.addr, "taro@example.co.jp", []string{"bob@partner.example"}, linkMail()); se == nil || se.Code != 451 {
		t.Fatalf("first try: %v", se)
	}
	first := r.only(t)
	if err := r.store.EndLink(context.Background(), first.ID, store.LinkRevoked, "admin",
		store.Event{Message: first.Message, At: time.Now(), Event: links.EventRevoked, Actor: "admin", Via: "cli", Detail: first.ID}); err != nil {
		t.Fatal(err)
	}
	r.hop.SetFault(mailtest.Fault{})
	before := len(r.hop.Messages())
	if se := send(t, r.addr, "taro@example.co.jp", []string{"bob@partner.example"}, linkMail()); se != nil {
		t.Fatalf("retry: %v", se)
	}
	if n := len(r.hop.Messages()) - before; n != 0 {
		t.Fatalf("the retry sent %d mails for a link taken back", n)
	}
	if l := r.only(t); l.ID != first.ID || l.State != store.LinkRevoked {
		t.Fatalf("links after the retry: %s %s", l.ID, l.State)
	}
	r.release(t)
	if pws := byKind(r.hop.Messages())["password"]; len(pws) != 0 {
		t.Fatalf("a password went for a link taken back")
	}
	r.runLinksAfterGrace(t)
	if n := filesOnDisk(t, r.dir); n != 0 {
		t.Fatalf("%d files left of a link taken back", n)
	}
}

func (r *linkRig) sendLinkedAgain(t *testing.T) (mailtest.Received, string) {
	t.Helper()
	if se := send(t, r.addr, "taro@example.co.jp", []string{"bob@partner.example"}, linkMail()); se != nil {
		t.Fatalf("retry: %d %s", se.Code, se.Message)
	}
	got := byKind(r.hop.Messages())["link"]
	if len(got) != 1 {
		t.Fatalf("linked copies: %d", len(got))
	}
	var link string
	for _, e := range leaves(t, got[0].Data) {
		if m := dlLinkRe.Find(e.body); m != nil {
			link = string(m)
		}
	}
	return got[0], link
}

// A link opened by codes has no password: the sender page shows no
// Release now, and a POST of it (an old tab, a crafted form) mails
// nothing and says why.
func TestReleaseOfALinkOpenedByCodesSendsNoPassword(t *testing.T) {
	r := startLinks(t, localDomains)
	r.sendLinked(t, policy.Policy{LinkAuth: policy.AuthOTP})
	r.release(t) // the sender's notice
	s := regexp.MustCompile(`https://zipgate\.example\.jp/s/[A-Za-z0-9_-]+`).FindString(
		noticeSaying(t, byKind(r.hop.Messages())["notice"], "Take back"))
	if s == "" {
		t.Fatal("no sender page in the notice")
	}
	page := strings.Replace(s, "https://zipgate.example.jp", r.srv.URL, 1)
	b := newBrowser(t)
	if _, body := b.get(page); strings.Contains(string(body), `/release"`) {
		t.Errorf("the sender page offers Release now for a link opened by codes")
	}
	resp, body := b.post(page, "release", url.Values{})
	r.release(t)
	if pw := byKind(r.hop.Messages())["password"]; len(pw) > 0 {
		t.Fatalf("POST release mailed a password to %s", rcptsOf(pw[0]))
	}
	if resp.StatusCode != http.StatusConflict || !strings.Contains(string(body), "no password to send") {
		t.Errorf("POST release answered %d:\n%s", resp.StatusCode, body)
	}
	if l := r.only(t); l.State != store.LinkActive {
		t.Errorf("the link is %s after a refused release", l.State)
	}
}

// A stop between counting a link's last allowed download and ending it
// leaves it active: the first pass of the links scheduler after the
// start ends it and deletes its files, instead of keeping them until the
// expiry.
func TestUsedUpLinkEndedAfterARestart(t *testing.T) {
	r := startLinks(t, localDomains)
	one := 1
	r.sendLinked(t, policy.Policy{MaxDownloads: &one})
	l := r.only(t)
	// What web does for the last download, without the end that follows.
	if _, err := r.store.LinkDownload(context.Background(), l.ID, time.Now(),
		store.Event{Message: l.Message, At: time.Now(), Event: links.EventDownload, Actor: "192.0.2.1", Via: "link", Detail: l.ID}); err != nil {
		t.Fatal(err)
	}
	r.runLinks(t) // the first pass of a started scheduler
	r.runLinksAfterGrace(t)
	if l = r.only(t); l.State != store.LinkUsedUp || len(l.FileKey) != 0 {
		t.Fatalf("after a restart the used-up link is %s (key kept: %v)", l.State, len(l.FileKey) != 0)
	}
	if n := filesOnDisk(t, r.dir); n != 0 {
		t.Fatalf("%d files of a used-up link stay", n)
	}
}

// On a link opened by codes with several recipients, asking a code for
// an address the copy did not go to gets the very answer a recipient
// gets (the code form, then the same wait): nobody learns from the page
// who else got the mail, a Bcc included.
func TestCodeFormDoesNotTellRecipients(t *testing.T) {
	r := startLinks(t, localDomains)
	setPolicy(t, r.harness, policy.Policy{Domain: "partner.example", Action: policy.Link, LinkAuth: policy.AuthOTP})
	// carol is only in the envelope: a Bcc.
	if se := send(t, r.addr, "taro@example.co.jp", []string{"bob@partner.example", "carol@partner.example"}, linkMail()); se != nil {
		t.Fatalf("%v", se)
	}
	link := linkIn(t, byKind(r.hop.Messages())["link"][0])
	r.release(t)
	probe := func(addr string) (int, string) {
		b := newBrowser(t)
		resp, body := b.post(link, "code", url.Values{"address": {addr}})
		return resp.StatusCode, string(body)
	}
	s1, body1 := probe("nobody@partner.example")
	w1, wait1 := probe("someone@partner.example")
	r.ahead += 2 * time.Minute
	codes := len(byKind(r.hop.Messages())["code"])
	s2, body2 := probe("carol@partner.example")
	w2, wait2 := probe("someone@partner.example")
	if n := len(byKind(r.hop.Messages())["code"]); n != codes+1 {
		t.Fatalf("carol's code: %d code mails, want %d", n, codes+1)
	}
	if s1 != s2 || body1 != body2 {
		t.Errorf("a non-recipient gets %d, a Bcc recipient %d; the pages differ: %v", s1, s2, body1 != body2)
	}
	if !strings.Contains(body2, `name="code"`) {
		t.Errorf("no code form after a code was sent:\n%s", body2)
	}
	// And the page itself, opened afresh after each ask.
	r.ahead += 2 * time.Minute
	_, page2 := newBrowser(t).get(link)
	r.ahead += 20 * time.Minute
	probe("nobody@partner.example")
	_, page1 := newBrowser(t).get(link)
	if string(page1) != string(page2) {
		t.Errorf("the page after an ask for a non-recipient differs from the page after a recipient's")
	}
	if w1 != w2 || wait1 != wait2 {
		t.Errorf("the next ask gets %d after a non-recipient, %d after a recipient:\n%s\n----\n%s", w1, w2, wait1, wait2)
	}
}

func linkIn(t *testing.T, m mailtest.Received) string {
	t.Helper()
	for _, e := range leaves(t, m.Data) {
		if l := dlLinkRe.Find(e.body); l != nil {
			return string(l)
		}
	}
	t.Fatalf("no link in:\n%s", m.Data)
	return ""
}

// Page views are history, not a key: a reload loop records one view per
// client in the window, and a flood from many addresses a bounded number.
func TestPageViewsRecordedWithinBounds(t *testing.T) {
	r := startLinks(t, localDomains)
	_, link := r.sendLinked(t, policy.Policy{})
	r.release(t)
	l := r.only(t)
	for range 50 {
		resp, err := http.Get(link)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("view: %d", resp.StatusCode)
		}
	}
	views := func() int {
		ev, _ := r.store.Events(context.Background(), l.Message)
		n := 0
		for _, e := range ev {
			if e.Event == links.EventView {
				n++
			}
		}
		return n
	}
	if n := views(); n != 1 {
		t.Errorf("50 views from one browser stored %d events, want 1", n)
	}
	r.ahead += 11 * time.Minute
	resp, _ := http.Get(link)
	resp.Body.Close()
	if n := views(); n != 2 {
		t.Errorf("a view after the window stored %d in all, want 2", n)
	}
	// Many addresses behind the trusted proxy.
	r.web.Links.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	for i := range 100 {
		req, _ := http.NewRequest("GET", link, nil)
		req.Header.Set("X-Forwarded-For", fmt.Sprintf("198.51.100.%d", i+1))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	// The window holds the view after it and 19 more: 20 a link.
	if n := views(); n != 21 {
		t.Errorf("100 addresses in the window stored %d views in all, want 21 (20 in the window)", n)
	}
}
