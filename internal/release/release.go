// Package release sends the password mails when they are due, and tells
// the sender: a notice with the link to cancel or release now when the
// message left, and a confirmation when the password went (or was
// canceled, or refused for good).
package release

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/zipgate/zipgate/internal/metrics"
	"github.com/zipgate/zipgate/internal/notice"
	"github.com/zipgate/zipgate/internal/policy"
	"github.com/zipgate/zipgate/internal/relay"
	"github.com/zipgate/zipgate/internal/reply"
	"github.com/zipgate/zipgate/internal/store"
)

// Sender hands mail to the next hop (relay.Client in production).
type Sender interface {
	Send(ctx context.Context, msgs ...*relay.Message) (int, error)
}

// Scheduler runs the release jobs of one store.
type Scheduler struct {
	Store      store.Store
	Relay      Sender
	Templates  *notice.Templates
	Log        *slog.Logger
	Hostname   string
	BaseURL    string // of the sender page
	PwPrefix   string // subject prefix of the password mail
	NoticeFrom string // From of sender notices; "" = postmaster@sender's domain
	Retention  time.Duration
	// AuditRetention keeps message records and their history (the
	// audit trail) this long; 0: as long as the jobs (Retention).
	AuditRetention time.Duration
	// Metrics counts password mails (nil: nothing).
	Metrics *metrics.Metrics

	// Now is the clock; tests move it instead of sleeping.
	Now func() time.Time
	// Poll bounds how long the scheduler sleeps, so that changes made by
	// the CLI in another process are seen.
	Poll time.Duration

	Waker     // a new job, a cancel, release now
	lastPurge time.Time
}

// New returns a scheduler with the real clock.
func New(st store.Store, r Sender, t *notice.Templates, log *slog.Logger) *Scheduler {
	return &Scheduler{Store: st, Relay: r, Templates: t, Log: log, Now: time.Now, Poll: 5 * time.Second,
		Retention: 90 * 24 * time.Hour, Waker: NewWaker()}
}

// Recover carries on with jobs a crash left behind. Call it before the
// SMTP side takes mail, so no new Pending job is promoted by mistake.
func (s *Scheduler) Recover(ctx context.Context) error {
	n, err := s.Store.Recover(ctx)
	if err == nil && n > 0 {
		s.Log.Info("resumed release jobs left by a stop", "jobs", n)
	}
	return err
}

// Run works until ctx ends.
func (s *Scheduler) Run(ctx context.Context) error {
	Loop(ctx, "release scheduler", s.RunOnce, s.Waker, s.Poll, s.Now, s.Log)
	return nil
}

// RunOnce does all the work due now and returns when more will be due.
// A failure to reach the next hop is recorded on the job and retried
// later; the error returned is one that stopped the pass.
func (s *Scheduler) RunOnce(ctx context.Context) (time.Time, error) {
	now := s.Now()
	jobs, err := s.Store.Work(ctx, now, 100)
	if err != nil {
		return time.Time{}, err
	}
	firstErr := Each(ctx, jobs, func(j *store.Job) error { return s.work(ctx, j, now) })
	if now.Sub(s.lastPurge) > time.Hour {
		if n, err := s.Store.Purge(ctx, now.Add(-s.Retention)); err != nil {
			firstErr = errors.Join(firstErr, err)
		} else {
			s.lastPurge = now
			if n > 0 {
				s.Log.Info("purged finished release jobs", "jobs", n, "older_than", now.Add(-s.Retention))
			}
		}
		keep := s.AuditRetention
		if keep <= 0 {
			keep = s.Retention
		}
		if n, err := s.Store.PurgeAudit(ctx, now.Add(-keep)); err != nil {
			firstErr = errors.Join(firstErr, err)
		} else if n > 0 {
			s.Log.Info("purged the audit trail", "events", n, "older_than", now.Add(-keep))
		}
	}
	next, err := s.Store.NextWake(ctx)
	return next, errors.Join(firstErr, err)
}

// work does what one job needs now. A notice that cannot go yet never
// holds back the password: it is retried on the next pass.
func (s *Scheduler) work(ctx context.Context, j *store.Job, now time.Time) error {
	final := j.State == store.Released || j.State == store.Canceled || j.State == store.Failed
	var noticeErr error
	if !j.NoticeSent {
		if final {
			// Finished before the notice went: the confirmation says it all.
			if err := s.Store.MarkNoticeSent(ctx, j.ID); err != nil {
				return err
			}
		} else {
			noticeErr = s.toSender(ctx, j, now, s.sendNotice)
		}
	}
	if j.State == store.Scheduled && !j.DueAt.After(now) && !j.NextAttempt.After(now) && !j.DueAt.IsZero() {
		if err := s.release(ctx, j, now); err != nil {
			return errors.Join(noticeErr, err)
		}
		// What follows a password mail is done even when stopping, so the
		// sender is not told twice after the restart.
		ctx := context.WithoutCancel(ctx)
		j, err := s.Store.Get(ctx, j.ID)
		if err != nil {
			return errors.Join(noticeErr, err)
		}
		final = j.State == store.Released || j.State == store.Failed
		if final && !j.ConfirmSent && !j.NoticeNext.After(now) {
			return errors.Join(noticeErr, s.toSender(ctx, j, now, s.sendConfirmation))
		}
		return noticeErr
	}
	if final && !j.ConfirmSent && !j.NoticeNext.After(now) {
		return errors.Join(noticeErr, s.toSender(ctx, j, now, s.sendConfirmation))
	}
	return noticeErr
}

// toSender sends a notice or confirmation; when it cannot go now, the
// job's mail to the sender waits with backoff (30 s doubling to 30 min),
// so a sender's mailbox that keeps deferring never crowds out the
// passwords that are due.
func (s *Scheduler) toSender(ctx context.Context, j *store.Job, now time.Time,
	send func(context.Context, *store.Job, time.Time) error) error {
	err := send(ctx, j, now)
	if err == nil {
		return nil
	}
	next := now.Add(Backoff(j.NoticeAttempts))
	if merr := s.Store.MarkNoticeRetry(context.WithoutCancel(ctx), j.ID, next); merr != nil {
		return errors.Join(err, merr)
	}
	s.Log.Warn("mail to the sender deferred", "id", j.ID, "to", j.Sender, "error", err.Error(), "retry_at", next)
	return nil
}

// release sends the password mail once: the job is claimed first, so a
// cancel that comes while the mail is on its way is refused.
func (s *Scheduler) release(ctx context.Context, j *store.Job, now time.Time) error {
	// The clock of the claim, not of the pass: a pass can be long, and
	// the lease a claim writes runs from it.
	if err := s.Store.Claim(ctx, j.ID, s.Now()); err != nil {
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrFinished) ||
			errors.Is(err, store.ErrAlreadyCanceled) || errors.Is(err, store.ErrAlreadyReleased) || errors.Is(err, store.ErrSending) {
			return nil // canceled or taken meanwhile
		}
		return err
	}
	// The password mail goes as from the sender to the recipients of the
	// zip, threaded under the message; or, with password_to sender, from
	// zipgate to the sender, who passes it on by another channel.
	name, to := notice.Password, j.Rcpts
	h := notice.Header{ID: j.ID, Hostname: s.Hostname, From: j.HeaderFrom, To: j.HeaderTo, Cc: j.HeaderCc,
		Subject: s.PwPrefix + j.Subject, InReplyTo: j.MessageID, Kind: "password", Date: now}
	data := notice.Data{Subject: j.Subject, ZipName: j.ZipName, Files: files(j), Password: j.Password,
		Sent: j.CreatedAt, Rcpts: j.Rcpts, PasswordTo: string(j.PasswordTo)}
	data.SetLanguage(j.Language)
	link, err := s.linkOf(ctx, j)
	if err != nil {
		return errors.Join(err, s.Store.MarkRetry(ctx, j.ID, now.Add(Backoff(j.Attempts)), err.Error()))
	}
	if link != nil {
		name = notice.PasswordLink // the password opens the download page
	}
	if j.PasswordTo == policy.ToSender {
		if j.Sender == "" {
			return s.Store.MarkFailed(ctx, j.ID, now, "the message had no sender to send the password to")
		}
		name, to = notice.PasswordSender, []string{j.Sender}
		if link != nil {
			name = notice.PasswordLinkSender
		}
		h.From, h.To, h.Cc = NoticeFrom(s.NoticeFrom, j.Sender), j.Sender, ""
		data.SetLanguage("") // the sender's language, as in the other notices
	}
	msg, err := s.Templates.Mail(name, h, data)
	if err != nil {
		return errors.Join(err, s.Store.MarkRetry(ctx, j.ID, now.Add(Backoff(j.Attempts)), err.Error()))
	}
	env := &relay.Envelope{From: j.Sender}
	for _, r := range to {
		env.Rcpts = append(env.Rcpts, relay.Rcpt{Addr: r})
	}
	env.MailOpts.UTF8 = NeedsUTF8(append([]string{j.Sender}, to...)...)
	// Marked released the moment the next hop says 250 (before QUIT): a
	// crash in between is the one window in which a password goes twice.
	var markErr error
	marked := false
	// A mail on its way is not cut when zipgate stops: cut after its data,
	// it might have been taken, and it would go again after the restart.
	// The relay's timeout bounds it.
	_, err = s.Relay.Send(context.WithoutCancel(ctx), &relay.Message{Env: env, Open: func() io.Reader { return bytes.NewReader(msg) }, Sign: true,
		Accepted: func() { marked, markErr = true, s.Store.MarkReleased(context.WithoutCancel(ctx), j.ID, now) }})
	if marked {
		if markErr != nil {
			return markErr
		}
		// A failure after the 250 (say, at QUIT) does not undo the release.
		s.note(ctx, j, "password_released", "to "+strings.Join(to, ", "), nil)
		s.Log.Info("password released", "id", j.ID, "from", j.Sender, "rcpts", to, "zip", j.ZipName,
			"password_to", string(orRecipient(j.PasswordTo)))
		return nil
	}
	re := reply.From(err)
	ctx = context.WithoutCancel(ctx) // the job is claimed: record what happened
	if !re.Temporary() {
		s.Log.Warn("password mail refused for good", "id", j.ID, "error", re.Error())
		s.note(ctx, j, "password_failed", fmt.Sprintf("%d %s", re.Code, re.Text), err)
		return s.Store.MarkFailed(ctx, j.ID, now, fmt.Sprintf("%d %s", re.Code, re.Text))
	}
	s.note(ctx, j, "password_deferred", fmt.Sprintf("%d %s", re.Code, re.Text), err)
	next := now.Add(Backoff(j.Attempts))
	s.Log.Warn("password mail deferred", "id", j.ID, "error", re.Error(), "retry_at", next)
	return s.Store.MarkRetry(ctx, j.ID, next, fmt.Sprintf("%d %s", re.Code, re.Text))
}

// linkOf returns the download link of a linked copy's job, nil for a
// zip's.
func (s *Scheduler) linkOf(ctx context.Context, j *store.Job) (*store.Link, error) {
	l, err := s.Store.GetLink(ctx, j.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	return l, err
}

// sendNotice tells the sender the message left and when the password
// goes, with a fresh link to the sender page; only its hash is kept.
func (s *Scheduler) sendNotice(ctx context.Context, j *store.Job, now time.Time) error {
	token, hash, err := NewToken()
	if err != nil {
		return err
	}
	if err := s.Store.SetToken(ctx, j.ID, hash); err != nil {
		return err
	}
	data := s.data(j)
	data.Link = strings.TrimRight(s.BaseURL, "/") + "/s/" + token
	subject := "[zipgate] " + cmp.Or(j.Subject, j.ZipName)
	name := notice.SenderScheduled
	if link, err := s.linkOf(ctx, j); err != nil {
		return err
	} else if link != nil {
		name, data.Expires, data.Auth = notice.SenderLink, link.ExpiresAt, link.Auth
	}
	if err := s.notify(ctx, j, name, subject, data, now); err != nil {
		return err
	}
	s.note(ctx, j, "notice_sent", "to "+j.Sender, nil)
	return s.Store.MarkNoticeSent(ctx, j.ID)
}

func (s *Scheduler) sendConfirmation(ctx context.Context, j *store.Job, now time.Time) error {
	name := map[store.State]string{store.Released: notice.SenderReleased, store.Canceled: notice.SenderCanceled, store.Failed: notice.SenderFailed}[j.State]
	if name == "" {
		return nil
	}
	data := s.data(j)
	data.When, data.Reason = j.FinishedAt, j.LastError
	subject := "[zipgate] " + string(j.State) + ": " + cmp.Or(j.Subject, j.ZipName)
	if err := s.notify(ctx, j, name, subject, data, now); err != nil {
		return err
	}
	s.note(ctx, j, "confirmation_sent", string(j.State)+", to "+j.Sender, nil)
	return s.Store.MarkConfirmSent(ctx, j.ID)
}

// note adds a line to the history of j's message and counts password
// mails in the metrics (relayErr: what the next hop did, if it failed).
// The history is the audit's: a store that cannot write it costs a log
// line, never the password mail.
func (s *Scheduler) note(ctx context.Context, j *store.Job, event, detail string, relayErr error) {
	now := s.Now()
	switch event {
	case "password_released":
		s.Metrics.Password("released", now.Sub(j.CreatedAt))
	case "password_failed":
		s.Metrics.Password("failed", 0)
	case "password_deferred":
		s.Metrics.Password("deferred", 0)
	}
	s.Metrics.RelayError(relayErr)
	msg := j.Message
	if msg == "" {
		msg = j.ID // a job stored before jobs named their message: the first job has its id
	}
	e := store.Event{Message: msg, At: now, Event: event, Actor: "zipgate", Via: "scheduler",
		Detail: "job " + j.ID + ": " + detail}
	if err := s.Store.AddEvent(context.WithoutCancel(ctx), e); err != nil {
		s.Log.Warn("could not write the message's history", "id", j.ID, "event", event, "error", err.Error())
	}
}

// notify mails the sender; a null envelope sender, so that a notice that
// cannot be delivered does not bounce back into a loop.
func (s *Scheduler) notify(ctx context.Context, j *store.Job, name, subject string, data notice.Data, now time.Time) error {
	if j.Sender == "" {
		return nil // the original was itself a bounce: nobody to tell
	}
	msg, err := s.Templates.Mail(name, notice.Header{
		ID: j.ID, Hostname: s.Hostname, From: NoticeFrom(s.NoticeFrom, j.Sender), To: j.Sender, Subject: subject,
		InReplyTo: j.MessageID, Kind: "notice", Date: now,
	}, data)
	if err != nil {
		return err
	}
	env := &relay.Envelope{Rcpts: []relay.Rcpt{{Addr: j.Sender}}}
	env.MailOpts.UTF8 = NeedsUTF8(j.Sender)
	if _, err := s.Relay.Send(context.WithoutCancel(ctx), &relay.Message{Env: env, Open: func() io.Reader { return bytes.NewReader(msg) }, Sign: true}); err != nil {
		if re := reply.From(err); !re.Temporary() {
			// Refused for good: retrying would not help; the log keeps it.
			s.Log.Warn("notice to the sender refused", "id", j.ID, "to", j.Sender, "template", name, "error", re.Error())
			return nil
		}
		return fmt.Errorf("notice to %s for job %s: %w", j.Sender, j.ID, err)
	}
	return nil
}

// NoticeFrom is the From of what zipgate itself writes about a sender's
// mail: the configured one, or postmaster at the sender's domain.
func NoticeFrom(configured, sender string) string {
	if configured != "" {
		return configured
	}
	return "zipgate <postmaster@" + cmp.Or(relay.DomainOf(sender), "localhost") + ">"
}

// data fills the sender notices, in the default language: they go to
// the sender, whatever the recipients' domain reads.
func (s *Scheduler) data(j *store.Job) notice.Data {
	return notice.Data{Subject: j.Subject, ZipName: j.ZipName, Files: files(j), Rcpts: j.Rcpts,
		Sent: j.CreatedAt, Due: j.DueAt, PasswordTo: string(orRecipient(j.PasswordTo))}
}

func orRecipient(p policy.PasswordTo) policy.PasswordTo {
	if p == "" {
		return policy.ToRecipient
	}
	return p
}

func files(j *store.Job) []notice.File {
	out := make([]notice.File, len(j.Files))
	for i, f := range j.Files {
		out[i] = notice.File{Name: f.Name, Size: f.Size}
	}
	return out
}

// NewToken makes a sender page token (256 random bits) and its hash.
func NewToken() (token string, hash []byte, err error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", nil, err
	}
	token = base64.RawURLEncoding.EncodeToString(b[:])
	return token, HashToken(token), nil
}

// HashToken is how tokens are stored and looked up.
func HashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// NeedsUTF8 says whether an envelope with these addresses needs SMTPUTF8.
func NeedsUTF8(addrs ...string) bool {
	for _, a := range addrs {
		for i := 0; i < len(a); i++ {
			if a[i] >= 0x80 {
				return true
			}
		}
	}
	return false
}
