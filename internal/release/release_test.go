package release

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/zipgate/zipgate/internal/mailtest"
	"github.com/zipgate/zipgate/internal/notice"
	"github.com/zipgate/zipgate/internal/relay"
	"github.com/zipgate/zipgate/internal/store"
)

// clock is moved by the tests; nothing sleeps.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

type fixture struct {
	st    store.Store
	hop   *mailtest.NextHop
	s     *Scheduler
	clock *clock
}

func setup(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	st, _, err := store.Open(context.Background(), filepath.Join(dir, "db"), filepath.Join(dir, "key"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	tmpl, err := notice.Load(notice.Options{})
	if err != nil {
		t.Fatal(err)
	}
	hop := mailtest.StartNextHop(t)
	c := &clock{t: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}
	s := New(st, &relay.Client{Addr: hop.Addr, HeloName: "zipgate.test", Timeout: 5 * time.Second}, tmpl,
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	s.Now, s.Hostname, s.BaseURL, s.PwPrefix = c.now, "zipgate.test", "https://gw.example.jp", "[Password] "
	return &fixture{st: st, hop: hop, s: s, clock: c}
}

// newJob stores a job whose message has left, due after delay.
func (f *fixture) newJob(t *testing.T, id string, delay time.Duration) {
	t.Helper()
	j := &store.Job{ID: id, Sender: "taro@example.jp", Rcpts: []string{"hanako@example.com"},
		HeaderFrom: "taro@example.jp", HeaderTo: "hanako@example.com", Subject: "見積書", MessageID: "<" + id + "@example.jp>",
		ZipName: "attachments_20261127.zip", Files: []store.File{{Name: "見積書.pdf", Size: 100, SHA256: "ab"}},
		Password: "pw-" + id, CreatedAt: f.clock.t, DueAt: f.clock.t.Add(delay)}
	if err := f.st.Create(context.Background(), j); err != nil {
		t.Fatal(err)
	}
	if err := f.st.Schedule(context.Background(), id); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) run(t *testing.T) {
	t.Helper()
	if _, err := f.s.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// passwordMails returns the password mails the next hop got for id.
func (f *fixture) passwordMails(id string) []mailtest.Received {
	var out []mailtest.Received
	for _, m := range f.hop.Messages() {
		if bytes.Contains(m.Data, []byte("X-Zipgate: password; id="+id+"\r\n")) {
			out = append(out, m)
		}
	}
	return out
}

func (f *fixture) state(t *testing.T, id string) store.State {
	t.Helper()
	j, err := f.st.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return j.State
}

func TestPasswordGoesWhenDueAndNotBefore(t *testing.T) {
	f := setup(t)
	f.newJob(t, "j1", 10*time.Minute)
	f.run(t)
	if n := len(f.passwordMails("j1")); n != 0 {
		t.Fatalf("%d password mails before the delay", n)
	}
	// The sender notice went at once, with a link to the sender page.
	msgs := f.hop.Messages()
	if len(msgs) != 1 || !bytes.Contains(msgs[0].Data, []byte("X-Zipgate: notice")) || msgs[0].Rcpts[0] != "taro@example.jp" {
		t.Fatalf("want one sender notice, got %d mails", len(msgs))
	}
	f.clock.advance(9*time.Minute + 59*time.Second)
	f.run(t)
	if n := len(f.passwordMails("j1")); n != 0 {
		t.Fatal("password sent a second early")
	}
	f.clock.advance(time.Second)
	f.run(t)
	pws := f.passwordMails("j1")
	if len(pws) != 1 || pws[0].Rcpts[0] != "hanako@example.com" || !bytes.Contains(pws[0].Data, []byte("In-Reply-To: <j1@example.jp>")) {
		t.Fatalf("%d password mails", len(pws))
	}
	if f.state(t, "j1") != store.Released {
		t.Fatalf("state %s", f.state(t, "j1"))
	}
	// Once released, further passes send nothing more.
	before := len(f.hop.Messages())
	f.clock.advance(time.Hour)
	f.run(t)
	f.run(t)
	if len(f.hop.Messages()) != before {
		t.Fatal("something was sent again")
	}
	if len(f.passwordMails("j1")) != 1 {
		t.Fatal("password sent twice")
	}
}

func TestCanceledJobNeverSends(t *testing.T) {
	f := setup(t)
	f.newJob(t, "j1", 10*time.Minute)
	f.run(t)
	if err := f.st.Cancel(context.Background(), "j1", f.clock.t); err != nil {
		t.Fatal(err)
	}
	f.clock.advance(24 * time.Hour)
	f.run(t)
	f.run(t)
	if n := len(f.passwordMails("j1")); n != 0 {
		t.Fatalf("%d password mails for a canceled job", n)
	}
	var confirm bool
	for _, m := range f.hop.Messages() {
		confirm = confirm || bytes.Contains(m.Data, []byte("X-Zipgate: notice")) && strings.Contains(decodeBody(t, m.Data), "was canceled")
	}
	if !confirm {
		t.Fatal("the sender got no confirmation of the cancel")
	}
	if err := f.st.Cancel(context.Background(), "j1", f.clock.t); err != store.ErrAlreadyCanceled {
		t.Fatalf("second cancel: %v", err)
	}
}

func TestReleaseNowSendsAtOnce(t *testing.T) {
	f := setup(t)
	f.newJob(t, "j1", 10*time.Minute)
	f.run(t)
	if err := f.st.ReleaseNow(context.Background(), "j1", f.clock.t); err != nil {
		t.Fatal(err)
	}
	f.run(t)
	if len(f.passwordMails("j1")) != 1 {
		t.Fatal("release now did not send")
	}
}

func TestCancelAfterReleaseIsRefused(t *testing.T) {
	f := setup(t)
	f.newJob(t, "j1", 0)
	f.run(t)
	if err := f.st.Cancel(context.Background(), "j1", f.clock.t); err != store.ErrAlreadyReleased {
		t.Fatalf("cancel after release: %v, want ErrAlreadyReleased", err)
	}
	if f.state(t, "j1") != store.Released {
		t.Fatal("the cancel changed the job")
	}
}

func TestNextHopDeferralRetriesAndSendsOnce(t *testing.T) {
	f := setup(t)
	f.newJob(t, "j1", 0)
	f.hop.SetFault(mailtest.Fault{Data: &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}})
	f.s.RunOnce(context.Background()) // the notice is deferred too: an error, retried later
	if f.state(t, "j1") != store.Scheduled {
		t.Fatalf("after a 451 the job is %s, want scheduled", f.state(t, "j1"))
	}
	j, _ := f.st.Get(context.Background(), "j1")
	if j.Attempts != 1 || !strings.Contains(j.LastError, "451") || !j.NextAttempt.After(f.clock.t) {
		t.Fatalf("attempts %d, last error %q, next %v", j.Attempts, j.LastError, j.NextAttempt)
	}
	// The next hop recovers, but the retry waits for its backoff.
	f.hop.SetFault(mailtest.Fault{})
	f.run(t)
	if len(f.passwordMails("j1")) != 0 {
		t.Fatal("retried before the backoff")
	}
	f.clock.advance(Backoff(0))
	f.run(t)
	f.clock.advance(time.Hour)
	f.run(t)
	if n := len(f.passwordMails("j1")); n != 1 {
		t.Fatalf("%d password mails, want exactly 1", n)
	}
	if f.state(t, "j1") != store.Released {
		t.Fatalf("state %s", f.state(t, "j1"))
	}
}

func TestNextHopRefusalFailsTheJobAndTellsTheSender(t *testing.T) {
	f := setup(t)
	f.newJob(t, "j1", 0)
	f.hop.SetFault(mailtest.Fault{RcptAddr: "hanako@example.com",
		Rcpt: &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}})
	f.run(t)
	if f.state(t, "j1") != store.Failed {
		t.Fatalf("state %s, want failed", f.state(t, "j1"))
	}
	var told bool
	for _, m := range f.hop.Messages() {
		told = told || m.Rcpts[0] == "taro@example.jp" && strings.Contains(decodeBody(t, m.Data), "no such user")
	}
	if !told {
		t.Fatal("the sender was not told")
	}
}

func TestBackoffGrowsAndIsBounded(t *testing.T) {
	prev := time.Duration(0)
	for i := range 20 {
		d := Backoff(i)
		if d < prev || d > 30*time.Minute {
			t.Fatalf("Backoff(%d) = %v after %v", i, d, prev)
		}
		prev = d
	}
	if Backoff(0) != 30*time.Second || Backoff(19) != 30*time.Minute {
		t.Fatalf("Backoff(0)=%v Backoff(19)=%v", Backoff(0), Backoff(19))
	}
}

func TestPurgeKeepsJobsForTheRetention(t *testing.T) {
	f := setup(t)
	f.s.Retention = 90 * 24 * time.Hour
	f.newJob(t, "j1", 0)
	f.run(t)
	f.clock.advance(89 * 24 * time.Hour)
	f.run(t)
	if _, err := f.st.Get(context.Background(), "j1"); err != nil {
		t.Fatalf("purged too early: %v", err)
	}
	f.clock.advance(2 * 24 * time.Hour)
	f.run(t)
	if _, err := f.st.Get(context.Background(), "j1"); err != store.ErrNotFound {
		t.Fatalf("after the retention: %v", err)
	}
}

func TestTokenIsUnguessableAndOnlyItsHashIsKept(t *testing.T) {
	f := setup(t)
	f.newJob(t, "j1", time.Hour)
	f.run(t)
	notice := f.hop.Messages()[0].Data
	j, _ := f.st.Get(context.Background(), "j1")
	if len(j.TokenHash) != 32 {
		t.Fatalf("token hash %x", j.TokenHash)
	}
	// The token in the link maps to the job through its hash only.
	body := decodeBody(t, notice)
	i := strings.Index(body, "https://gw.example.jp/s/")
	if i < 0 {
		t.Fatalf("no link in:\n%s", body)
	}
	token := strings.Fields(body[i+len("https://gw.example.jp/s/"):])[0]
	if len(token) < 22 || strings.Contains(token, "j1") {
		t.Fatalf("token %q", token)
	}
	got, err := f.st.ByToken(context.Background(), HashToken(token))
	if err != nil || got.ID != "j1" {
		t.Fatalf("lookup by token: %v", err)
	}
}

// A sender whose mailbox refuses the notice still gets the password to
// the recipients, and the notice is not retried for ever.
func TestRefusedNoticeNeverHoldsBackThePassword(t *testing.T) {
	f := setup(t)
	f.newJob(t, "j1", 0)
	f.hop.SetFault(mailtest.Fault{RcptAddr: "taro@example.jp",
		Rcpt: &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "mailbox full for good"}})
	f.run(t)
	if len(f.passwordMails("j1")) != 1 || f.state(t, "j1") != store.Released {
		t.Fatal("the password did not go")
	}
	next, err := f.s.RunOnce(context.Background())
	if err != nil || !next.IsZero() {
		t.Fatalf("work left: next %v, err %v", next, err)
	}
}

// Stopping zipgate while a password mail is on its way does not cut it:
// cut after its data, it might have been taken and would go again after
// the restart. It finishes, and the job is released once.
func TestStopDoesNotCutAPasswordMailOnItsWay(t *testing.T) {
	f := setup(t)
	for _, id := range []string{"j1", "j2"} {
		f.newJob(t, id, 0)
		if err := f.st.MarkNoticeSent(context.Background(), id); err != nil {
			t.Fatal(err)
		}
	}
	ctx, stop := context.WithCancel(context.Background())
	f.hop.SetFault(mailtest.Fault{BeforeReply: func() {
		stop() // SIGTERM arrives while the first mail waits for its 250
		time.Sleep(50 * time.Millisecond)
	}})
	f.s.RunOnce(ctx)
	f.hop.SetFault(mailtest.Fault{})
	released := 0
	for _, id := range []string{"j1", "j2"} {
		j, err := f.st.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if j.State == store.Released {
			released++
		}
		if j.State == store.Scheduled && j.Attempts > 0 {
			t.Errorf("job %s was cut and is to be retried: %s", id, j.LastError)
		}
	}
	if released != 1 {
		t.Fatalf("%d jobs released, want the one on its way (and the other left for the next start)", released)
	}
	// After the restart each password goes once in all.
	f.run(t)
	for _, id := range []string{"j1", "j2"} {
		if n := len(f.passwordMails(id)); n != 1 {
			t.Errorf("job %s: %d password mails, want 1", id, n)
		}
	}
}

// A hundred jobs whose sender's mailbox keeps deferring do not hold back
// a password that is due (issue 11, finding 5): mail to the sender backs
// off per job, and the pass goes on to the due work.
func TestStuckNoticesDoNotStarveDueWork(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	for i := range 120 {
		id := fmt.Sprintf("stuck%03d", i)
		j := &store.Job{ID: id, Sender: "full@example.jp", Rcpts: []string{"hanako@example.com"}, ZipName: "a.zip",
			Password: "pw", CreatedAt: f.clock.t.Add(-time.Hour), DueAt: f.clock.t.Add(-time.Hour)}
		if err := f.st.Create(ctx, j); err != nil {
			t.Fatal(err)
		}
		if err := f.st.Schedule(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	f.hop.SetFault(mailtest.Fault{RcptAddr: "full@example.jp",
		Rcpt: &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 2, 2}, Message: "mailbox full"}})
	f.run(t) // the first hundred: passwords go, notices deferred
	f.newJob(t, "fresh", 0)
	for pass := 0; pass < 3; pass++ {
		f.clock.advance(time.Second)
		f.run(t)
	}
	if n := len(f.passwordMails("fresh")); n != 1 {
		t.Fatalf("the fresh job's password: %d mails after three passes, want 1", n)
	}
	// The deferred mail to the sender is retried later, with backoff.
	j, err := f.st.Get(ctx, "stuck000")
	if err != nil {
		t.Fatal(err)
	}
	if j.NoticeAttempts != 1 || !j.NoticeNext.After(f.clock.t) {
		t.Errorf("stuck000: %d notice attempts, next %v (now %v)", j.NoticeAttempts, j.NoticeNext, f.clock.t)
	}
	f.hop.SetFault(mailtest.Fault{})
	f.clock.advance(time.Minute)
	f.run(t)
	f.run(t)
	if j, _ := f.st.Get(ctx, "stuck000"); !j.ConfirmSent {
		t.Errorf("after the backoff the sender was still not told: %+v", j)
	}
}
