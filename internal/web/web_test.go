package web

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zipgate/zipgate/internal/policy"
	"github.com/zipgate/zipgate/internal/release"
	"github.com/zipgate/zipgate/internal/store"
)

var jst = time.FixedZone("JST", 9*3600)

type fixture struct {
	st    *store.SQLite
	srv   *Server
	ts    *httptest.Server
	now   time.Time
	wakes atomic.Int32
	// holdWakes counts WakeHold calls (the hold scheduler).
	holdWakes atomic.Int32
	ctx       context.Context
}

type tlog struct{ t *testing.T }

func (w tlog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func setup(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	st, _, err := store.Open(ctx, filepath.Join(dir, "db"), filepath.Join(dir, "k"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &fixture{st: st, ctx: ctx, now: time.Date(2026, 11, 27, 10, 0, 0, 0, jst)}
	csrfKey := make([]byte, 32)
	rand.Read(csrfKey)
	f.srv = New(st, func() { f.wakes.Add(1) }, csrfKey, slog.New(slog.NewTextHandler(tlog{t}, nil)))
	f.srv.Now = func() time.Time { return f.now }
	f.srv.WakeHold = func() { f.holdWakes.Add(1) }
	f.srv.Location = jst
	f.ts = httptest.NewServer(f.srv.Handler())
	t.Cleanup(f.ts.Close)
	return f
}

// newJob stores a scheduled job due in 10 minutes and returns its id and
// sender page token.
func (f *fixture) newJob(t *testing.T, id string) (string, string) {
	t.Helper()
	j := &store.Job{ID: id, Sender: "taro@example.jp", Rcpts: []string{"hanako@example.com", "jiro@example.org"},
		HeaderFrom: "taro@example.jp", HeaderTo: "hanako@example.com", Subject: "見積書の送付 <第2版>",
		MessageID: "<" + id + "@example.jp>", ZipName: "attachments_20261127.zip",
		Files: []store.File{
			{Name: "見積書.pdf", Size: 123456, SHA256: "ab"},
			{Name: "仕様 & 条件.xlsx", Size: 2048, SHA256: "cd"},
		},
		Password: "S3cret-Pw-" + id, CreatedAt: f.now, DueAt: f.now.Add(10 * time.Minute)}
	if err := f.st.Create(f.ctx, j); err != nil {
		t.Fatal(err)
	}
	if err := f.st.Schedule(f.ctx, id); err != nil {
		t.Fatal(err)
	}
	token, hash, err := release.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	if err := f.st.SetToken(f.ctx, id, hash); err != nil {
		t.Fatal(err)
	}
	return id, token
}

func (f *fixture) job(t *testing.T, id string) *store.Job {
	t.Helper()
	j, err := f.st.Get(f.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

type resp struct {
	code   int
	header http.Header
	body   string
}

func (f *fixture) do(t *testing.T, method, path string, form url.Values) resp {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, f.ts.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp{res.StatusCode, res.Header, string(b)}
}

func (f *fixture) post(t *testing.T, token, action, csrf string) resp {
	t.Helper()
	form := url.Values{}
	if csrf != "" {
		form.Set("csrf", csrf)
	}
	return f.do(t, "POST", "/s/"+token+"/"+action, form)
}

func TestStatusPage(t *testing.T) {
	f := setup(t)
	id, token := f.newJob(t, "job1")
	r := f.do(t, "GET", "/s/"+token, nil)
	if r.code != 200 {
		t.Fatalf("status %d\n%s", r.code, r.body)
	}
	for _, want := range []string{
		"見積書の送付 &lt;第2版&gt;", // subject, escaped
		"hanako@example.com", "jiro@example.org",
		"attachments_20261127.zip",
		"見積書.pdf", "120.6 KB", "仕様 &amp; 条件.xlsx", "2.0 KB",
		"パスワードは 10:10 JST に送信されます", "The password will be sent at 10:10 JST",
		"あと約 10 分", "2026-11-27 10:10 JST",
		"送信を取り消す / Cancel", "今すぐ送る / Release now",
		`action="` + token + `/cancel"`, `action="` + token + `/release"`,
		`name="csrf" value="` + f.srv.csrf(token) + `"`,
		`<meta charset="utf-8">`,
	} {
		if !strings.Contains(r.body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(r.body, "S3cret-Pw-") {
		t.Error("the page shows the password")
	}
	if strings.Contains(r.body, "<script") || strings.Contains(r.body, "http://") || strings.Contains(r.body, "https://") {
		t.Error("the page loads or links something external, or has a script")
	}
	if got := f.job(t, id).State; got != store.Scheduled {
		t.Errorf("GET changed the job: %s", got)
	}
	if f.wakes.Load() != 0 {
		t.Error("GET woke the scheduler")
	}
}

func TestHeaders(t *testing.T) {
	f := setup(t)
	_, token := f.newJob(t, "job1")
	for _, path := range []string{"/s/" + token, "/nope", "/healthz"} {
		r := f.do(t, "GET", path, nil)
		for k, v := range map[string]string{
			"Cache-Control":           "no-store",
			"Referrer-Policy":         "no-referrer",
			"X-Frame-Options":         "DENY",
			"X-Content-Type-Options":  "nosniff",
			"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
		} {
			if got := r.header.Get(k); got != v {
				t.Errorf("%s: %s = %q, want %q", path, k, got, v)
			}
		}
	}
	r := f.do(t, "GET", "/s/"+token, nil)
	if ct := r.header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
}

func TestCancel(t *testing.T) {
	f := setup(t)
	id, token := f.newJob(t, "job1")
	f.now = f.now.Add(3 * time.Minute)
	r := f.post(t, token, "cancel", f.srv.csrf(token))
	if r.code != http.StatusSeeOther {
		t.Fatalf("status %d\n%s", r.code, r.body)
	}
	loc, _ := url.Parse(r.header.Get("Location"))
	base, _ := url.Parse(f.ts.URL + "/s/" + token + "/cancel")
	if got := base.ResolveReference(loc).Path; got != "/s/"+token {
		t.Errorf("redirect to %q (%q), want /s/%s", got, r.header.Get("Location"), token)
	}
	j := f.job(t, id)
	if j.State != store.Canceled || !j.FinishedAt.Equal(f.now) {
		t.Errorf("job %s finished %v, want canceled at %v", j.State, j.FinishedAt, f.now)
	}
	if j.Password != "" {
		t.Error("password kept after cancel")
	}
	if f.wakes.Load() != 1 {
		t.Errorf("wake called %d times, want 1", f.wakes.Load())
	}
	// The page now says so, and offers no buttons.
	r = f.do(t, "GET", "/s/"+token, nil)
	for _, want := range []string{"10:03 JST に取り消されました", "canceled at 10:03 JST"} {
		if !strings.Contains(r.body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(r.body, "<form") {
		t.Error("canceled page still has forms")
	}
	// Release after cancel: refused, clearly, nothing changed.
	r = f.post(t, token, "release", f.srv.csrf(token))
	if r.code != http.StatusConflict || !strings.Contains(r.body, "already canceled") ||
		!strings.Contains(r.body, "既に取り消されているため、送信できません") {
		t.Errorf("release after cancel: %d\n%s", r.code, r.body)
	}
	if j := f.job(t, id); j.State != store.Canceled {
		t.Errorf("job %s after release of a canceled job", j.State)
	}
	if f.wakes.Load() != 1 {
		t.Error("a refused action woke the scheduler")
	}
}

func TestReleaseNow(t *testing.T) {
	f := setup(t)
	id, token := f.newJob(t, "job1")
	f.now = f.now.Add(2*time.Minute + 345*time.Millisecond)
	r := f.post(t, token, "release", f.srv.csrf(token))
	if r.code != http.StatusSeeOther {
		t.Fatalf("status %d\n%s", r.code, r.body)
	}
	j := f.job(t, id)
	if j.State != store.Scheduled || j.DueAt.After(f.now) || f.now.Sub(j.DueAt) > time.Second {
		t.Errorf("job %s due %v, want scheduled and due at %v", j.State, j.DueAt, f.now)
	}
	if f.wakes.Load() != 1 {
		t.Errorf("wake called %d times, want 1", f.wakes.Load())
	}
	r = f.do(t, "GET", "/s/"+token, nil)
	if !strings.Contains(r.body, "まもなく送信されます") || !strings.Contains(r.body, "in a moment") {
		t.Errorf("page after release now:\n%s", r.body)
	}
}

func TestCSRF(t *testing.T) {
	f := setup(t)
	id, token := f.newJob(t, "job1")
	_, other := f.newJob(t, "job2")
	for name, csrf := range map[string]string{
		"missing":       "",
		"other job":     f.srv.csrf(other),
		"garbage":       "x",
		"the token":     token,
		"other key":     New(f.st, nil, make([]byte, 32), nil).csrf(token),
		"one char more": f.srv.csrf(token) + "A",
	} {
		for _, action := range []string{"cancel", "release"} {
			r := f.post(t, token, action, csrf)
			if r.code != http.StatusForbidden {
				t.Errorf("%s CSRF, %s: status %d, want 403", name, action, r.code)
			}
			if !strings.Contains(r.body, "nothing was done") {
				t.Errorf("%s CSRF, %s: body\n%s", name, action, r.body)
			}
		}
	}
	// The value only counts in the body, not in the query.
	r := f.do(t, "POST", "/s/"+token+"/cancel?csrf="+f.srv.csrf(token), url.Values{})
	if r.code != http.StatusForbidden {
		t.Errorf("CSRF in the query: status %d, want 403", r.code)
	}
	j := f.job(t, id)
	if j.State != store.Scheduled || !j.DueAt.Equal(f.now.Add(10*time.Minute)) {
		t.Errorf("job changed without a valid CSRF value: %s due %v", j.State, j.DueAt)
	}
	if f.wakes.Load() != 0 {
		t.Error("scheduler woken without a valid CSRF value")
	}
}

func TestCancelAfterRelease(t *testing.T) {
	f := setup(t)
	id, token := f.newJob(t, "job1")
	sent := f.now.Add(10 * time.Minute)
	if err := f.st.Claim(f.ctx, id, sent); err != nil {
		t.Fatal(err)
	}
	// While the password mail is on its way: refused, saying so (if the
	// try is deferred, the job can be canceled again).
	f.now = sent.Add(time.Second)
	r := f.post(t, token, "cancel", f.srv.csrf(token))
	if r.code != http.StatusConflict || !strings.Contains(r.body, "The password is being sent right now") {
		t.Errorf("cancel while sending: %d\n%s", r.code, r.body)
	}
	if err := f.st.MarkReleased(f.ctx, id, sent); err != nil {
		t.Fatal(err)
	}
	f.now = sent.Add(5 * time.Minute)
	r = f.post(t, token, "cancel", f.srv.csrf(token))
	if r.code != http.StatusConflict {
		t.Fatalf("status %d, want 409\n%s", r.code, r.body)
	}
	for _, want := range []string{
		"パスワードは既に送信されました。取り消せません。",
		"The password was already sent; it cannot be canceled.",
		"パスワードは 10:10 JST に送信されました", // the state as it is
	} {
		if !strings.Contains(r.body, want) {
			t.Errorf("409 page lacks %q\n%s", want, r.body)
		}
	}
	if strings.Contains(r.body, "<form") {
		t.Error("409 page offers forms for a released job")
	}
	j := f.job(t, id)
	if j.State != store.Released || !j.FinishedAt.Equal(sent) {
		t.Errorf("job %s finished %v after a refused cancel", j.State, j.FinishedAt)
	}
	if f.wakes.Load() != 0 {
		t.Error("a refused cancel woke the scheduler")
	}
}

func TestNotFound(t *testing.T) {
	f := setup(t)
	_, token := f.newJob(t, "job1")
	ref := f.do(t, "GET", "/nope", nil)
	if ref.code != 404 {
		t.Fatalf("GET /nope: %d", ref.code)
	}
	unknown, _, _ := release.NewToken()
	cases := map[string]resp{
		"unknown token":          f.do(t, "GET", "/s/"+unknown, nil),
		"malformed token":        f.do(t, "GET", "/s/not.a.token!", nil),
		"short token":            f.do(t, "GET", "/s/abc", nil),
		"long token":             f.do(t, "GET", "/s/"+strings.Repeat("A", 300), nil),
		"token with a slash":     f.do(t, "GET", "/s/"+token[:20]+"%2F"+token[20:], nil),
		"trailing slash":         f.do(t, "GET", "/s/"+token+"/", nil),
		"root":                   f.do(t, "GET", "/", nil),
		"unknown action":         f.do(t, "POST", "/s/"+token+"/delete", url.Values{}),
		"unknown token, cancel":  f.post(t, unknown, "cancel", f.srv.csrf(unknown)),
		"unknown token, release": f.post(t, unknown, "release", f.srv.csrf(unknown)),
		"malformed, cancel":      f.post(t, "x", "cancel", f.srv.csrf("x")),
	}
	for name, r := range cases {
		if r.code != 404 || r.body != ref.body || !sameHeaders(r.header, ref.header) {
			t.Errorf("%s: %d %v\n%s\nwant the page of GET /nope: %v", name, r.code, r.header, r.body, ref.header)
		}
	}
	if !strings.Contains(ref.body, "Page not found") {
		t.Errorf("404 page:\n%s", ref.body)
	}
}

// sameHeaders compares all headers but Date.
func sameHeaders(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if k == "Date" {
			continue
		}
		if strings.Join(v, "\n") != strings.Join(b[k], "\n") {
			return false
		}
	}
	return true
}

func TestPurged(t *testing.T) {
	f := setup(t)
	id, token := f.newJob(t, "job1")
	if err := f.st.Cancel(f.ctx, id, f.now); err != nil {
		t.Fatal(err)
	}
	if r := f.do(t, "GET", "/s/"+token, nil); r.code != 200 {
		t.Fatalf("canceled job: %d", r.code)
	}
	if n, err := f.st.Purge(f.ctx, f.now.Add(time.Hour)); err != nil || n != 1 {
		t.Fatalf("purge: %d, %v", n, err)
	}
	ref := f.do(t, "GET", "/nope", nil)
	for name, r := range map[string]resp{
		"page":   f.do(t, "GET", "/s/"+token, nil),
		"cancel": f.post(t, token, "cancel", f.srv.csrf(token)),
	} {
		if r.code != 404 || r.body != ref.body || !sameHeaders(r.header, ref.header) {
			t.Errorf("purged job, %s: %d\n%s", name, r.code, r.body)
		}
	}
}

func TestMethods(t *testing.T) {
	f := setup(t)
	_, token := f.newJob(t, "job1")
	for _, c := range []struct{ method, path string }{
		{"POST", "/healthz"},
		{"PUT", "/s/" + token},
		{"DELETE", "/s/" + token},
		{"GET", "/s/" + token + "/cancel"},
		{"GET", "/s/" + token + "/release"},
	} {
		if r := f.do(t, c.method, c.path, nil); r.code != http.StatusMethodNotAllowed {
			t.Errorf("%s %s: %d, want 405", c.method, c.path, r.code)
		}
	}
	if r := f.do(t, "HEAD", "/s/"+token, nil); r.code != 200 {
		t.Errorf("HEAD: %d", r.code)
	}
}

func TestBodyLimit(t *testing.T) {
	f := setup(t)
	id, token := f.newJob(t, "job1")
	form := url.Values{"csrf": {f.srv.csrf(token)}, "pad": {strings.Repeat("x", 8<<10)}}
	r := f.do(t, "POST", "/s/"+token+"/cancel", form)
	if r.code != http.StatusRequestEntityTooLarge {
		t.Errorf("8 KiB form: %d, want 413", r.code)
	}
	if j := f.job(t, id); j.State != store.Scheduled {
		t.Errorf("job %s after an oversized form", j.State)
	}
}

func TestHealthz(t *testing.T) {
	f := setup(t)
	r := f.do(t, "GET", "/healthz", nil)
	if r.code != 200 || strings.TrimSpace(r.body) != "ok" {
		t.Errorf("healthz: %d %q", r.code, r.body)
	}
	f.st.Close()
	r = f.do(t, "GET", "/healthz", nil)
	if r.code != http.StatusServiceUnavailable {
		t.Errorf("healthz with the store closed: %d %q", r.code, r.body)
	}
}

func TestStates(t *testing.T) {
	f := setup(t)
	id, token := f.newJob(t, "job1")
	due := f.now.Add(10 * time.Minute)
	check := func(name string, wants ...string) {
		t.Helper()
		r := f.do(t, "GET", "/s/"+token, nil)
		if r.code != 200 {
			t.Fatalf("%s: %d", name, r.code)
		}
		for _, w := range wants {
			if !strings.Contains(r.body, w) {
				t.Errorf("%s: page lacks %q", name, w)
			}
		}
	}
	if err := f.st.Claim(f.ctx, id, due); err != nil {
		t.Fatal(err)
	}
	f.now = due
	check("sending", "送信しています", "being sent now")
	if err := f.st.MarkRetry(f.ctx, id, due.Add(30*time.Second), "451 4.3.0 try later"); err != nil {
		t.Fatal(err)
	}
	check("retry", "10:10 JST に再送されます", "sent again at 10:10 JST", "送信を取り消す / Cancel")
	f.now = due.Add(time.Minute)
	if err := f.st.Claim(f.ctx, id, f.now); err != nil {
		t.Fatal(err)
	}
	if err := f.st.MarkFailed(f.ctx, id, f.now, "550 5.1.1 <hanako@example.com>: user unknown"); err != nil {
		t.Fatal(err)
	}
	f.now = due.Add(24 * time.Hour)
	check("failed", "送信できませんでした（2026-11-27 10:11 JST）",
		"550 5.1.1 &lt;hanako@example.com&gt;: user unknown", "could not be sent")
}

func TestNewKey(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("New took an empty CSRF key")
		}
	}()
	New(nil, nil, nil, nil)
}

// TestScreenshot renders the pages with headless Chromium (Debian's
// chromium; fonts-noto-cjk for the Japanese) when it is installed and
// ZIPGATE_SCREENSHOT names a directory for the PNGs.
func TestScreenshot(t *testing.T) {
	dir := os.Getenv("ZIPGATE_SCREENSHOT")
	if dir == "" {
		t.Skip("set ZIPGATE_SCREENSHOT=dir to render the page with chromium")
	}
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium not installed")
	}
	f := setup(t)
	_, token := f.newJob(t, "job1")
	_, token2 := f.newJob(t, "job2")
	if err := f.st.Claim(f.ctx, "job2", f.now.Add(10*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := f.st.MarkReleased(f.ctx, "job2", f.now.Add(10*time.Minute)); err != nil {
		t.Fatal(err)
	}
	shot := func(name, url string, width int) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu",
			"--disable-background-networking", "--hide-scrollbars", "--window-size="+strconv.Itoa(width)+",900",
			"--screenshot="+filepath.Join(dir, name), url).CombinedOutput()
		if err != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			t.Logf("chromium: %v\n%s", err, out)
		}
	}
	shot("scheduled.png", f.ts.URL+"/s/"+token, 900)
	shot("scheduled-narrow.png", f.ts.URL+"/s/"+token, 400)
	// A 409 page cannot be fetched by GET: serve its HTML from a file.
	f.now = f.now.Add(20 * time.Minute)
	r := f.post(t, token2, "cancel", f.srv.csrf(token2))
	p := filepath.Join(dir, "conflict.html")
	if err := os.WriteFile(p, []byte(r.body), 0o644); err != nil {
		t.Fatal(err)
	}
	shot("conflict.png", "file://"+p, 900)
	shot("notfound.png", f.ts.URL+"/nope", 900)

	// The pages of held messages: the sender's with every reason to
	// wait, a rejected one, and the approver's (open, and a reason given
	// back as too long).
	f.now = time.Date(2026, 11, 27, 10, 0, 0, 0, jst)
	held := f.newHeld(t, "h1", func(h *store.HeldMessage) {
		needsApproval(h)
		h.Reasons = []string{store.ReasonHold, store.ReasonApproval, store.ReasonGuard}
		h.HoldUntil, h.SenderOK, h.Visible = h.CreatedAt.Add(5*time.Minute), false, 12
	})
	if err := f.st.ApproveHeld(f.ctx, "h1", "legal@example.jp", "page", f.now); err != nil {
		t.Fatal(err)
	}
	shot("held.png", f.ts.URL+"/h/"+held, 900)
	shot("held-narrow.png", f.ts.URL+"/h/"+held, 400)
	boss := f.approverToken(t, "h1", "boss@example.jp")
	shot("approve.png", f.ts.URL+"/a/"+boss, 900)
	shot("approve-narrow.png", f.ts.URL+"/a/"+boss, 400)
	r = f.press(t, "/a/"+boss+"/reject", f.srv.csrf(boss), url.Values{"reason": {strings.Repeat("宛先が違います。", 70)}})
	p = filepath.Join(dir, "approve-toolong.html")
	if err := os.WriteFile(p, []byte(r.body), 0o644); err != nil {
		t.Fatal(err)
	}
	shot("approve-toolong.png", "file://"+p, 900)
	rejected := f.newHeld(t, "h2", needsApproval)
	if err := f.st.RejectHeld(f.ctx, "h2", "boss@example.jp", "page", "B社宛ての見積です。\n宛先をご確認ください。", f.now); err != nil {
		t.Fatal(err)
	}
	shot("held-rejected.png", f.ts.URL+"/h/"+rejected, 900)
}

// The page says who gets the password: nobody until Release now (manual),
// or the sender.
func TestPasswordToOnThePage(t *testing.T) {
	f := setup(t)
	for _, tc := range []struct {
		to    policy.PasswordTo
		due   time.Time
		wants []string
	}{
		{policy.Manual, time.Time{}, []string{"「今すぐ送る」を押すまで宛先へ送られません", "until you press Release now", "今すぐ送る / Release now"}},
		{policy.ToSender, f.now.Add(10 * time.Minute), []string{"10:10 JST にあなた宛てに送られます", "mailed to you at 10:10 JST"}},
	} {
		id := "job-" + string(tc.to)
		j := &store.Job{ID: id, Sender: "taro@example.jp", Rcpts: []string{"hanako@example.com"}, ZipName: "a.zip",
			Password: "pw", CreatedAt: f.now, DueAt: tc.due, PasswordTo: tc.to}
		if err := f.st.Create(f.ctx, j); err != nil {
			t.Fatal(err)
		}
		if err := f.st.Schedule(f.ctx, id); err != nil {
			t.Fatal(err)
		}
		token, hash, _ := release.NewToken()
		if err := f.st.SetToken(f.ctx, id, hash); err != nil {
			t.Fatal(err)
		}
		r := f.do(t, "GET", "/s/"+token, nil)
		for _, w := range tc.wants {
			if !strings.Contains(r.body, w) {
				t.Errorf("%s: page lacks %q", tc.to, w)
			}
		}
		if tc.to == policy.Manual {
			if r := f.post(t, token, "release", f.srv.csrf(token)); r.code != http.StatusSeeOther {
				t.Fatalf("release now: %d", r.code)
			}
			if j := f.job(t, id); !j.DueAt.Equal(f.now) {
				t.Errorf("after Release now the job is due %v, want %v", j.DueAt, f.now)
			}
		}
	}
}
