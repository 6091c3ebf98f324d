// Package mailtest has the real parts tests run against: a next-hop SMTP
// server on loopback that records what it got and can be told to fail,
// and a client that submits a message as Postfix would.
package mailtest

import (
	"bytes"
	"io"
	"net"
	"sync"
	"testing"

	"github.com/emersion/go-smtp"
)

// Received is one message the next hop accepted.
type Received struct {
	From     string
	MailOpts smtp.MailOptions
	Rcpts    []string
	RcptOpts []smtp.RcptOptions
	Data     []byte
}

// Fault tells the next hop how to fail; the zero value accepts all.
type Fault struct {
	Rcpt *smtp.SMTPError // answer to RCPT
	// RcptAddr limits Rcpt to this one address; empty means every one.
	RcptAddr string
	Data     *smtp.SMTPError // answer after DATA
	// DataAfter lets this many messages through before Data applies.
	DataAfter int
	// Drop closes the connection instead of answering DATA.
	Drop bool
	// BeforeReply, when set, runs after the whole message arrived and
	// before the answer to it: a test acts while a mail is on its way.
	BeforeReply func()
}

// NextHop is a recording go-smtp server on 127.0.0.1.
type NextHop struct {
	Addr string

	mu       sync.Mutex
	fault    Fault
	received []Received
	accepted int
	sessions int
}

// StartNextHop starts a next hop for the test; it stops with the test.
func StartNextHop(t testing.TB) *NextHop {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &NextHop{Addr: ln.Addr().String()}
	srv := smtp.NewServer(h)
	srv.Domain = "nexthop.test"
	srv.EnableSMTPUTF8 = true
	srv.EnableDSN = true
	srv.ErrorLog = discard{}
	srv.MaxLineLength = 1 << 20 // Postfix takes long lines too
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return h
}

// SetFault changes how the next hop answers from now on.
func (h *NextHop) SetFault(f Fault) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.fault = f
	h.accepted = 0
}

// Messages returns what was accepted so far.
func (h *NextHop) Messages() []Received {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Received(nil), h.received...)
}

// Sessions is how many SMTP sessions clients opened so far.
func (h *NextHop) Sessions() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.sessions
}

func (h *NextHop) NewSession(c *smtp.Conn) (smtp.Session, error) {
	h.mu.Lock()
	h.sessions++
	h.mu.Unlock()
	return &hopSession{h: h, conn: c}, nil
}

type hopSession struct {
	h    *NextHop
	conn *smtp.Conn
	msg  Received
}

func (s *hopSession) Reset()        { s.msg = Received{} }
func (s *hopSession) Logout() error { return nil }

func (s *hopSession) Mail(from string, opts *smtp.MailOptions) error {
	s.msg = Received{From: from}
	if opts != nil {
		s.msg.MailOpts = *opts
	}
	return nil
}

func (s *hopSession) Rcpt(to string, opts *smtp.RcptOptions) error {
	s.h.mu.Lock()
	f := s.h.fault
	s.h.mu.Unlock()
	if f.Rcpt != nil && (f.RcptAddr == "" || f.RcptAddr == to) {
		return f.Rcpt
	}
	s.msg.Rcpts = append(s.msg.Rcpts, to)
	var o smtp.RcptOptions
	if opts != nil {
		o = *opts
	}
	s.msg.RcptOpts = append(s.msg.RcptOpts, o)
	return nil
}

func (s *hopSession) Data(r io.Reader) error {
	var b bytes.Buffer
	if _, err := io.Copy(&b, r); err != nil {
		return err
	}
	s.h.mu.Lock()
	hook := s.h.fault.BeforeReply
	s.h.mu.Unlock()
	if hook != nil {
		hook()
	}
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	f := s.h.fault
	if f.Drop {
		s.conn.Conn().Close()
		return nil
	}
	if f.Data != nil && s.h.accepted >= f.DataAfter {
		return f.Data
	}
	s.h.accepted++
	s.msg.Data = b.Bytes()
	s.h.received = append(s.h.received, s.msg)
	return nil
}

type discard struct{}

func (discard) Printf(string, ...any) {}
func (discard) Println(...any)        {}
