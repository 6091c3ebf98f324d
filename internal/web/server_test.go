package web

import (
	"bufio"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// serve runs f's handler behind HTTPServer with small timeouts on a real
// loopback listener and returns its address.
func (f *fixture) serve(t *testing.T, to Timeouts) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := f.srv.HTTPServer(to, log.New(io.Discard, "", 0))
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// closedWithin reports whether the server closes conn (EOF or reset)
// before limit; bytes it sends first are read and dropped.
func closedWithin(t *testing.T, conn net.Conn, limit time.Duration) bool {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(limit))
	_, err := io.Copy(io.Discard, conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false // still open when the client gave up
	}
	return true // EOF (io.Copy returns nil) or a reset
}

// TestSlowClientsAreCut: a POST that announces a body it never sends,
// a header that never ends, and an idle kept-alive connection are all
// closed by the server within its timeout (plus slack for a loaded
// machine); before, only the header had a timeout (issue 11, finding 6).
func TestSlowClientsAreCut(t *testing.T) {
	f := setup(t)
	_, token := f.newJob(t, "job1")
	const timeout = 300 * time.Millisecond
	const slack = 5 * time.Second
	addr := f.serve(t, Timeouts{ReadHeader: timeout, Read: timeout, Write: timeout, Idle: timeout})
	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}

	t.Run("a body announced and never sent", func(t *testing.T) {
		c := dial()
		io.WriteString(c, "POST /s/"+token+"/cancel HTTP/1.1\r\nHost: zipgate\r\n"+
			"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 200\r\n\r\ncsrf=")
		if !closedWithin(t, c, timeout+slack) {
			t.Fatalf("connection still open %s after the request began", timeout+slack)
		}
	})
	t.Run("a header that never ends", func(t *testing.T) {
		c := dial()
		io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: zipgate\r\n")
		if !closedWithin(t, c, timeout+slack) {
			t.Fatalf("connection still open %s after the request began", timeout+slack)
		}
	})
	t.Run("an idle kept-alive connection", func(t *testing.T) {
		c := dial()
		io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: zipgate\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Close {
			t.Fatalf("healthz: %d, close %v; want 200 on a kept-alive connection", resp.StatusCode, resp.Close)
		}
		if !closedWithin(t, c, timeout+slack) {
			t.Fatalf("idle connection still open %s after the answer", timeout+slack)
		}
	})
	t.Run("a header over the limit", func(t *testing.T) {
		c := dial()
		io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: zipgate\r\nX-Pad: "+strings.Repeat("x", 64<<10)+"\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("64 KiB header: %d, want 431", resp.StatusCode)
		}
	})
}
