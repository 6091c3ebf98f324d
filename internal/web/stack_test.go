package web

import (
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"golang.org/x/crypto/bcrypt"

	"github.com/zipgate/zipgate/internal/config"
	"github.com/zipgate/zipgate/internal/gateway"
	"github.com/zipgate/zipgate/internal/hold"
	dl "github.com/zipgate/zipgate/internal/links"
	"github.com/zipgate/zipgate/internal/mailtest"
	"github.com/zipgate/zipgate/internal/metrics"
	"github.com/zipgate/zipgate/internal/notice"
	"github.com/zipgate/zipgate/internal/relay"
	"github.com/zipgate/zipgate/internal/release"
	"github.com/zipgate/zipgate/internal/smtpd"
	"github.com/zipgate/zipgate/internal/store"
)

// stack is zipgate as serve runs it, on loopback: the SMTP server and
// gateway in front of a recording next hop, the release and hold
// schedulers (run by the test), the sender page and the admin pages,
// each on a server of its own, over one store.
type stack struct {
	cfg               config.Config
	st                store.Store
	hop               *mailtest.NextHop
	smtp              string // address of zipgate's SMTP server
	sched             *release.Scheduler
	holds             *hold.Scheduler
	links             *dl.Scheduler
	admin             *Admin
	sender            *Server
	adminTS, senderTS *httptest.Server
	metrics           *metrics.Metrics
}

const (
	adminName     = "alice"
	adminPassword = "correct horse battery"
)

func startStack(t *testing.T) *stack {
	t.Helper()
	hop := mailtest.StartNextHop(t)
	cfg := config.Defaults()
	cfg.DataDir = t.TempDir()
	cfg.Relay.NextHop = hop.Addr
	cfg.Relay.Timeout = config.Duration(10 * time.Second)
	cfg.Release.Delay = config.Duration(10 * time.Minute)
	cfg.Policy.LocalDomains = []string{"example.co.jp"}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewJSONHandler(tlog{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	st, key, err := store.Open(context.Background(), cfg.DBFile(), cfg.KeyFile())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	tmpl, err := notice.Load(notice.Options{})
	if err != nil {
		t.Fatal(err)
	}
	next := &relay.Client{Addr: hop.Addr, HeloName: "zipgate.test", Timeout: cfg.Relay.Timeout.D()}
	s := &stack{cfg: cfg, st: st, hop: hop}
	s.sched = release.New(st, next, tmpl, log)
	s.sched.Hostname, s.sched.PwPrefix = "zipgate.test", "[Password] "
	gw, err := gateway.New(cfg, cfg.DataDir, st, tmpl, next, func() {}, log)
	if err != nil {
		t.Fatal(err)
	}
	heldDir, err := hold.NewDir(filepath.Join(cfg.DataDir, "held"))
	if err != nil {
		t.Fatal(err)
	}
	s.holds = hold.New(st, heldDir, gw.DeliverHeld, next, tmpl, log)
	s.holds.Hostname = "zipgate.test"
	gw.Holding = gateway.Holding{Dir: heldDir, MaxBytes: cfg.Policy.HoldMaxBytes, ApprovalTimeout: cfg.Policy.ApprovalTimeout.D()}
	s.metrics = metrics.New("test", "test", st)
	gw.Metrics, s.sched.Metrics, s.holds.Metrics = s.metrics, s.metrics, s.metrics
	srv, err := smtpd.New(cfg.SMTP, gw, cfg.DataDir, log)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	s.smtp = ln.Addr().String()

	linkDir, err := dl.NewDir(filepath.Join(cfg.DataDir, "links"))
	if err != nil {
		t.Fatal(err)
	}
	files := &dl.Files{Blobs: linkDir}
	s.links = dl.NewScheduler(st, files, next, tmpl, log)
	s.links.Hostname = "zipgate.test"

	s.sender = New(st, func() {}, key, log)
	s.sender.NextHop = hop.Addr
	s.sender.Links = &LinkPages{Files: files, Codes: s.links, Wake: func() {}}
	s.senderTS = httptest.NewServer(s.sender.Handler())
	t.Cleanup(s.senderTS.Close)
	s.sched.BaseURL, s.holds.BaseURL = s.senderTS.URL, s.senderTS.URL
	gw.Linking = gateway.Linking{Files: files, BaseURL: s.senderTS.URL}

	adminKey := make([]byte, 32)
	rand.Read(adminKey)
	s.admin = NewAdmin(AdminOptions{Store: st, Log: log, Metrics: s.metrics.Handler(), Key: adminKey,
		SessionTimeout: time.Hour, Defaults: cfg.PolicyConfig().Defaults})
	s.adminTS = httptest.NewServer(s.admin.Handler())
	t.Cleanup(s.adminTS.Close)

	hash, err := bcrypt.GenerateFromPassword([]byte(adminPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.PutAdmin(context.Background(), adminName, hash, time.Now()); err != nil {
		t.Fatal(err)
	}
	return s
}

// token makes an API token the way zipgate admin token create does.
func (s *stack) token(t *testing.T, name string) string {
	t.Helper()
	tok := "zgt_" + randomValue()
	if err := s.st.CreateToken(context.Background(), name, hashValue(tok), time.Now()); err != nil {
		t.Fatal(err)
	}
	return tok
}

// send submits a message as Postfix's smtp client does; nil is 250.
func (s *stack) send(t *testing.T, from string, to []string, data string) *smtp.SMTPError {
	t.Helper()
	return mailtest.Send(t, s.smtp, from, nil, to, nil, []byte(data))
}

// mailWith is a message with one attachment named name.
func mailWith(subject, name string) string {
	return "From: Taro <taro@example.co.jp>\r\nTo: bob@partner.example\r\nSubject: " + subject + "\r\n" +
		"Message-ID: <" + randomValue()[:12] + "@example.co.jp>\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" +
		"Please find the file attached.\r\n--b1\r\nContent-Type: application/pdf\r\n" +
		"Content-Disposition: attachment; filename*=UTF-8''" + url.PathEscape(name) + "\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQKJcfsj6IKMSAwIG9iago=\r\n--b1--\r\n"
}

// browser is an HTTP client with a cookie jar, as a person's browser
// would be, that does not follow redirects (tests look at them).
type browser struct {
	t    *testing.T
	c    *http.Client
	base string
}

func (s *stack) browser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: s.adminTS.URL, c: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type answer struct {
	status int
	header http.Header
	body   string
}

func (b *browser) do(method, path string, form url.Values, hdr ...string) answer {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.base+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, string(data)}
}

func (b *browser) get(path string) answer                   { return b.do("GET", path, nil) }
func (b *browser) post(path string, form url.Values) answer { return b.do("POST", path, form) }

var csrfRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrfOf is the CSRF value the forms of a page carry.
func csrfOf(t *testing.T, page string) string {
	t.Helper()
	m := csrfRe.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF field in the page:\n%s", page)
	}
	return m[1]
}

// login signs in as a person does: the form, then its POST.
func (b *browser) login(name, password string) answer {
	b.t.Helper()
	page := b.get("/admin/login")
	if page.status != 200 {
		b.t.Fatalf("login page: %d", page.status)
	}
	return b.post("/admin/login", url.Values{"csrf": {csrfOf(b.t, page.body)}, "name": {name}, "password": {password}})
}

// signedIn is a browser with a session, and the CSRF value of its forms.
func (s *stack) signedIn(t *testing.T) (*browser, string) {
	t.Helper()
	b := s.browser(t)
	if a := b.login(adminName, adminPassword); a.status != http.StatusSeeOther {
		t.Fatalf("login: %d\n%s", a.status, a.body)
	}
	page := b.get("/admin/domains")
	if page.status != 200 {
		t.Fatalf("domains after login: %d", page.status)
	}
	return b, csrfOf(t, page.body)
}

// events are the audit trail, oldest first, as "event actor via target|message detail".
func (s *stack) events(t *testing.T) []store.AuditRow {
	t.Helper()
	var out []store.AuditRow
	if err := s.st.SearchEvents(context.Background(), store.AuditQuery{}, func(r store.AuditRow) error {
		out = append([]store.AuditRow{r}, out...)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}
