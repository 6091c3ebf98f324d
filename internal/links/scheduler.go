package links

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/zipgate/zipgate/internal/notice"
	"github.com/zipgate/zipgate/internal/relay"
	"github.com/zipgate/zipgate/internal/release"
	"github.com/zipgate/zipgate/internal/reply"
	"github.com/zipgate/zipgate/internal/store"
)

// Scheduler ends the links whose time is over (their expiry, and
// release.retention at the latest), deletes the files of ended links
// FilesGrace after their end, and mails the sender when a link is first
// downloaded or locked. It also sends the one-time codes the
// recipients' page asks for.
type Scheduler struct {
	Store      store.Store
	Files      *Files
	Relay      release.Sender
	Templates  *notice.Templates
	Log        *slog.Logger
	Hostname   string
	NoticeFrom string // "" = postmaster at the sender's domain
	Retention  time.Duration
	// NotifyFirst mails the sender at a link's first download.
	NotifyFirst bool

	// Now is the clock; tests move it instead of sleeping.
	Now func() time.Time
	// Poll bounds the sleep, so changes made by the CLI are seen.
	Poll time.Duration

	release.Waker
	lastSweep time.Time
}

// FilesGrace is how long the files of an ended link stay before they are
// deleted: longer than any download of a file the gateway takes, so the
// last allowed download, which ends its link, still reads to its end
// (in the shared store a file removed under a download cuts it). The
// key that opens the files is wiped from the store at the end, so until
// then they are ciphertext that nobody can open anew.
const FilesGrace = time.Hour

// NewScheduler returns a scheduler with the real clock.
func NewScheduler(st store.Store, files *Files, r release.Sender, t *notice.Templates, log *slog.Logger) *Scheduler {
	return &Scheduler{Store: st, Files: files, Relay: r, Templates: t, Log: log, Retention: 90 * 24 * time.Hour,
		NotifyFirst: true, Now: time.Now, Poll: 5 * time.Second, Waker: release.NewWaker()}
}

// Run works until ctx ends.
func (s *Scheduler) Run(ctx context.Context) error {
	release.Loop(ctx, "links scheduler", s.RunOnce, s.Waker, s.Poll, s.Now, s.Log)
	return nil
}

// RunOnce does the work due now and returns when more will be due.
func (s *Scheduler) RunOnce(ctx context.Context) (time.Time, error) {
	now := s.Now()
	list, err := s.Store.LinkWork(ctx, now, now.Add(-s.Retention), FilesGrace, 100)
	if err != nil {
		return time.Time{}, err
	}
	firstErr := release.Each(ctx, list, func(l *store.Link) error { return s.work(ctx, l, now) })
	if s.lastSweep.IsZero() {
		// The first pass after a start: no download is in flight here.
		if err := s.endUsedUp(ctx, now); err != nil {
			firstErr = errors.Join(firstErr, err)
		}
	}
	if now.Sub(s.lastSweep) > time.Hour {
		if err := s.sweep(ctx, now); err != nil {
			firstErr = errors.Join(firstErr, err)
		} else {
			s.lastSweep = now
		}
	}
	next, err := s.Store.NextLinkWake(ctx, FilesGrace)
	return next, errors.Join(firstErr, err)
}

// endUsedUp ends the links whose last allowed download was counted but
// that a stop left active; their files go FilesGrace later.
func (s *Scheduler) endUsedUp(ctx context.Context, now time.Time) error {
	list, err := s.Store.UsedUpLinks(ctx)
	if err != nil {
		return err
	}
	for _, l := range list {
		err := s.Store.EndLink(ctx, l.ID, store.LinkUsedUp, "zipgate", store.Event{Message: l.Message, At: now,
			Event: "link_used_up", Actor: "zipgate", Via: "scheduler", Detail: fmt.Sprintf("%s | %d downloads", l.ID, l.Downloads)})
		if err != nil && !errors.Is(err, store.ErrLinkEnded) {
			return err
		}
		if err == nil {
			s.Log.Info("download link ended: its downloads ran out before a stop", "id", l.ID, "message", l.Message,
				"downloads", l.Downloads)
		}
	}
	return nil
}

// sweep deletes files that no link holds: a crash between keeping them
// and storing the link. Files written in the last hour may belong to a
// message on its way and stay.
func (s *Scheduler) sweep(ctx context.Context, now time.Time) error {
	all, err := s.Files.Blobs.List()
	if err != nil {
		return err
	}
	for id, written := range all {
		if now.Sub(written) < time.Hour {
			continue
		}
		if _, err := s.Store.GetLink(ctx, id); !errors.Is(err, store.ErrNotFound) {
			if err != nil {
				return err
			}
			continue
		}
		if err := s.Files.Remove(id); err != nil {
			return err
		}
		s.Log.Info("deleted files no download link holds", "id", id)
	}
	return nil
}

func (s *Scheduler) work(ctx context.Context, l *store.Link, now time.Time) error {
	over := !l.ExpiresAt.After(now) || l.CreatedAt.Before(now.Add(-s.Retention))
	if (l.State == store.LinkPending || l.State == store.LinkActive) && over {
		why := "older than release.retention"
		if !l.ExpiresAt.After(now) {
			why = "at its expiry"
		}
		err := s.Store.EndLink(ctx, l.ID, store.LinkExpired, "zipgate",
			store.Event{Message: l.Message, At: now, Event: "link_expired", Actor: "zipgate", Via: "scheduler", Detail: l.ID + " | " + why})
		if err != nil && !errors.Is(err, store.ErrLinkEnded) {
			return err
		}
		if err == nil {
			s.Log.Info("download link expired", "id", l.ID, "message", l.Message, "from", l.Sender, "why", why,
				"downloads", l.Downloads)
		}
		// Ended now (or by someone else just now): its files wait.
		l.State, l.EndedAt = store.LinkExpired, now
	}
	// The files go a grace after the end; a link ended within it is here
	// for a notice, or has just expired.
	if l.State.Ended() && !l.FilesGone && !l.EndedAt.After(now.Add(-FilesGrace)) {
		if err := s.Files.Remove(l.ID); err != nil {
			return fmt.Errorf("deleting the files of link %s: %w", l.ID, err)
		}
		if err := s.Store.MarkLinkFilesGone(ctx, l.ID); err != nil {
			return err
		}
		s.Log.Info("download link files deleted", "id", l.ID, "state", string(l.State), "files", len(l.Files))
	}
	if l.NoticeNext.After(now) {
		return nil
	}
	if !l.FirstDownloadAt.IsZero() && !l.FirstNoticeSent {
		var err error
		if s.NotifyFirst {
			err = s.toSender(ctx, l, now, notice.LinkDownloaded, "downloaded")
		}
		if err == nil {
			err = s.Store.MarkLinkNotice(ctx, l.ID, "first")
		}
		if err != nil {
			return s.retry(ctx, l, now, err)
		}
	}
	if l.State == store.LinkLocked && !l.EndNoticeSent {
		err := s.toSender(ctx, l, now, notice.LinkLocked, "locked")
		if err == nil {
			err = s.Store.MarkLinkNotice(ctx, l.ID, "end")
		}
		if err != nil {
			return s.retry(ctx, l, now, err)
		}
	}
	return nil
}

// retry puts mail to the sender off: 30 s, doubling to 30 min.
func (s *Scheduler) retry(ctx context.Context, l *store.Link, now time.Time, cause error) error {
	d := 30 * time.Second
	for i := 0; i < l.NoticeAttempts && d < 30*time.Minute; i++ {
		d *= 2
	}
	next := now.Add(min(d, 30*time.Minute))
	s.Log.Warn("mail to the sender about a download link deferred", "id", l.ID, "to", l.Sender,
		"error", cause.Error(), "retry_at", next)
	return s.Store.MarkLinkNoticeRetry(ctx, l.ID, next)
}

// firstDownload finds, in the message's history, who downloaded what
// first from link l.
func (s *Scheduler) firstDownload(ctx context.Context, l *store.Link) (client, item string) {
	events, err := s.Store.Events(ctx, l.Message)
	if err != nil {
		return "", ""
	}
	for _, e := range events {
		if e.Event != EventDownload {
			continue
		}
		if id, rest, ok := strings.Cut(e.Detail, " | "); ok && id == l.ID {
			item, _, _ = strings.Cut(rest, " | ")
			return e.Actor, item
		}
	}
	return "", ""
}

// toSender mails the sender of l; a null envelope sender, so it cannot
// bounce back into a loop. A refusal for good is logged, not retried.
func (s *Scheduler) toSender(ctx context.Context, l *store.Link, now time.Time, name, what string) error {
	if l.Sender == "" {
		return nil
	}
	data := notice.Data{Subject: l.Subject, Rcpts: l.Rcpts, When: now, Expires: l.ExpiresAt}
	if name == notice.LinkDownloaded {
		data.When = l.FirstDownloadAt
		data.Client, data.Item = s.firstDownload(ctx, l)
	}
	if name == notice.LinkLocked {
		data.When = l.EndedAt
	}
	msg, err := s.Templates.Mail(name, notice.Header{ID: l.ID, Hostname: s.Hostname, From: release.NoticeFrom(s.NoticeFrom, l.Sender),
		To: l.Sender, Subject: "[zipgate] " + what + ": " + cmp.Or(l.Subject, l.ZipName), InReplyTo: l.MessageID,
		Kind: "notice", Date: now}, data)
	if err != nil {
		return err
	}
	env := &relay.Envelope{Rcpts: []relay.Rcpt{{Addr: l.Sender}}}
	env.MailOpts.UTF8 = release.NeedsUTF8(l.Sender)
	if _, err := s.Relay.Send(context.WithoutCancel(ctx), &relay.Message{Env: env,
		Open: func() io.Reader { return bytes.NewReader(msg) }, Sign: true}); err != nil {
		if re := reply.From(err); !re.Temporary() {
			s.Log.Warn("notice to the sender refused", "id", l.ID, "to", l.Sender, "template", name, "error", re.Error())
			return nil
		}
		return err
	}
	s.Log.Info("download link: sender told", "id", l.ID, "to", l.Sender, "what", what)
	return nil
}

// SendCode mails a one-time code for link l to one of its recipients, as
// the password mail goes: from the sender, threaded under the message.
func (s *Scheduler) SendCode(ctx context.Context, l *store.Link, to, code string, expires time.Time) error {
	data := notice.Data{Subject: l.Subject, Code: code, Expires: expires}
	data.SetLanguage(l.Language)
	from := l.HeaderFrom
	if from == "" {
		from = release.NoticeFrom(s.NoticeFrom, l.Sender)
	}
	msg, err := s.Templates.Mail(notice.LinkCode, notice.Header{ID: l.ID, Hostname: s.Hostname, From: from, To: to,
		Subject: "[Code] " + cmp.Or(l.Subject, l.ZipName), InReplyTo: l.MessageID, Kind: "code", Date: s.Now()}, data)
	if err != nil {
		return err
	}
	env := &relay.Envelope{From: l.Sender, Rcpts: []relay.Rcpt{{Addr: to}}}
	env.MailOpts.UTF8 = release.NeedsUTF8(l.Sender, to)
	_, err = s.Relay.Send(ctx, &relay.Message{Env: env, Open: func() io.Reader { return bytes.NewReader(msg) }, Sign: true})
	return err
}

// Events of a link in its message's history. Their detail is
// "LINK | ITEM | USER AGENT" (what applies), the actor the client's
// address.
const (
	EventView          = "link_view"
	EventPasswordWrong = "link_password_wrong"
	EventPasswordOK    = "link_password_ok"
	EventCodeSent      = "link_code_sent"
	EventCodeWrong     = "link_code_wrong"
	EventCodeOK        = "link_code_ok"
	EventDownload      = "link_download"
	EventRevoked       = "link_revoked"
)

// LockAt is how many wrong passwords or codes lock a link.
const LockAt = 10
