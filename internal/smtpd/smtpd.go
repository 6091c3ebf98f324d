// Package smtpd is zipgate's SMTP side: the listener Postfix hands mail to.
// It is the one place where errors become SMTP replies.
package smtpd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/zipgate/zipgate/internal/config"
	"github.com/zipgate/zipgate/internal/relay"
	"github.com/zipgate/zipgate/internal/reply"
	"github.com/zipgate/zipgate/internal/spool"
)

// maxLineLength bounds one line of a command or of the message.
const maxLineLength = 1 << 20

// Handler takes one received message.
type Handler interface {
	Handle(ctx context.Context, env *relay.Envelope, msg *spool.File) error
}

// Server accepts mail from the allowed networks only.
type Server struct {
	smtp     *smtp.Server
	allowed  []netip.Prefix
	log      *slog.Logger
	ctx      context.Context
	cancel   context.CancelFunc
	spoolDir string
	spoolMem int
	maxRcpts int
	handler  Handler

	mu       sync.Mutex
	closing  bool
	drained  bool // no new message handler may start
	sessions map[*session]struct{}
	inflight sync.WaitGroup // messages being handled
}

// New makes a server; cfg must be valid. spoolDir holds DATA above the
// memory threshold.
func New(cfg config.SMTP, h Handler, spoolDir string, log *slog.Logger) (*Server, error) {
	s := &Server{log: log, spoolDir: spoolDir, spoolMem: cfg.SpoolMemoryBytes, maxRcpts: cfg.MaxRecipients,
		handler: h, sessions: map[*session]struct{}{}}
	for _, n := range cfg.AllowedNetworks {
		p, err := config.ParseNetwork(n)
		if err != nil {
			return nil, err
		}
		s.allowed = append(s.allowed, p)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	srv := smtp.NewServer(s)
	srv.Domain = cfg.Hostname
	srv.MaxMessageBytes = cfg.MaxMessageBytes
	srv.MaxRecipients = 0 // counted in Rcpt, to answer 452 as RFC 5321 asks
	// go-smtp applies this to message lines too. Real mail has lines far
	// over RFC 5321's 1000; bound them, but not that tightly.
	srv.MaxLineLength = maxLineLength
	srv.ReadTimeout = cfg.Timeout.D()
	srv.WriteTimeout = cfg.Timeout.D()
	srv.EnableSMTPUTF8 = true
	srv.EnableDSN = true
	srv.ErrorLog = slogPrinter{log}
	s.smtp = srv
	return s, nil
}

// Serve accepts connections on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	err := s.smtp.Serve(&allowListener{Listener: ln, s: s})
	if errors.Is(err, smtp.ErrServerClosed) {
		return nil
	}
	return err
}

// errShuttingDown answers new work once shutdown began; Postfix keeps the
// mail and comes back.
var errShuttingDown = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2},
	Message: "Service shutting down, try again later"}

// Shutdown drains: it stops accepting connections, answers new
// transactions with 421 (the client keeps the mail and closes), and lets
// messages in progress finish until ctx ends. Idle connections are left
// to their client (Postfix drops a cached one within seconds): closing
// them here races with a MAIL FROM on its way. Then it cuts what is left
// (those clients get no 250, so they keep the mail) and waits for the
// message handlers to return, so the store can be closed after it.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	err := s.smtp.Shutdown(ctx)
	if err != nil {
		s.cancel() // handlers still relaying give up: their clients get 451
		s.mu.Lock()
		var all []*session
		for se := range s.sessions {
			all = append(all, se)
		}
		s.mu.Unlock()
		for _, se := range all {
			se.conn.Close()
		}
	}
	s.mu.Lock()
	s.drained = true
	s.mu.Unlock()
	s.inflight.Wait()
	s.cancel()
	return err
}

// allowListener refuses clients outside the allowed networks at connect,
// whatever address zipgate listens on: it is never an open relay.
type allowListener struct {
	net.Listener
	s *Server
}

func (l *allowListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.s.isAllowed(c.RemoteAddr()) {
			return c, nil
		}
		l.s.log.Warn("refused connection from outside allowed_networks", "remote", c.RemoteAddr().String())
		fmt.Fprintf(c, "554 5.7.1 Access denied: %s is not allowed to use this gateway\r\n", hostOf(c.RemoteAddr()))
		c.Close()
	}
}

// Close answers the connections already waiting in the kernel's queue
// with 421 before it closes the listener, which would reset them: Postfix
// then logs an orderly "try again later" instead of a lost connection.
func (l *allowListener) Close() error {
	if tl, ok := l.Listener.(*net.TCPListener); ok {
		tl.SetDeadline(time.Now().Add(50 * time.Millisecond))
		for {
			c, err := tl.Accept()
			if err != nil {
				break
			}
			c.SetWriteDeadline(time.Now().Add(time.Second))
			fmt.Fprint(c, "421 4.3.2 Service shutting down, try again later\r\n")
			c.Close()
		}
	}
	return l.Listener.Close()
}

func (s *Server) isAllowed(a net.Addr) bool {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return false
	}
	ip := ap.Addr().Unmap()
	for _, p := range s.allowed {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func hostOf(a net.Addr) string {
	if h, _, err := net.SplitHostPort(a.String()); err == nil {
		return h
	}
	return a.String()
}

// NewSession implements smtp.Backend.
func (s *Server) NewSession(c *smtp.Conn) (smtp.Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return nil, errShuttingDown
	}
	se := &session{s: s, conn: c}
	s.sessions[se] = struct{}{}
	return se, nil
}

type session struct {
	s    *Server
	conn *smtp.Conn
	env  *relay.Envelope
}

func (se *session) Reset() { se.env = nil }

func (se *session) Logout() error {
	se.s.mu.Lock()
	delete(se.s.sessions, se)
	se.s.mu.Unlock()
	return nil
}

func (se *session) Mail(from string, opts *smtp.MailOptions) error {
	se.s.mu.Lock()
	closing := se.s.closing
	se.s.mu.Unlock()
	if closing {
		return errShuttingDown
	}
	se.env = &relay.Envelope{From: from}
	if opts != nil {
		se.env.MailOpts = *opts
	}
	return nil
}

func (se *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	if se.env == nil {
		return &smtp.SMTPError{Code: 503, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "MAIL FROM first"}
	}
	if len(se.env.Rcpts) >= se.s.maxRcpts {
		return toSMTP(&reply.Error{Code: 452, Enhanced: reply.CodeTooManyRcpts, Text: "Too many recipients"})
	}
	r := relay.Rcpt{Addr: to}
	if opts != nil {
		r.Opts = *opts
	}
	se.env.Rcpts = append(se.env.Rcpts, r)
	return nil
}

func (se *session) Data(r io.Reader) error {
	if se.env == nil || len(se.env.Rcpts) == 0 {
		return &smtp.SMTPError{Code: 503, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "RCPT TO first"}
	}
	se.s.mu.Lock()
	if se.s.drained {
		se.s.mu.Unlock()
		return errShuttingDown
	}
	se.s.inflight.Add(1)
	se.s.mu.Unlock()
	defer se.s.inflight.Done()
	msg := spool.New(se.s.spoolDir, se.s.spoolMem)
	defer msg.Close()
	if _, err := io.Copy(msg, r); err != nil {
		// Refused while it was still arriving: the gateway never saw it,
		// so its one log line is written here.
		var reason *smtp.SMTPError
		switch {
		case errors.As(err, &reason): // the size limit: go-smtp's own 552
		case errors.Is(err, smtp.ErrTooLongLine):
			reason = toSMTP(reply.Perm(reply.CodeMediaError,
				fmt.Sprintf("Message not sent: a line is longer than %d bytes", maxLineLength), err))
		default:
			reason = toSMTP(reply.Temp(reply.CodeOther, "Error receiving the message, please try again", err))
		}
		se.s.log.Warn("message", "from", se.env.From, "rcpts", se.env.Addrs(), "action", "refused",
			"result", fmt.Sprintf("%d %d.%d.%d", reason.Code, reason.EnhancedCode[0], reason.EnhancedCode[1], reason.EnhancedCode[2]),
			"error", err.Error())
		return reason
	}
	if err := se.s.handler.Handle(se.s.ctx, se.env, msg); err != nil {
		return toSMTP(err) // never a typed nil: go-smtp would answer 554
	}
	return nil
}

// toSMTP is the boundary: any (non-nil) error becomes an unwrapped *smtp.SMTPError,
// an unclassified one a 451 with a generic text (details are logged by
// the handler).
func toSMTP(err error) *smtp.SMTPError {
	re := reply.From(err)
	return &smtp.SMTPError{Code: re.Code, EnhancedCode: smtp.EnhancedCode(re.Enhanced), Message: re.Text}
}

// slogPrinter routes go-smtp's own messages to the logger.
type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Printf(format string, v ...any) { p.log.Warn(fmt.Sprintf(format, v...)) }
func (p slogPrinter) Println(v ...any)               { p.log.Warn(fmt.Sprint(v...)) }
