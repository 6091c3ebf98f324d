// Package gateway is the path of one message through zipgate: decide,
// rewrite into a zip, store the release job of its password, relay the
// message, log one line. The SMTP session calls Handle once per message.
package gateway

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
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
	"github.com/zipgate/zipgate/internal/store"
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
	threshold int
	store     store.Store
	wake      func()
	delay     time.Duration

	// Now is the clock; tests replace it.
	Now func() time.Time
}

// New builds a gateway from a validated configuration. tempDir holds
// spool files; release jobs go to st, and wake tells the scheduler.
func New(cfg config.Config, tempDir string, st store.Store, tmpl *notice.Templates, next *relay.Client, wake func(), log *slog.Logger) (*Gateway, error) {
	gen, err := password.New(password.Policy{
		Length: cfg.Password.Length, Digits: cfg.Password.Digits,
		Symbols: cfg.Password.Symbols, AllowAmbiguous: cfg.Password.AllowAmbiguous,
	}, nil)
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
		log:       log,
		relay:     next,
		passwords: gen,
		templates: tmpl,
		zipName:   zipName,
		zipOpts:   opts,
		limits: rewrite.Limits{
			MaxHeaderBytes: cfg.SMTP.MaxHeaderBytes, MaxDepth: cfg.SMTP.MaxMIMEDepth, MaxParts: cfg.SMTP.MaxMIMEParts,
			MaxTotalHeaderBytes: cfg.SMTP.MaxTotalHeaderBytes, MaxAttachments: cfg.SMTP.MaxAttachments,
		},
		tempDir:   tempDir,
		threshold: cfg.SMTP.SpoolMemoryBytes,
		store:     st,
		wake:      wake,
		delay:     cfg.Release.Delay.D(),
		Now:       time.Now,
	}, nil
}

// record is the one log line written per message.
type record struct {
	id, queueID, action, reason string
	env                         *relay.Envelope
	entries                     []zipper.Entry
	zipMethod                   string
	due                         time.Time // when the password goes
	dkim                        string    // what DKIM signing did
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
		_, err := g.relay.Send(ctx, &relay.Message{Env: env, Open: func() io.Reader { return msg.Reader() }})
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
	// Buffered: the writers below make many small writes.
	zbuf := bufio.NewWriterSize(zipFile, 64<<10)
	zw := zipper.NewWriter(zbuf, opts)
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
	if err := zbuf.Flush(); err != nil {
		return reply.Internal(fmt.Errorf("writing zip: %w", err))
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
	obuf := bufio.NewWriterSize(out, 64<<10)
	if err := pl.Write(obuf, rewrite.Output{
		ID: rec.id, ZipName: zipName, Zip: zipFile.Reader(), Notice: text, TempDir: g.tempDir,
		DropField: g.brokenSignature,
	}); err != nil {
		return reply.Internal(fmt.Errorf("rewriting: %w", err))
	}
	if err := obuf.Flush(); err != nil {
		return reply.Internal(fmt.Errorf("rewriting: %w", err))
	}

	// The release job is durable (Pending) before the message leaves, and
	// discarded if it does not leave, so no password goes for a message
	// that was not delivered. The scheduler only sends Scheduled jobs.
	job := &store.Job{
		ID: rec.id, Sender: env.From, Rcpts: env.Addrs(),
		HeaderFrom: hdr.Get("From"), HeaderTo: hdr.Get("To"), HeaderCc: hdr.Get("Cc"),
		Subject: mimeparam.DecodeHeader(hdr.Get("Subject")), MessageID: hdr.Get("Message-ID"),
		ZipName: zipName, Password: pw, CreatedAt: now, DueAt: now.Add(g.delay),
	}
	for _, e := range rec.entries {
		job.Files = append(job.Files, store.File{Name: e.Name, Size: e.Size, SHA256: fmt.Sprintf("%x", e.SHA256)})
	}
	if err := g.store.Create(ctx, job); err != nil {
		return reply.Internal(fmt.Errorf("storing the release job: %w", err))
	}
	// The job is scheduled the moment the next hop says 250, before QUIT,
	// so a crash leaves as small a window as it can (Recover covers it).
	// (An admin may have canceled it by id meanwhile: that stands.)
	accepted := false
	rewritten := &relay.Message{Env: env, Open: func() io.Reader { return out.Reader() }, Sign: true,
		Accepted: func() {
			accepted = true
			if err := g.store.Schedule(context.WithoutCancel(ctx), job.ID); err != nil && !errors.Is(err, store.ErrAlreadyCanceled) {
				g.log.Error("could not schedule the release job; it is sent after the next restart", "id", job.ID, "error", err.Error())
			}
		}}
	if _, err := g.relay.Send(ctx, rewritten); err != nil && !accepted {
		if errors.Is(err, relay.ErrUncertain) {
			// It may have left: its password must not be lost. If it did
			// not, Postfix's retry brings a new zip with its own password.
			rewritten.Accepted()
			return err
		}
		if derr := g.store.Discard(context.WithoutCancel(ctx), job.ID); derr != nil {
			g.log.Error("could not discard the release job of a message that did not leave; it will be sent after a restart",
				"id", job.ID, "error", derr.Error())
		}
		return err
	}
	// From the 250 on the answer is 250 whatever happens (a failed QUIT,
	// say), or Postfix would send the message twice.
	rec.due, rec.dkim = job.DueAt, rewritten.DKIM
	g.wake()
	return nil
}

// brokenSignature drops, from a message zipgate rewrites, a DKIM signature
// made for a domain zipgate signs for: the rewrite breaks it, and zipgate's
// own signature takes its place. Other domains' signatures stay (they
// fail, but say who sent it to us).
func (g *Gateway) brokenSignature(name, value string) bool {
	if !strings.EqualFold(name, "DKIM-Signature") {
		return false
	}
	for _, tag := range strings.Split(value, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(tag), "=")
		if ok && strings.TrimSpace(k) == "d" {
			return g.relay.DKIM.SignsFor(strings.Join(strings.Fields(v), ""))
		}
	}
	return false
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
	case errors.Is(err, rewrite.ErrHeadersTooLarge):
		text = "Message not sent: its MIME parts have too many header lines in total to check the attachments safely"
	case errors.Is(err, rewrite.ErrTooManyFiles):
		text = "Message not sent: it has too many attachments to put into one zip"
	default:
		return reply.Internal(err)
	}
	return reply.Perm(reply.CodeMediaError, text, err)
}

// Matches "(Postfix) with ESMTP id X" and, for mail from sendmail(1),
// "(Postfix, from userid 1000) id X".
var queueIDRe = regexp.MustCompile(`\(Postfix[^)]*\)(?:\s+with\s+\S+)?\s+id\s+([0-9A-Za-z]+)`)

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
	if rec.dkim != "" {
		attrs = append(attrs, "dkim", rec.dkim)
	}
	if !rec.due.IsZero() {
		attrs = append(attrs, "password_due", rec.due.Format(time.RFC3339))
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
