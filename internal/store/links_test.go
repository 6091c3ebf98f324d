package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/zipgate/zipgate/internal/policy"
)

// linked saves message id with a linked copy: a pending job and its link.
func linked(t *testing.T, s Store, id string, max int) *Link {
	t.Helper()
	j := job(id)
	j.Key = []byte("key-" + id)
	j.Message = "msg-" + id
	tok := sha256.Sum256([]byte("token-" + id))
	l := &Link{ID: id, Message: j.Message, Key: j.Key, Auth: policy.AuthPassword, Sender: j.Sender, Rcpts: j.Rcpts,
		Subject: "見積書", ZipName: j.ZipName, Files: j.Files, FileKey: bytes.Repeat([]byte{7}, 32), Password: "pw-" + id,
		Token: "token-" + id, TokenHash: tok[:], CreatedAt: t0, ExpiresAt: t0.Add(7 * 24 * time.Hour), MaxDownloads: max}
	j.Link = l
	m := &Message{ID: j.Message, Key: j.Key, CreatedAt: t0, UpdatedAt: t0, Sender: j.Sender, Rcpts: j.Rcpts}
	must(t, "SaveMessage", s.SaveMessage(context.Background(), m, j))
	return l
}

// grace is the files' grace the links scheduler passes (links.FilesGrace).
const grace = time.Hour

func deliver(t *testing.T, s Store, l *Link) {
	t.Helper()
	m := &Message{ID: l.Message, Key: l.Key, CreatedAt: t0, UpdatedAt: t0, Sender: l.Sender, Rcpts: l.Rcpts}
	must(t, "Delivered", s.Delivered(context.Background(), m, l.Rcpts, l.ID, t0.Add(10*time.Minute), t0))
}

func TestLinkLife(t *testing.T) {
	eachStore(t, func(t *testing.T, be backend) {
		ctx := context.Background()
		s, path := be.newStore(t)
		l := linked(t, s, "L1", 2)

		got, err := s.LinkByToken(ctx, l.TokenHash)
		if err != nil || got.State != LinkPending || got.Password != "pw-L1" || !bytes.Equal(got.FileKey, l.FileKey) ||
			got.Token != "token-L1" || got.Subject != "見積書" || len(got.Files) != 1 {
			t.Fatalf("pending link read back: %+v, %v", got, err)
		}
		// Not yet out: no download.
		if _, err := s.LinkDownload(ctx, "L1", t0, Event{Message: l.Message, At: t0, Event: "link_download"}); !errors.Is(err, ErrLinkNotActive) {
			t.Fatalf("download of a pending link: %v", err)
		}
		// The secrets are sealed at rest.
		raw := be.dump(t, s, path)
		for _, secret := range [][]byte{l.FileKey, []byte("pw-L1"), []byte("token-L1")} {
			if bytes.Contains(raw, secret) {
				t.Fatalf("%q in the database file", secret)
			}
		}

		deliver(t, s, l)
		got, _ = s.GetLink(ctx, "L1")
		if got.State != LinkActive || got.Token != "" || get(t, s, "L1").State != Scheduled {
			t.Fatalf("after delivery: link %s token %q, job %s", got.State, got.Token, get(t, s, "L1").State)
		}

		// Two downloads allowed: the third is refused.
		for i := 1; i <= 2; i++ {
			got, err = s.LinkDownload(ctx, "L1", t0.Add(time.Duration(i)*time.Minute),
				Event{Message: l.Message, At: t0, Event: "link_download", Detail: "a.pdf"})
			if err != nil || got.Downloads != i || !got.FirstDownloadAt.Equal(t0.Add(time.Minute)) {
				t.Fatalf("download %d: %+v, %v", i, got, err)
			}
		}
		if _, err := s.LinkDownload(ctx, "L1", t0.Add(time.Hour), Event{Message: l.Message, At: t0}); !errors.Is(err, ErrLinkEnded) {
			t.Fatalf("third download: %v", err)
		}
		// The first download is owed a notice.
		if work, _ := s.LinkWork(ctx, t0.Add(time.Hour), t0.Add(-time.Hour), grace, 10); len(work) != 1 || work[0].ID != "L1" {
			t.Fatalf("work after the first download: %v", work)
		}
		must(t, "MarkLinkNotice", s.MarkLinkNotice(ctx, "L1", "first"))
		if work, _ := s.LinkWork(ctx, t0.Add(time.Hour), t0.Add(-time.Hour), grace, 10); len(work) != 0 {
			t.Fatalf("work after the notice: %d", len(work))
		}

		// Used up but not yet ended: what a crash between the last
		// download and its end would leave for the scheduler.
		if used, err := s.UsedUpLinks(ctx); err != nil || len(used) != 1 || used[0].ID != "L1" {
			t.Fatalf("UsedUpLinks before the end = %v, %v", used, err)
		}
		must(t, "EndLink", s.EndLink(ctx, "L1", LinkUsedUp, "zipgate", Event{Message: l.Message, At: t0.Add(time.Hour), Event: "link_used_up"}))
		if used, err := s.UsedUpLinks(ctx); err != nil || len(used) != 0 {
			t.Fatalf("UsedUpLinks after the end = %v, %v", used, err)
		}
		got, _ = s.GetLink(ctx, "L1")
		if got.State != LinkUsedUp || got.FileKey != nil || got.Password != "" || !got.EndedAt.Equal(t0.Add(time.Hour)) {
			t.Fatalf("ended: %+v", got)
		}
		// The password would open nothing: its mail does not go, and the
		// sender is not told "canceled" for it.
		if j := get(t, s, "L1"); j.State != Canceled || !j.ConfirmSent || j.Password != "" {
			t.Fatalf("job after the link ended: %s confirm %v", j.State, j.ConfirmSent)
		}
		if err := s.EndLink(ctx, "L1", LinkRevoked, "x", Event{Message: l.Message, At: t0}); !errors.Is(err, ErrLinkEnded) {
			t.Fatalf("revoke after the end: %v", err)
		}
		// Its files are to be deleted once the grace has run; then, after
		// the retention, it goes.
		if work, _ := s.LinkWork(ctx, t0.Add(time.Hour), t0.Add(-time.Hour), grace, 10); len(work) != 0 {
			t.Fatalf("files of a link that just ended are work")
		}
		if work, _ := s.LinkWork(ctx, t0.Add(time.Hour+grace), t0.Add(-time.Hour), grace, 10); len(work) != 1 {
			t.Fatalf("files of a link ended a grace ago are not work")
		}
		must(t, "MarkLinkFilesGone", s.MarkLinkFilesGone(ctx, "L1"))
		if _, err := s.Purge(ctx, t0.Add(3*time.Hour)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetLink(ctx, "L1"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("purged link: %v", err)
		}
		// The history stays for the audit (audit.retention), then goes.
		if ev, _ := s.Events(ctx, l.Message); len(ev) == 0 {
			t.Fatalf("the link's history went with the jobs' purge")
		}
		if _, err := s.PurgeAudit(ctx, t0.Add(3*time.Hour)); err != nil {
			t.Fatal(err)
		}
		ev, _ := s.Events(ctx, l.Message)
		var names []string
		for _, e := range ev {
			names = append(names, e.Event)
		}
		if len(ev) != 0 {
			t.Fatalf("events outlived the audit's purge: %v", names)
		}
	})
}

func TestLinkLocksAfterTenWrongTries(t *testing.T) {
	eachStore(t, func(t *testing.T, be backend) {
		ctx := context.Background()
		s, _ := be.newStore(t)
		l := linked(t, s, "L2", 0)
		deliver(t, s, l)
		for i := 1; i <= 10; i++ {
			got, err := s.LinkFailure(ctx, "L2", 10, Event{Message: l.Message, At: t0, Event: "link_password_wrong", Actor: "192.0.2.1"})
			if err != nil {
				t.Fatal(err)
			}
			if want := LinkActive; i < 10 && got.State != want || i == 10 && got.State != LinkLocked {
				t.Fatalf("try %d: %s", i, got.State)
			}
		}
		if _, err := s.LinkFailure(ctx, "L2", 10, Event{Message: l.Message, At: t0}); !errors.Is(err, ErrLinkEnded) {
			t.Fatalf("an 11th try: %v", err)
		}
		// The sender is owed the notice of the lock.
		work, _ := s.LinkWork(ctx, t0, t0.Add(-time.Hour), grace, 10)
		if len(work) != 1 || work[0].State != LinkLocked || work[0].EndNoticeSent {
			t.Fatalf("work after the lock: %v", work)
		}
		// Told, the lock is no work until its files' grace has run.
		must(t, "MarkLinkNotice", s.MarkLinkNotice(ctx, "L2", "end"))
		if work, _ := s.LinkWork(ctx, t0.Add(grace-time.Millisecond), t0.Add(-time.Hour), grace, 10); len(work) != 0 {
			t.Fatalf("work within the grace after the lock: %v", work)
		}
		if next, err := s.NextLinkWake(ctx, grace); err != nil || !next.Equal(t0.Add(grace)) {
			t.Fatalf("NextLinkWake after the lock = %v, %v; want the end and the grace, %v", next, err, t0.Add(grace))
		}
		if work, _ := s.LinkWork(ctx, t0.Add(grace), t0.Add(-time.Hour), grace, 10); len(work) != 1 {
			t.Fatalf("the files of a lock a grace ago are not work")
		}
		ev, _ := s.Events(ctx, l.Message)
		if last := ev[len(ev)-1]; last.Event != "link_locked" || len(ev) != 11 {
			t.Fatalf("history: %d events, last %+v", len(ev), last)
		}
	})
}

func TestLinkOfACopyThatDidNotLeaveGoesWithItsJob(t *testing.T) {
	eachStore(t, func(t *testing.T, be backend) {
		ctx := context.Background()
		s, _ := be.newStore(t)
		l := linked(t, s, "L3", 0)
		must(t, "Discard", s.Discard(ctx, "L3"))
		if _, err := s.GetLink(ctx, "L3"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("link of a discarded job: %v", err)
		}
		// One that expires before anyone used it, or outlives the retention.
		l = linked(t, s, "L4", 0)
		deliver(t, s, l)
		if work, _ := s.LinkWork(ctx, t0.Add(time.Hour), t0, grace, 10); len(work) != 0 {
			t.Fatalf("a fresh link is work")
		}
		if work, _ := s.LinkWork(ctx, l.ExpiresAt, t0, grace, 10); len(work) != 1 {
			t.Fatalf("an expired link is not work")
		}
		if work, _ := s.LinkWork(ctx, t0.Add(time.Hour), t0.Add(time.Minute), grace, 10); len(work) != 1 {
			t.Fatalf("a link older than the retention is not work")
		}
		if next, err := s.NextLinkWake(ctx, grace); err != nil || !next.Equal(l.ExpiresAt) {
			t.Fatalf("NextLinkWake = %v, %v", next, err)
		}
	})
}

// The files of an ended link (however it ended) are work only once it
// ended filesGrace ago, and the scheduler is woken then, not before and
// not at once (no pass in a loop while the grace runs); with its files
// gone it needs no more.
func TestEndedLinkFilesWaitTheGrace(t *testing.T) {
	eachStore(t, func(t *testing.T, be backend) {
		ctx := context.Background()
		s, _ := be.newStore(t)
		ended := t0.Add(10 * time.Minute)
		for id, state := range map[string]LinkState{"L5": LinkRevoked, "L6": LinkUsedUp, "L7": LinkExpired} {
			l := linked(t, s, id, 0)
			deliver(t, s, l)
			must(t, "EndLink", s.EndLink(ctx, id, state, "zipgate", Event{Message: l.Message, At: ended, Event: "link_" + string(state)}))
		}
		for _, at := range []time.Time{ended, ended.Add(grace / 2), ended.Add(grace - time.Millisecond)} {
			if work, err := s.LinkWork(ctx, at, t0.Add(-time.Hour), grace, 10); err != nil || len(work) != 0 {
				t.Fatalf("work %v after the end: %d links, %v", at.Sub(ended), len(work), err)
			}
			if next, err := s.NextLinkWake(ctx, grace); err != nil || !next.Equal(ended.Add(grace)) {
				t.Fatalf("NextLinkWake %v after the end = %v, %v; want %v", at.Sub(ended), next, err, ended.Add(grace))
			}
		}
		work, err := s.LinkWork(ctx, ended.Add(grace), t0.Add(-time.Hour), grace, 10)
		if err != nil || len(work) != 3 {
			t.Fatalf("work a grace after the end: %d links, %v", len(work), err)
		}
		for _, l := range work {
			must(t, "MarkLinkFilesGone", s.MarkLinkFilesGone(ctx, l.ID))
		}
		if next, err := s.NextLinkWake(ctx, grace); err != nil || !next.IsZero() {
			t.Fatalf("NextLinkWake with the files gone = %v, %v", next, err)
		}
	})
}
