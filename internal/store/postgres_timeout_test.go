package store

import (
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/zipgate/zipgate/internal/pgtest"
)

// A database that does not answer within the store's timeout counts as
// down (answerConn). The tests use a timeout of a second; what they
// assert is that a call returns with an error (or works), never how fast.

const testTimeout = time.Second

// returns runs call and fails the test if it has not returned long after
// the store's timeout (the kernel's TCP timeout, the hang this is about,
// is a quarter of an hour).
func returns(t *testing.T, what string, call func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- call() }()
	select {
	case err := <-done:
		return err
	case <-time.After(60 * time.Second):
		t.Fatalf("%s has not returned a minute after the database froze (store timeout %s): the SMTP session would hang",
			what, testTimeout)
		return nil
	}
}

// overTLS runs test on a plain connection and on a TLS one: answerConn
// sits above TLS and reads the protocol's frames there.
func overTLS(t *testing.T, test func(t *testing.T, url string)) {
	c := pgtest.Shared(t)
	for _, encrypted := range []bool{false, true} {
		name := "plain"
		if encrypted {
			name = "TLS"
		}
		t.Run(name, func(t *testing.T) {
			url := c.NewSchema(t)
			if encrypted {
				url = c.EnableTLS(t, url)
			}
			test(t, url)
		})
	}
}

// usesTLS fails t unless s's connections are encrypted as url asks.
func usesTLS(t *testing.T, s *Postgres, url string) {
	t.Helper()
	var ssl bool
	must(t, "pg_stat_ssl", s.pool.QueryRow(context.Background(),
		`SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()`).Scan(&ssl))
	if want := strings.Contains(url, "sslmode=require"); ssl != want {
		t.Fatalf("the store's connection: ssl %v, want %v", ssl, want)
	}
}

// Issue 14, adversarial review: with the database frozen behind a proxy
// that keeps the connections open (packets dropped, the host hung), a
// store call, even one made with context.WithoutCancel as the gateway
// makes its records, hung for the kernel's TCP timeout instead of
// failing, and the SMTP session waiting on it with it: no 451. It fails
// now, saying the database did not answer; so do the calls after it,
// on fresh connections; once the database answers again the next call
// works, on the same store.
func TestPostgresFrozenDatabaseFailsCalls(t *testing.T) { overTLS(t, frozenDatabaseFailsCalls) }

func frozenDatabaseFailsCalls(t *testing.T, url string) {
	proxy := pgtest.Shared(t).Proxy(t)
	s, err := OpenPostgresKey(context.Background(), PostgresOptions{URL: proxy.Via(url), Timeout: testTimeout}, testKey(1))
	if err != nil {
		t.Fatal(err)
	}
	usesTLS(t, s, url)
	ctx := context.WithoutCancel(context.Background())
	m := message("m", "k", "a@x.example")
	must(t, "SaveMessage before the freeze", s.SaveMessage(ctx, m, job("j1")))

	proxy.Freeze()
	err = returns(t, "SaveMessage", func() error {
		return s.SaveMessage(ctx, message("m2", "k2", "a@x.example"), job("j2"))
	})
	if !errors.Is(err, ErrNoAnswer) {
		t.Fatalf("SaveMessage with the database frozen: %v; want an error saying it did not answer", err)
	}
	t.Logf("SaveMessage with the database frozen: %v", err)
	// The connections the pool makes now meet the same silence.
	for name, call := range map[string]func() error{
		"Prior":     func() error { _, err := s.Prior(ctx, []byte("k"), m.Rcpts); return err },
		"Delivered": func() error { return s.Delivered(ctx, m, m.Rcpts, "j1", t0, t0) },
		"Ping":      func() error { return s.Ping(ctx) },
	} {
		if err := returns(t, name, call); err == nil {
			t.Errorf("%s with the database frozen succeeded", name)
		}
	}

	proxy.Thaw()
	must(t, "SaveMessage once the database answers again", s.SaveMessage(ctx, message("m3", "k3", "a@x.example"), job("j3")))
	if got := get(t, s, "j3"); got.State != Pending {
		t.Errorf("the job saved after the thaw is %s", got.State)
	}
	if got := get(t, s, "j1"); got.State != Pending {
		t.Errorf("the job saved before the freeze is %s", got.State)
	}
	must(t, "Close", s.Close())
}

// The LISTEN connection waits for notifications with nothing asked: a
// quiet spell longer than the timeout must not cut it (a reconnect would
// wake every scheduler, and lose what was said meanwhile).
func TestPostgresListenOutlastsTheTimeout(t *testing.T) { overTLS(t, listenOutlastsTheTimeout) }

func listenOutlastsTheTimeout(t *testing.T, url string) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	open := func(name string) *Postgres {
		s, err := OpenPostgresKey(ctx, PostgresOptions{URL: url, Node: name, Timeout: testTimeout}, testKey(1))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	a, b := open("a"), open("b")
	usesTLS(t, a, url)
	woken := make(chan struct{}, 100)
	cuts := make(chan error, 10)
	go a.Listen(ctx, map[string]func(){TopicJobs: func() { woken <- struct{}{} }}, func(err error) { cuts <- err })
	select {
	case <-woken: // connected
	case <-time.After(30 * time.Second):
		t.Fatal("no first wake")
	}
	listener := func() int {
		t.Helper()
		var pid int
		if err := b.pool.QueryRow(ctx, `SELECT pid FROM pg_stat_activity WHERE query LIKE 'LISTEN%'`).Scan(&pid); err != nil {
			t.Fatalf("the LISTEN connection: %v", err)
		}
		return pid
	}
	before := listener()
	time.Sleep(4 * testTimeout) // the quiet spell
	if after := listener(); after != before {
		t.Errorf("the LISTEN connection was replaced during a quiet spell (backend %d, now %d)", before, after)
	}
	select {
	case <-woken:
		t.Error("the listener reconnected (it woke everyone) during a quiet spell")
	case err := <-cuts:
		t.Errorf("listening was reported cut during a quiet spell: %v", err)
	default:
	}
	bring(t, b, job("j"), Scheduled)
	must(t, "Cancel", b.Cancel(ctx, "j", t0))
	select {
	case <-woken:
	case <-time.After(30 * time.Second):
		t.Fatal("a cancel on b after a quiet spell did not wake a")
	}
}

// A statement the database works on longer than the timeout counts as
// the database being down, in the pool; a long transaction (migrations,
// purges) may take its time, and gives the connection back bounded.
func TestPostgresLongTransactionsMayKeepSilent(t *testing.T) {
	ctx := context.Background()
	// One connection, so that each call gets the one before's, if it
	// lives.
	url := pgtest.Shared(t).NewSchema(t) + "&pool_max_conns=1&pool_min_conns=1"
	s, err := OpenPostgresKey(ctx, PostgresOptions{URL: url, Timeout: testTimeout}, testKey(1))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	long := `SELECT pg_sleep(3)`
	_, err = s.pool.Exec(context.WithoutCancel(ctx), long)
	if !errors.Is(err, ErrNoAnswer) {
		t.Fatalf("a 3 s statement with a 1 s timeout: %v; want an error saying the database did not answer", err)
	}
	var one int
	must(t, "the next call, on a fresh connection", s.pool.QueryRow(ctx, `SELECT 1`).Scan(&one))
	must(t, "a 3 s statement in a long transaction", s.inLongTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, long)
		return err
	}))
	if _, err := s.pool.Exec(ctx, long); !errors.Is(err, ErrNoAnswer) {
		t.Fatalf("a 3 s statement after a long transaction, on its connection: %v; want the bound back", err)
	}
}

// The frames of the protocol are found however the bytes come: whole,
// one by one, or in random pieces.
func TestFramerCountsMessages(t *testing.T) {
	frame := func(typ byte, body int) []byte {
		b := []byte{typ, 0, 0, 0, 0}
		binary.BigEndian.PutUint32(b[1:], uint32(body+4))
		return append(b, make([]byte, body)...)
	}
	startup := binary.BigEndian.AppendUint32(nil, 4+4+10)
	startup = append(startup, make([]byte, 4+10)...)
	var stream []byte
	stream = append(stream, startup...)
	want := []byte{0}
	for i, typ := range []byte{'P', 'B', 'D', 'E', 'S', 'Q', 'd', 'd', 'c', 'X'} {
		stream = append(stream, frame(typ, i*7000)...)
		want = append(want, typ)
	}
	for name, split := range map[string]func(int) int{
		"whole":  func(n int) int { return n },
		"bytes":  func(int) int { return 1 },
		"random": func(n int) int { return 1 + rand.IntN(n) },
	} {
		f := framer{untyped: true}
		var got []byte
		for p := stream; len(p) > 0; {
			k := split(len(p))
			f.feed(p[:k], func(typ byte) { got = append(got, typ) })
			p = p[k:]
		}
		if string(got) != string(want) {
			t.Errorf("%s: messages %q, want %q", name, got, want)
		}
	}
}

// A deadline pgx sets to cancel a call, and clears before the read it
// cut takes the lock, re-arms the bound: that read's error is pgx's
// cancel, not the database's silence, and the connection lives on.
func TestCanceledReadIsNotSilence(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	server := <-accepted
	defer server.Close()

	silenced := false
	c := newAnswerConn(raw, time.Hour, func() { silenced = true })
	c.sent.untyped = false
	if _, err := c.Write([]byte{'Q', 0, 0, 0, 5, 0}); err != nil { // a question: an answer is owed
		t.Fatal(err)
	}
	read := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 16))
		read <- err
	}()
	time.Sleep(50 * time.Millisecond) // the read waits on the socket
	c.mu.Lock()                       // and, once that fails, on this lock
	// pgx cancels: a deadline in the past cuts the read...
	c.pgxRead, c.pgxWrite = time.Unix(1, 0), time.Unix(1, 0)
	c.Conn.SetDeadline(time.Unix(1, 0))
	time.Sleep(50 * time.Millisecond) // the socket read returns (and waits for mu)
	// ...and clears it before the read takes the lock: ours again.
	c.pgxRead, c.pgxWrite = time.Time{}, time.Time{}
	c.armRead(time.Now())
	c.mu.Unlock()
	err = <-read
	if errors.Is(err, ErrNoAnswer) || c.dead != nil || silenced {
		t.Fatalf("a read pgx canceled counted as the database's silence: %v", err)
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the read: %v, want pgx's deadline error", err)
	}
}
