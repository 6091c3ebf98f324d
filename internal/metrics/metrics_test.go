package metrics

import (
	"bytes"
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/zipgate/zipgate/internal/mailtest"
	"github.com/zipgate/zipgate/internal/relay"
)

// The class of a relay error comes from what a real next hop did.
func TestRelayClass(t *testing.T) {
	hop := mailtest.StartNextHop(t)
	// An address nobody listens on: a port just freed.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()

	send := func(addr string) error {
		c := &relay.Client{Addr: addr, HeloName: "zipgate.test", Timeout: 5 * time.Second}
		_, err := c.Send(context.Background(), &relay.Message{
			Env:  &relay.Envelope{From: "a@example.jp", Rcpts: []relay.Rcpt{{Addr: "b@example.com"}}},
			Open: func() io.Reader { return bytes.NewReader([]byte("Subject: x\r\n\r\nhi\r\n")) },
		})
		return err
	}
	for _, c := range []struct {
		fault mailtest.Fault
		addr  string
		want  string
	}{
		{addr: closed, want: "unavailable"},
		{fault: mailtest.Fault{Rcpt: &smtp.SMTPError{Code: 450, EnhancedCode: smtp.EnhancedCode{4, 2, 0}, Message: "busy"}}, want: "deferred"},
		{fault: mailtest.Fault{Data: &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "no"}}, want: "refused"},
		{fault: mailtest.Fault{Drop: true}, want: "uncertain"},
	} {
		hop.SetFault(c.fault)
		addr := c.addr
		if addr == "" {
			addr = hop.Addr
		}
		err := send(addr)
		if err == nil {
			t.Fatalf("%s: no error", c.want)
		}
		if got := RelayClass(err); got != c.want {
			t.Errorf("%v: class %q, want %q", err, got, c.want)
		}
	}
	// A nil Metrics counts nothing and does not panic.
	var m *Metrics
	m.RelayError(send(closed))
	m.Message("encrypt", nil, 1, 1, time.Second)
	m.Password("released", time.Minute)
}
