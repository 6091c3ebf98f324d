// Package gateway is the path of one message through zipgate: decide,
// rewrite into a zip, relay the message and its password mail, log one
// line. The SMTP session calls Handle once per message.
package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"text/template"
	"time"

	"github.com/zipgate/zipgate/internal/config"
	"github.com/zipgate/zipgate/internal/mimeparam"
	"github.com/zipgate/zipgate/internal/notice"
	"github.com/zipgate/zipgate/internal/password"
	"github.com/zipgate/zipgate/internal/relay"
	"github.com/zipgate/zipgate/internal/reply"
	"github.com/zipgate/zipgate/internal/rewrite"
	"github.com/zipgate/zipgate/internal/spool"
	"github.com/zipgate/zipgate/internal/zipper"
)

// Gateway holds what every message needs.
type Gateway struct {
	log       *slog.Logger
	relay     *relay.Client
	passwords *password.Generator
	templates *notice.Templates
	zipName   *template.Template
	zipOpts   zipper.Options
	limits    rewrite.Limits
	tempDir   string
	hostname  string
	pwPrefix  string
	threshold int

	// Now is the clock; tests replace it.
	Now func() time.Time
}

// New builds a gateway from a validated configuration. tempDir holds
// spool files.
func New(cfg config.Config, tempDir string, log *slog.Logger) (*Gateway, error) {
	gen, err := password.New(password.Policy{
		Length: cfg.Password.Length, Digits: cfg.Password.Digits,
		Symbols: cfg.Password.Symbols, AllowAmbiguous: cfg.Password.AllowAmbiguous,
	}, nil)
	if err != nil {
		return nil, err
	}
	tmpl, err := notice.Load(cfg.Notice.Text)
	if err != nil {
		return nil, err
	}
	zipName, err := template.New("zipname").Parse(cfg.Zip.NameTemplate)
	if err != nil {
		return nil, fmt.Errorf("zip.name_template: %w", err)
	}
	opts := zipper.Options{Method: zipper.AES256, Names: zipper.UTF8}
	if cfg.Zip.Method == "zipcrypto" {
		opts.Method = zipper.ZipCrypto
	}
	if cfg.Zip.FilenameEncoding == "cp932" {
		opts.Names = zipper.CP932
	}
	return &Gateway{
		log: log,
		relay: &relay.Client{
			Addr: cfg.Relay.NextHop, HeloName: cfg.SMTP.Hostname, Timeout: cfg.Relay.Timeout.D(),
		},
		passwords: gen,
		templates: tmpl,
		zipName:   zipName,
		zipOpts:   opts,
		limits: rewrite.Limits{
			MaxHeaderBytes: cfg.SMTP.MaxHeaderBytes, MaxDepth: cfg.SMTP.MaxMIMEDepth, MaxParts: cfg.SMTP.MaxMIMEParts,
		},
		tempDir:   tempDir,
		hostname:  cfg.SMTP.Hostname,
		pwPrefix:  cfg.Notice.PasswordSubjectPrefix,
		threshold: cfg.SMTP.SpoolMemoryBytes,
		Now:       time.Now,
	}, nil
}

// record is the one log line written per message.
type record struct {
	id, queueID, action, reason string
	env                         *relay.Envelope
	entries                     []zipper.Entry
	zipMethod                   string
}

// Handle processes one message. It returns nil only when the next hop
// accepted everything that had to go; errors are *reply.Error.
func (g *Gateway) Handle(ctx context.Context, env *relay.Envelope, msg *spool.File) (err error) {
	start := g.Now()
	rec := &record{id: newID(), env: env}
	defer func() { g.logResult(rec, start, err) }()

	pl, err := rewrite.Analyze(msg, msg.Size(), g.limits, g.tempDir)
	if err != nil {
		return refuseUnparsable(err)
	}
	hdr := pl.Root
	rec.queueID = postfixQueueID(hdr.Get("Received"))
	if pl.Pass != "" {
		rec.action, rec.reason = "pass", pl.Pass
		_, err := g.relay.Send(ctx, relay.Message{Env: env, Body: msg.Reader()})
		return err
	}
	rec.action = "encrypt"
	rec.zipMethod = map[zipper.Method]string{zipper.AES256: "aes256", zipper.ZipCrypto: "zipcrypto"}[g.zipOpts.Method]

	pw, err := g.passwords.Generate()
	if err != nil {
		return reply.Internal(err)
	}
	now := start
	zipName, err := g.renderZipName(now, rec.id)
	if err != nil {
		return reply.Internal(err)
	}

	zipFile := spool.New(g.tempDir, g.threshold)
	defer zipFile.Close()
	opts := g.zipOpts
	opts.Password, opts.ModTime = pw, now
	zw := zipper.NewWriter(zipFile, opts)
	for _, a := range pl.Attachments {
		e, err := zw.Add(a.Name, pl.Open(a))
		if err != nil {
			return reply.Internal(fmt.Errorf("zipping %q: %w", a.Name, err))
		}
		if a.Undecoded {
			g.log.Warn("attachment has an unknown transfer encoding; zipped as sent",
				"id", rec.id, "name", e.Name, "encoding", a.Part.Encoding)
		}
		rec.entries = append(rec.entries, e)
	}
	if err := zw.Close(); err != nil {
		return reply.Internal(fmt.Errorf("closing zip: %w", err))
	}

	files := make([]notice.File, len(rec.entries))
	for i, e := range rec.entries {
		files[i] = notice.File{Name: e.Name, Size: e.Size}
	}
	text, err := g.templates.Body(notice.BodyData{ZipName: zipName, Files: files})
	if err != nil {
		return reply.Internal(err)
	}
	out := spool.New(g.tempDir, g.threshold)
	defer out.Close()
	if err := pl.Write(out, rewrite.Output{
		ID: rec.id, ZipName: zipName, Zip: zipFile.Reader(), Notice: text, TempDir: g.tempDir,
	}); err != nil {
		return reply.Internal(fmt.Errorf("rewriting: %w", err))
	}

	pwMail, err := g.templates.Password(notice.PasswordMail{
		ID: rec.id, Hostname: g.hostname,
		From: hdr.Get("From"), To: hdr.Get("To"), Cc: hdr.Get("Cc"),
		Subject:   mimeparam.DecodeHeader(hdr.Get("Subject")),
		MessageID: hdr.Get("Message-ID"),
		ZipName:   zipName, Files: files, Password: pw, Sent: now, Now: g.Now(),
	}, g.pwPrefix)
	if err != nil {
		return reply.Internal(err)
	}
	// The password goes to the same recipients, without the DSN requests
	// of the original: a bounce of it would reach the sender anyway.
	pwEnv := &relay.Envelope{From: env.From}
	pwEnv.MailOpts.UTF8 = env.MailOpts.UTF8
	for _, r := range env.Rcpts {
		pwEnv.Rcpts = append(pwEnv.Rcpts, relay.Rcpt{Addr: r.Addr})
	}
	// Until release jobs are stored (delay 0), the password mail follows
	// the message on the same connection. If it fails after the message
	// went, the client retries the whole message: the recipient may see
	// a zip whose password never came, never a password without its zip.
	sent, err := g.relay.Send(ctx,
		relay.Message{Env: env, Body: out.Reader()},
		relay.Message{Env: pwEnv, Body: bytes.NewReader(pwMail)})
	if err != nil && sent == 1 {
		// Never a 5xx here: it would bounce a message that was delivered.
		return reply.Temp(reply.CodeNextHopFailed, "Next hop did not take the password mail, please try again later", err)
	}
	return err
}

func (g *Gateway) renderZipName(now time.Time, id string) (string, error) {
	var b strings.Builder
	err := g.zipName.Execute(&b, map[string]string{
		"Date": now.Format("20060102"), "Time": now.Format("150405"), "ID": id,
	})
	name := zipper.SafeName(b.String())
	if !strings.HasSuffix(strings.ToLower(name), ".zip") {
		name += ".zip"
	}
	return name, err
}

// refuseUnparsable answers a message that cannot be taken apart safely.
// Since policy says encrypt, it must not pass in the clear: it is refused
// with a reason the sender can act on.
func refuseUnparsable(err error) error {
	var text string
	switch {
	case errors.Is(err, rewrite.ErrTooDeep):
		text = "Message not sent: its MIME parts are nested too deeply to check the attachments safely"
	case errors.Is(err, rewrite.ErrTooManyParts):
		text = "Message not sent: it has too many MIME parts to check the attachments safely"
	case errors.Is(err, rewrite.ErrHeaderTooLarge):
		text = "Message not sent: a header block is too large"
	default:
		return reply.Internal(err)
	}
	return reply.Perm(reply.CodeMediaError, text, err)
}

var queueIDRe = regexp.MustCompile(`\(Postfix\)\s+with\s+\S+\s+id\s+([0-9A-Za-z]+)`)

// postfixQueueID finds the queue id in the Received field Postfix added.
func postfixQueueID(received string) string {
	if m := queueIDRe.FindStringSubmatch(received); m != nil {
		return m[1]
	}
	return ""
}

func (g *Gateway) logResult(rec *record, start time.Time, err error) {
	atts := make([]any, 0, len(rec.entries))
	for _, e := range rec.entries {
		atts = append(atts, map[string]any{
			"name": e.Name, "size": e.Size, "sha256": fmt.Sprintf("%x", e.SHA256),
		})
	}
	attrs := []any{
		"id", rec.id, "queue_id", rec.queueID, "from", rec.env.From, "rcpts", rec.env.Addrs(),
		"action", rec.action, "attachments", atts, "duration_ms", g.Now().Sub(start).Milliseconds(),
	}
	if rec.reason != "" {
		attrs = append(attrs, "reason", rec.reason)
	}
	if rec.zipMethod != "" {
		attrs = append(attrs, "zip_method", rec.zipMethod)
	}
	if err != nil {
		re := reply.From(err)
		attrs = append(attrs, "result", fmt.Sprintf("%d %d.%d.%d", re.Code, re.Enhanced[0], re.Enhanced[1], re.Enhanced[2]), "error", re.Error())
		g.log.Warn("message", attrs...)
		return
	}
	attrs = append(attrs, "result", "250")
	g.log.Info("message", attrs...)
}

func newID() string {
	var b [10]byte
	rand.Read(b[:])
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}
