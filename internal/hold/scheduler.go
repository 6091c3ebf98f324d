package hold

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"strings"
	"time"

	"github.com/zipgate/zipgate/internal/metrics"
	"github.com/zipgate/zipgate/internal/notice"
	"github.com/zipgate/zipgate/internal/relay"
	"github.com/zipgate/zipgate/internal/release"
	"github.com/zipgate/zipgate/internal/reply"
	"github.com/zipgate/zipgate/internal/spool"
	"github.com/zipgate/zipgate/internal/store"
)

// Deliverer sends a held message on its normal path (gateway.DeliverHeld):
// decided again, zipped or passed, exactly once per recipient.
type Deliverer func(ctx context.Context, env *relay.Envelope, msg *spool.File) error

// Scheduler lets held messages go when nothing holds them any more,
// expires those nobody decided on, and mails the sender (a notice with
// the link to their page, and how it ended) and the approvers (a request
// with a link to theirs).
type Scheduler struct {
	Store      store.Store
	Dir        *Dir
	Deliver    Deliverer
	Relay      release.Sender
	Templates  *notice.Templates
	Log        *slog.Logger
	Hostname   string
	BaseURL    string // of the pages
	NoticeFrom string // "" = postmaster at the sender's domain
	// Metrics counts failed mail to senders and approvers (nil: nothing).
	Metrics *metrics.Metrics

	// Now is the clock; tests move it instead of sleeping.
	Now func() time.Time
	// Poll bounds the sleep, so changes made by the CLI are seen.
	Poll time.Duration

	release.Waker
}

// New returns a scheduler with the real clock.
func New(st store.Store, dir *Dir, deliver Deliverer, r release.Sender, t *notice.Templates, log *slog.Logger) *Scheduler {
	return &Scheduler{Store: st, Dir: dir, Deliver: deliver, Relay: r, Templates: t, Log: log, Now: time.Now,
		Poll: 5 * time.Second, Waker: release.NewWaker()}
}

// Recover puts back what a crash left on its way; call it before serving.
func (s *Scheduler) Recover(ctx context.Context) error {
	n, err := s.Store.RecoverHeld(ctx)
	if err == nil && n > 0 {
		s.Log.Info("resumed held messages left on their way by a stop", "messages", n)
	}
	return err
}

// Run works until ctx ends.
func (s *Scheduler) Run(ctx context.Context) error {
	release.Loop(ctx, "hold scheduler", s.RunOnce, s.Waker, s.Poll, s.Now, s.Log)
	return nil
}

// RunOnce does the work due now and returns when more will be due.
func (s *Scheduler) RunOnce(ctx context.Context) (time.Time, error) {
	now := s.Now()
	list, err := s.Store.HeldWork(ctx, now, 100)
	if err != nil {
		return time.Time{}, err
	}
	firstErr := release.Each(ctx, list, func(h *store.HeldMessage) error { return s.work(ctx, h, now) })
	next, err := s.Store.NextHeldWake(ctx)
	return next, errors.Join(firstErr, err)
}

func (s *Scheduler) work(ctx context.Context, h *store.HeldMessage, now time.Time) error {
	if h.State == store.HeldWaiting {
		if !h.NoticeSent || !h.RequestsSent {
			if err := s.mailOwed(ctx, h, now); err != nil {
				return err
			}
		}
		switch {
		case !h.Expires.IsZero() && !h.Expires.After(now) && h.Waiting():
			if err := s.Store.ExpireHeld(ctx, h.ID, now); err != nil && !isStateErr(err) {
				return err
			}
			s.Log.Info("held message expired: nobody decided in time", "id", h.ID, "from", h.Sender)
		case !h.Waiting() && !h.HoldUntil.After(now) && !h.NextAttempt.After(now):
			if err := s.send(ctx, h, now); err != nil {
				return err
			}
		}
		var err error
		if h, err = s.Store.GetHeld(ctx, h.ID); err != nil {
			return err
		}
	}
	if h.Final() {
		// Its bytes are no longer needed: a canceled message never leaves.
		if err := s.Dir.Remove(h.ID); err != nil {
			return err
		}
		if !h.ConfirmSent && !h.NoticeNext.After(now) {
			return s.toSender(ctx, h, now, func() error { return s.outcome(ctx, h, now) })
		}
	}
	return nil
}

// isStateErr: the message changed meanwhile (sent, canceled, decided).
func isStateErr(err error) bool {
	return errors.Is(err, store.ErrAlreadySent) || errors.Is(err, store.ErrAlreadyCanceled) ||
		errors.Is(err, store.ErrSending) || errors.Is(err, store.ErrFinished) || errors.Is(err, store.ErrNotFound)
}

// send lets the message go on its normal path. It is claimed first, so a
// cancel that comes meanwhile is refused.
func (s *Scheduler) send(ctx context.Context, h *store.HeldMessage, now time.Time) error {
	// The clock of the claim, not of the pass (see release).
	if err := s.Store.ClaimHeld(ctx, h.ID, s.Now()); err != nil {
		if isStateErr(err) {
			return nil
		}
		return err
	}
	var env relay.Envelope
	if err := json.Unmarshal(h.Envelope, &env); err != nil {
		return errors.Join(err, s.Store.MarkHeldFailed(ctx, h.ID, now, "the stored envelope does not read back"))
	}
	msg, err := s.Dir.Open(ctx, h.ID)
	if errors.Is(err, fs.ErrNotExist) {
		// Without its bytes it can never go: say so rather than retry.
		s.Log.Error("held message lost its file", "id", h.ID, "error", err.Error())
		return s.Store.MarkHeldFailed(ctx, h.ID, now, "its copy on disk is gone")
	}
	if err != nil {
		// The store out of reach: it goes later.
		next := now.Add(release.Backoff(h.Attempts))
		s.Log.Warn("held message not read now", "id", h.ID, "error", err.Error(), "retry_at", next)
		return s.Store.MarkHeldRetry(context.WithoutCancel(ctx), h.ID, next, "its copy could not be read now")
	}
	defer msg.Close()
	// A message on its way is not cut by a stop.
	err = s.Deliver(context.WithoutCancel(ctx), &env, msg)
	ctx = context.WithoutCancel(ctx)
	if err == nil {
		s.Log.Info("held message sent", "id", h.ID, "from", h.Sender, "rcpts", h.Rcpts)
		return s.Store.MarkHeldSent(ctx, h.ID, s.Now())
	}
	re := reply.From(err)
	if !re.Temporary() {
		s.Log.Warn("held message refused for good", "id", h.ID, "error", re.Error())
		return s.Store.MarkHeldFailed(ctx, h.ID, now, fmt.Sprintf("%d %s", re.Code, re.Text))
	}
	next := now.Add(release.Backoff(h.Attempts))
	s.Log.Warn("held message deferred", "id", h.ID, "error", re.Error(), "retry_at", next)
	return s.Store.MarkHeldRetry(ctx, h.ID, next, fmt.Sprintf("%d %s", re.Code, re.Text))
}

// mailOwed sends the sender's notice and the approvers' requests, each
// once; when one cannot go now, the rest waits with backoff.
func (s *Scheduler) mailOwed(ctx context.Context, h *store.HeldMessage, now time.Time) error {
	if h.NoticeNext.After(now) {
		return nil
	}
	return s.toSender(ctx, h, now, func() error {
		if !h.NoticeSent {
			if err := s.notice(ctx, h, now); err != nil {
				return err
			}
			if err := s.Store.MarkHeldNoticeSent(ctx, h.ID); err != nil {
				return err
			}
			h.NoticeSent = true
		}
		if !h.RequestsSent {
			if err := s.requests(ctx, h, now); err != nil {
				return err
			}
			if err := s.Store.MarkHeldRequestsSent(ctx, h.ID); err != nil {
				return err
			}
			h.RequestsSent = true
		}
		return nil
	})
}

// toSender runs a mail step; when it fails the job's mail waits with
// backoff, so a mailbox that keeps deferring never holds up the rest.
func (s *Scheduler) toSender(ctx context.Context, h *store.HeldMessage, now time.Time, step func() error) error {
	err := step()
	if err == nil {
		return nil
	}
	next := now.Add(release.Backoff(h.NoticeAttempts))
	if merr := s.Store.MarkHeldNoticeRetry(context.WithoutCancel(ctx), h.ID, next); merr != nil {
		return errors.Join(err, merr)
	}
	s.Log.Warn("mail about a held message deferred", "id", h.ID, "error", err.Error(), "retry_at", next)
	return nil
}

func (s *Scheduler) data(h *store.HeldMessage) notice.Data {
	d := notice.Data{Subject: h.Subject, Rcpts: h.Rcpts, Sender: h.Sender, Reasons: h.Reasons,
		Until: h.HoldUntil, Expires: h.Expires, Visible: h.Visible, Sent: h.CreatedAt}
	var approvers []string
	for _, set := range h.Approvals {
		approvers = append(approvers, strings.Join(set, " / "))
	}
	d.Approvers = strings.Join(approvers, "; ")
	for _, f := range h.Files {
		d.Files = append(d.Files, notice.File{Name: f.Name, Size: f.Size})
	}
	return d
}

// notice tells the sender the message is held, why, and gives the link
// to their page (Send now, Cancel); only the token's hash is kept.
func (s *Scheduler) notice(ctx context.Context, h *store.HeldMessage, now time.Time) error {
	if h.Sender == "" {
		return nil
	}
	token, hash, err := release.NewToken()
	if err != nil {
		return err
	}
	if err := s.Store.SetHeldToken(ctx, h.ID, hash); err != nil {
		return err
	}
	d := s.data(h)
	d.Link = strings.TrimRight(s.BaseURL, "/") + "/h/" + token
	return s.mail(ctx, h, notice.Held, h.Sender, "[zipgate] 保留中 / held: "+cmp.Or(h.Subject, h.ID), d, now)
}

// requests asks each approver still needed, with a link of their own.
func (s *Scheduler) requests(ctx context.Context, h *store.HeldMessage, now time.Time) error {
	seen := map[string]bool{}
	for _, set := range h.Approvals {
		for _, a := range set {
			if seen[a] {
				continue
			}
			seen[a] = true
			token, hash, err := release.NewToken()
			if err != nil {
				return err
			}
			if err := s.Store.AddApproverToken(ctx, h.ID, a, hash); err != nil {
				return err
			}
			d := s.data(h)
			d.Link = strings.TrimRight(s.BaseURL, "/") + "/a/" + token
			if err := s.mail(ctx, h, notice.ApprovalRequest, a,
				"[zipgate] 承認依頼 / approval requested: "+cmp.Or(h.Subject, h.ID), d, now); err != nil {
				return err
			}
		}
	}
	return nil
}

// outcome tells the sender how the held message ended.
func (s *Scheduler) outcome(ctx context.Context, h *store.HeldMessage, now time.Time) error {
	d := s.data(h)
	d.Outcome, d.When, d.By, d.Reason = string(h.State), h.FinishedAt, h.DecidedBy, h.Reason
	if h.State == store.HeldFailed {
		d.Reason = h.LastError
	}
	if h.State == store.HeldExpired {
		d.When = h.Expires
	}
	word := map[store.HeldState]string{store.HeldSent: "送信しました / sent", store.HeldCanceled: "取り消しました / canceled",
		store.HeldRejected: "却下されました / rejected", store.HeldExpired: "期限切れ / expired",
		store.HeldFailed: "送信できませんでした / failed"}[h.State]
	if err := s.mail(ctx, h, notice.HeldOutcome, h.Sender, "[zipgate] "+word+": "+cmp.Or(h.Subject, h.ID), d, now); err != nil {
		return err
	}
	return s.Store.MarkHeldConfirmSent(ctx, h.ID)
}

// mail sends a template to one address from zipgate, with a null
// envelope sender so that a failure does not bounce back into a loop.
func (s *Scheduler) mail(ctx context.Context, h *store.HeldMessage, name, to, subject string, d notice.Data, now time.Time) error {
	if to == "" {
		return nil
	}
	msg, err := s.Templates.Mail(name, notice.Header{ID: h.ID, Hostname: s.Hostname, From: release.NoticeFrom(s.NoticeFrom, h.Sender), To: to,
		Subject: subject, InReplyTo: h.MessageID, Kind: "notice", Date: now}, d)
	if err != nil {
		return err
	}
	env := &relay.Envelope{Rcpts: []relay.Rcpt{{Addr: to}}}
	env.MailOpts.UTF8 = release.NeedsUTF8(to)
	_, err = s.Relay.Send(context.WithoutCancel(ctx), &relay.Message{Env: env, Sign: true,
		Open: func() io.Reader { return bytes.NewReader(msg) }})
	s.note(ctx, h, name, to, err)
	if err != nil {
		if re := reply.From(err); !re.Temporary() {
			s.Log.Warn("mail about a held message refused", "id", h.ID, "to", to, "template", name, "error", re.Error())
			return nil
		}
		return fmt.Errorf("%s to %s for held message %s: %w", name, to, h.ID, err)
	}
	return nil
}

// note adds the mail to the history of the held message and counts a
// failed hand-over in the metrics; the history is the audit's, so a
// store that cannot write it costs a log line, never the mail.
func (s *Scheduler) note(ctx context.Context, h *store.HeldMessage, template, to string, err error) {
	s.Metrics.RelayError(err)
	detail := template + " to " + to
	if err != nil {
		re := reply.From(err)
		detail += fmt.Sprintf(": not sent, %d %s", re.Code, re.Text)
	}
	e := store.Event{Message: h.ID, At: s.Now(), Event: "notice_sent", Actor: "zipgate", Via: "scheduler", Detail: detail}
	if err != nil {
		e.Event = "notice_failed"
	}
	if werr := s.Store.AddEvent(context.WithoutCancel(ctx), e); werr != nil {
		s.Log.Warn("could not write the message's history", "id", h.ID, "error", werr.Error())
	}
}
