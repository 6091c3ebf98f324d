// Package relay hands mail to the next hop (Postfix's reinjection smtpd)
// over SMTP, passing the envelope's parameters on so Postfix neither
// downgrades the mail nor loses delivery status notifications.
package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/zipgate/zipgate/internal/dotstuff"
	"github.com/zipgate/zipgate/internal/reply"
)

// Envelope is the SMTP envelope of one message.
type Envelope struct {
	From     string
	MailOpts smtp.MailOptions
	Rcpts    []Rcpt
}

// Rcpt is one recipient with its DSN parameters.
type Rcpt struct {
	Addr string
	Opts smtp.RcptOptions
}

// Addrs returns the recipient addresses.
func (e *Envelope) Addrs() []string {
	out := make([]string, len(e.Rcpts))
	for i, r := range e.Rcpts {
		out[i] = r.Addr
	}
	return out
}

// Message is an envelope and the content to send with it.
type Message struct {
	Env *Envelope
	// Open returns the content from its start; it is called twice when
	// the message is signed (hash, then send).
	Open func() io.Reader
	// Sign asks for a DKIM signature for the domain of the From field,
	// made as the last step, when the client has a key for it.
	Sign bool
	// DKIM is set by Send: what signing did, for the log.
	DKIM string
	// Accepted, when set, runs right after the next hop's 250 for this
	// message, before anything else is said on the connection: recording
	// the delivery there keeps the crash window as short as it can be.
	Accepted func()
}

// ErrUncertain marks a failure after the whole message was sent but
// before the next hop answered: it may have taken the message.
var ErrUncertain = errors.New("no reply after the end of the message")

// Client sends to one next hop.
type Client struct {
	Addr     string        // host:port
	HeloName string        // our name in EHLO
	Timeout  time.Duration // per command, and for the whole DATA
	DKIM     *DKIM         // signing keys; nil signs nothing
}

// Send delivers the messages in order over one connection and returns how
// many the next hop accepted; err is nil only when it accepted every one.
// Errors are *reply.Error: a 5xx refusal from the next hop is passed on as
// it is (the sender should read it); anything else is a 451 so the client
// keeps the mail.
func (c *Client) Send(ctx context.Context, msgs ...*Message) (accepted int, err error) {
	d := net.Dialer{Timeout: c.Timeout}
	conn, err := d.DialContext(ctx, "tcp", c.Addr)
	if err != nil {
		return 0, reply.Temp(reply.CodeNextHopDown, "Next hop unavailable, please try again later", err)
	}
	// The deadline bounds the whole exchange; ctx cancellation closes it.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()

	cl := smtp.NewClient(conn)
	cl.CommandTimeout = c.Timeout
	cl.SubmissionTimeout = c.Timeout
	defer cl.Close()
	if err := cl.Hello(c.HeloName); err != nil {
		return 0, classify(err, "greeting")
	}
	for i, m := range msgs {
		if i > 0 {
			if err := cl.Reset(); err != nil {
				return i, classify(err, "RSET")
			}
		}
		if err := c.send(conn, cl, m); err != nil {
			return i, err
		}
	}
	_ = cl.Quit() // everything was accepted; a failed QUIT changes nothing
	return len(msgs), nil
}

func (c *Client) send(conn net.Conn, cl *smtp.Client, m *Message) error {
	body := m.Open()
	if m.Sign {
		signed, status, err := c.DKIM.Sign(m.Open)
		if err != nil {
			return reply.Internal(fmt.Errorf("dkim: %w", err))
		}
		body, m.DKIM = signed, status
	}
	opts := m.Env.MailOpts
	opts.Size = 0 // the client's SIZE was for the message before the rewrite
	if ok, _ := cl.Extension("SMTPUTF8"); !ok {
		opts.UTF8 = false
	}
	if ok, _ := cl.Extension("DSN"); !ok {
		opts.Return, opts.EnvelopeID = "", ""
	}
	if err := cl.Mail(m.Env.From, &opts); err != nil {
		return classify(err, "MAIL FROM")
	}
	for _, r := range m.Env.Rcpts {
		ro := r.Opts
		if ok, _ := cl.Extension("DSN"); !ok {
			ro.Notify, ro.OriginalRecipient, ro.OriginalRecipientType = nil, "", ""
		}
		if err := cl.Rcpt(r.Addr, &ro); err != nil {
			return classify(err, "RCPT TO <"+r.Addr+">")
		}
	}
	w, err := cl.Data()
	if err != nil {
		return classify(err, "DATA")
	}
	if err := dotstuff.Write(conn, w, body); err != nil {
		w.Close()
		return classify(err, "sending the message")
	}
	if err := w.Close(); err != nil {
		var se *smtp.SMTPError
		if !errors.As(err, &se) {
			// The final dot went but no reply came: the next hop may
			// have queued the message.
			err = errors.Join(ErrUncertain, err)
		}
		return classify(err, "end of DATA")
	}
	if m.Accepted != nil {
		m.Accepted()
	}
	return nil
}

// classify turns a client error into the reply for our own client.
func classify(err error, stage string) error {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		if se.Code/100 == 5 {
			enh := [3]int(se.EnhancedCode)
			if enh[0] != 5 {
				enh = [3]int{5, 0, 0}
			}
			return &reply.Error{Code: se.Code, Enhanced: enh, Text: se.Message,
				Err: fmt.Errorf("next hop refused %s: %w", stage, err)}
		}
		return reply.Temp(reply.CodeNextHopFailed, "Next hop deferred the message, please try again later",
			fmt.Errorf("next hop deferred %s: %w", stage, err))
	}
	return reply.Temp(reply.CodeNextHopFailed, "Connection to next hop failed, please try again later",
		fmt.Errorf("next hop %s: %w", stage, err))
}
