package gateway_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alexmullins/zip"
	"github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset"
	"github.com/emersion/go-smtp"

	"github.com/zipgate/zipgate/internal/config"
	"github.com/zipgate/zipgate/internal/gateway"
	"github.com/zipgate/zipgate/internal/hold"
	"github.com/zipgate/zipgate/internal/mailtest"
	"github.com/zipgate/zipgate/internal/notice"
	"github.com/zipgate/zipgate/internal/relay"
	"github.com/zipgate/zipgate/internal/release"
	"github.com/zipgate/zipgate/internal/smtpd"
	"github.com/zipgate/zipgate/internal/store"
)

// harness is a real zipgate SMTP server on loopback in front of a
// recording next hop.
type harness struct {
	cfg   config.Config
	addr  string
	hop   *mailtest.NextHop
	logs  *syncBuffer
	store store.Store
	sched *release.Scheduler
	gw    *gateway.Gateway
	holds *hold.Scheduler
	held  *hold.Dir
	// later is how far the hold scheduler's clock runs ahead of now.
	later time.Duration
}

// syncBuffer keeps the log lines for tests that check them.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func start(t *testing.T, mutate func(*config.Config)) *harness {
	t.Helper()
	return startSigning(t, mutate, nil)
}

// startSigning starts a harness whose relay signs with keys.
func startSigning(t *testing.T, mutate func(*config.Config), keys []relay.DKIMKey) *harness {
	t.Helper()
	hop := mailtest.StartNextHop(t)
	cfg := config.Defaults()
	cfg.Relay.NextHop = hop.Addr
	cfg.DataDir = t.TempDir()
	cfg.Relay.Timeout = config.Duration(10 * time.Second)
	cfg.Release.Delay = 0 // due at once; tests run the scheduler themselves
	if mutate != nil {
		mutate(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(io.MultiWriter(tlog{t}, logs), &slog.HandlerOptions{Level: slog.LevelDebug}))
	st, _, err := store.Open(context.Background(), cfg.DBFile(), cfg.KeyFile())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	tmpl, err := notice.Load(notice.Options{})
	if err != nil {
		t.Fatal(err)
	}
	next := &relay.Client{Addr: cfg.Relay.NextHop, HeloName: "zipgate.test", Timeout: cfg.Relay.Timeout.D()}
	if keys != nil {
		if next.DKIM, err = relay.LoadDKIM(keys); err != nil {
			t.Fatal(err)
		}
	}
	sched := release.New(st, next, tmpl, log)
	sched.Hostname, sched.BaseURL, sched.PwPrefix = "zipgate.test", "https://zipgate.example.jp", "[Password] "
	gw, err := gateway.New(cfg, cfg.DataDir, st, tmpl, next, func() {}, log)
	if err != nil {
		t.Fatal(err)
	}
	heldDir, err := hold.NewDir(filepath.Join(cfg.DataDir, "held"))
	if err != nil {
		t.Fatal(err)
	}
	holds := hold.New(st, heldDir, gw.DeliverHeld, next, tmpl, log)
	holds.Hostname, holds.BaseURL = "zipgate.test", "https://zipgate.example.jp"
	gw.Holding = gateway.Holding{Dir: heldDir, MaxBytes: cfg.Policy.HoldMaxBytes, ApprovalTimeout: cfg.Policy.ApprovalTimeout.D()}
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
	h := &harness{cfg: cfg, addr: ln.Addr().String(), hop: hop, logs: logs, store: st, sched: sched, gw: gw,
		holds: holds, held: heldDir}
	holds.Now = func() time.Time { return time.Now().Add(h.later) }
	return h
}

// runHolds runs the hold scheduler once, its clock h.later ahead.
func (h *harness) runHolds(t *testing.T) {
	t.Helper()
	if _, err := h.holds.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// release runs the scheduler once, as its loop would when woken.
func (h *harness) release(t *testing.T) {
	t.Helper()
	if _, err := h.sched.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// byKind sorts what the next hop got by zipgate's trace header: the
// rewritten message ("encrypted"), "password" mails and sender "notice"s.
func byKind(msgs []mailtest.Received) map[string][]mailtest.Received {
	out := map[string][]mailtest.Received{}
	for _, m := range msgs {
		kind := "untouched"
		if i := bytes.Index(m.Data, []byte("X-Zipgate: ")); i >= 0 {
			rest := m.Data[i+len("X-Zipgate: "):]
			kind = string(rest[:bytes.IndexAny(rest, ";\r")])
		}
		out[kind] = append(out[kind], m)
	}
	return out
}

// tlog routes the gateway's log lines to the test log.
type tlog struct{ t *testing.T }

func (w tlog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// send submits one message like Postfix's smtp client does and returns
// zipgate's answer (nil for 250).
func send(t *testing.T, addr, from string, to []string, data []byte) *smtp.SMTPError {
	t.Helper()
	return sendOpts(t, addr, from, nil, to, nil, data)
}

func sendOpts(t *testing.T, addr, from string, mo *smtp.MailOptions, to []string, ro *smtp.RcptOptions, data []byte) *smtp.SMTPError {
	t.Helper()
	return mailtest.Send(t, addr, from, mo, to, ro, data)
}

// entity is a decoded part of a received message.
type entity struct {
	header message.Header
	body   []byte
}

// leaves parses a message with go-message and returns its decoded leaf
// parts.
func leaves(t *testing.T, raw []byte) []entity {
	t.Helper()
	m, err := message.Read(bytes.NewReader(raw))
	if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
		t.Fatalf("output does not parse: %v", err)
	}
	var out []entity
	err = m.Walk(func(path []int, e *message.Entity, err error) error {
		if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
			return err
		}
		if mr := e.MultipartReader(); mr != nil {
			return nil
		}
		b, err := io.ReadAll(e.Body)
		if err != nil {
			return err
		}
		out = append(out, entity{header: e.Header, body: b})
		return nil
	})
	if err != nil {
		t.Fatalf("walking output: %v", err)
	}
	return out
}

// zipOf returns the zip attached to a rewritten message and its name.
func zipOf(t *testing.T, raw []byte) (string, []byte) {
	t.Helper()
	var name string
	var data []byte
	for _, e := range leaves(t, raw) {
		if mt, _, _ := e.header.ContentType(); mt == "application/zip" {
			_, p, _ := e.header.ContentDisposition()
			if strings.HasPrefix(p["filename"], "attachments_") {
				if data != nil {
					t.Fatal("more than one zipgate zip in the message")
				}
				name, data = p["filename"], e.body
			}
		}
	}
	if data == nil {
		t.Fatal("no zip in the rewritten message")
	}
	return name, data
}

var passwordRe = regexp.MustCompile(`Password: (\S+)`)

// passwordOf reads the password from a password mail.
func passwordOf(t *testing.T, raw []byte) string {
	t.Helper()
	for _, e := range leaves(t, raw) {
		if m := passwordRe.FindSubmatch(e.body); m != nil {
			return string(m[1])
		}
	}
	t.Fatalf("no password in the mail:\n%s", raw)
	return ""
}

// unzip opens a zip with the library's own AES reader.
func unzip(t *testing.T, data []byte, password string) (names []string, files map[string][]byte) {
	t.Helper()
	r, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	files = map[string][]byte{}
	for _, f := range r.File {
		if f.IsEncrypted() {
			f.SetPassword(password)
		}
		rc, err := f.Open()
		if err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		names = append(names, f.Name)
		files[f.Name] = b
	}
	return names, files
}
