package smtpd

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/textproto"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/zipgate/zipgate/internal/config"
	"github.com/zipgate/zipgate/internal/relay"
	"github.com/zipgate/zipgate/internal/spool"
)

// heldHandler holds each message until the test lets it go.
type heldHandler struct {
	started chan struct{}
	release chan struct{}
}

func (h *heldHandler) Handle(ctx context.Context, env *relay.Envelope, msg *spool.File) error {
	h.started <- struct{}{}
	select {
	case <-h.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func startServer(t *testing.T, h Handler) (*Server, string) {
	t.Helper()
	cfg := config.Defaults().SMTP
	srv, err := New(cfg, h, t.TempDir(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	return srv, ln.Addr().String()
}

// client speaks SMTP line by line, as Postfix's smtp client does.
type client struct {
	t *testing.T
	c *textproto.Conn
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &client{t: t, c: textproto.NewConn(conn)}
	c.expect(220)
	c.cmd(250, "EHLO postfix.test")
	return c
}

func (c *client) expect(code int) string {
	c.t.Helper()
	_, msg, err := c.c.ReadResponse(code)
	if err != nil {
		c.t.Fatalf("want %d: %v", code, err)
	}
	return msg
}

func (c *client) cmd(code int, line string) string {
	c.t.Helper()
	if err := c.c.PrintfLine("%s", line); err != nil {
		c.t.Fatal(err)
	}
	return c.expect(code)
}

// TestShutdownDrains: on SIGTERM a message in progress finishes with 250,
// new transactions get 421 (Postfix keeps the mail), and Shutdown returns
// only when the clients are gone and no handler runs any more.
func TestShutdownDrains(t *testing.T) {
	h := &heldHandler{started: make(chan struct{}, 1), release: make(chan struct{})}
	srv, addr := startServer(t, h)

	busy := dial(t, addr)
	idle := dial(t, addr)
	busy.cmd(250, "MAIL FROM:<a@example.jp>")
	busy.cmd(250, "RCPT TO:<b@example.com>")
	busy.cmd(354, "DATA")
	busy.c.PrintfLine("Subject: x\r\n\r\nhello\r\n.")
	<-h.started

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- srv.Shutdown(ctx)
	}()

	// Once the shutdown began, an idle connection's next transaction is
	// refused; the client goes.
	for closing := false; !closing; {
		srv.mu.Lock()
		closing = srv.closing
		srv.mu.Unlock()
		runtime.Gosched()
	}
	idle.cmd(421, "MAIL FROM:<c@example.jp>")
	idle.c.PrintfLine("QUIT")
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned while a message was in progress: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(h.release)
	busy.expect(250)
	if msg := busy.cmd(421, "MAIL FROM:<a@example.jp>"); !strings.Contains(msg, "shutting down") {
		t.Errorf("421 text %q", msg)
	}
	busy.c.PrintfLine("QUIT")
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// TestShutdownCutsWhatOutlastsTheDeadline: a handler still busy at the
// deadline is canceled, its client gets no 250, and Shutdown still waits
// for it to return.
func TestShutdownCutsWhatOutlastsTheDeadline(t *testing.T) {
	h := &heldHandler{started: make(chan struct{}, 1), release: make(chan struct{})}
	srv, addr := startServer(t, h)
	c := dial(t, addr)
	c.cmd(250, "MAIL FROM:<a@example.jp>")
	c.cmd(250, "RCPT TO:<b@example.com>")
	c.cmd(354, "DATA")
	c.c.PrintfLine("Subject: x\r\n\r\nhello\r\n.")
	<-h.started
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := srv.Shutdown(ctx); err == nil {
		t.Fatal("want the deadline error")
	}
	if code, _, err := c.c.ReadResponse(250); err == nil {
		t.Fatalf("got %d after the cut; the client must not see 250", code)
	}
}

// TestShutdownAnswersTheQueuedConnections: connections the kernel already
// took but zipgate had not accepted when it stops get a 421, not a reset
// (Postfix would log a lost connection).
func TestShutdownAnswersTheQueuedConnections(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(config.Defaults().SMTP, &heldHandler{}, t.TempDir(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	var queued []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		queued = append(queued, c)
	}
	l := &allowListener{Listener: ln, s: srv}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for i, c := range queued {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		line, err := textproto.NewReader(bufio.NewReader(c)).ReadLine()
		if err != nil || !strings.HasPrefix(line, "421 4.3.2 ") {
			t.Errorf("queued connection %d got %q, %v; want a 421", i, line, err)
		}
	}
}
