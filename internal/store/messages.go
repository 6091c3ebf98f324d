package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"
)

// Message is zipgate's record of one message: what was decided for each
// recipient group and what the reply was. With the deliveries (for which
// recipients the next hop took it) it makes a message that Postfix
// retries go out once, and it is what the audit reads.
type Message struct {
	ID string
	// Key identifies the message across Postfix's retries: a hash of its
	// envelope sender and its bytes (see gateway).
	Key       []byte
	CreatedAt time.Time
	UpdatedAt time.Time
	Sender    string
	Rcpts     []string
	QueueID   string // Postfix's, from its Received field
	MessageID string // the Message-ID field
	Subject   string // decoded
	Size      int64
	Groups    []Group
	Result    string // the last reply to Postfix, "250" or "554 5.7.1 ..."
}

// Group is one recipient group of a message: which rule decided and what
// the recipients got.
type Group struct {
	Rule   string   `json:"rule,omitempty"`
	Reason string   `json:"reason,omitempty"`
	Action string   `json:"action"`
	Rcpts  []string `json:"rcpts"`
	Job    string   `json:"job,omitempty"`
}

// Prior is what earlier tries of a message left.
type Prior struct {
	// Message is the record of an earlier try with the same key and the
	// same recipients; nil on the first try.
	Message *Message
	// Delivered are the recipients the next hop already took it for.
	Delivered map[string]bool
	// Pending are jobs of zipped copies whose try ended without knowing
	// whether they left (a crash, no reply after the data): the retry
	// reuses them, so one password opens whichever copy arrived.
	Pending []*Job
	// TakenBack are jobs of this message canceled (or their link taken
	// back) before their copy was known to have left: the sender said it
	// must not reach those recipients, so a retry does not send it.
	TakenBack []*Job
	// Links are the download links of the Pending jobs that have one, by
	// job id: a retry carries the same link.
	Links map[string]*Link
}

// Sync makes every commit so far durable on disk, also those written
// without waiting (Delivered): call it before telling anyone they are.
func (s *SQLite) Sync(ctx context.Context) error {
	f, err := os.Open(s.path + "-wal")
	if errors.Is(err, os.ErrNotExist) {
		return nil // no WAL: every commit is in the database file, synced
	}
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// ErrNoMessage: no record with that id.
var ErrNoMessage = errors.New("no such message")

// Messages are the message records and their deliveries.
type Messages interface {
	// Prior looks up what earlier tries of the message left.
	Prior(ctx context.Context, key []byte, rcpts []string) (*Prior, error)
	// SaveMessage writes m (new, or updated by id) and creates jobs as
	// Pending, in one transaction.
	SaveMessage(ctx context.Context, m *Message, jobs ...*Job) error
	// Delivered records, in one transaction, m as it is now, that the
	// next hop took it for rcpts, and moves job (unless "") from Pending
	// to Scheduled, due at due (zero: when the sender releases it). A job
	// canceled meanwhile stays canceled. The record survives a crash of
	// the process at once; Sync makes it survive a power cut.
	Delivered(ctx context.Context, m *Message, rcpts []string, job string, due, now time.Time) error
	// Sync makes every commit so far durable on disk.
	Sync(ctx context.Context) error
	GetMessage(ctx context.Context, id string) (*Message, error)
	// ListMessages returns records, newest first.
	ListMessages(ctx context.Context, limit int) ([]*Message, error)
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

const upsertMessage = `INSERT INTO messages
	(id, msg_key, created_at, updated_at, sender, rcpts, queue_id, message_id, subject, size, groups, result)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT (id) DO UPDATE SET updated_at = excluded.updated_at, queue_id = excluded.queue_id,
		groups = excluded.groups, result = excluded.result`

func messageArgs(m *Message) []any {
	rcpts, _ := json.Marshal(m.Rcpts)
	groups, _ := json.Marshal(m.Groups)
	if m.Groups == nil {
		groups = []byte("[]")
	}
	return []any{m.ID, m.Key, ms(m.CreatedAt), ms(m.UpdatedAt), m.Sender, string(rcpts), m.QueueID, m.MessageID,
		m.Subject, m.Size, string(groups), m.Result}
}

func (s *SQLite) SaveMessage(ctx context.Context, m *Message, jobs ...*Job) error {
	sealed := make([][]byte, len(jobs))
	for i, j := range jobs {
		var err error
		if sealed[i], err = s.sec.seal(j.ID, j.Password); err != nil {
			return err
		}
	}
	tx, done, err := s.begin(ctx, false)
	if err != nil {
		return err
	}
	defer done()
	if _, err := tx.ExecContext(ctx, upsertMessage, messageArgs(m)...); err != nil {
		return fmt.Errorf("message %s: %w", m.ID, err)
	}
	for i, j := range jobs {
		if _, err := tx.ExecContext(ctx, insertJob, jobArgs(j, sealed[i])...); err != nil {
			return fmt.Errorf("job %s: %w", j.ID, err)
		}
		if j.Link != nil {
			if err := s.insertLink(ctx, tx, j.Link); err != nil {
				return err
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	for _, j := range jobs {
		j.State = Pending
	}
	return nil
}

func (s *SQLite) Delivered(ctx context.Context, m *Message, rcpts []string, job string, due, now time.Time) error {
	r := &deliveredReq{m: m, rcpts: rcpts, job: job, due: due, now: now, done: make(chan error, 1)}
	s.dq.mu.Lock()
	s.dq.queue = append(s.dq.queue, r)
	lead := !s.dq.busy
	s.dq.busy = true
	s.dq.mu.Unlock()
	if lead {
		s.commitDeliveries(ctx)
	}
	return <-r.done
}

// deliveredReq is one Delivered waiting for its commit.
type deliveredReq struct {
	m         *Message
	rcpts     []string
	job       string
	due, now  time.Time
	done      chan error
	jobMissed bool
}

// deliveryQueue gathers the Delivered calls that come while one commits:
// under load many copies get their 250 at once, and each waits for the
// commit before it (the crash window). The first caller commits all that
// wait in one transaction (one fsync), then the next batch, until none is
// left (group commit).
type deliveryQueue struct {
	mu    sync.Mutex
	queue []*deliveredReq
	busy  bool
}

func (s *SQLite) commitDeliveries(ctx context.Context) {
	for {
		s.dq.mu.Lock()
		batch := s.dq.queue
		s.dq.queue = nil
		if len(batch) == 0 {
			s.dq.busy = false
			s.dq.mu.Unlock()
			return
		}
		s.dq.mu.Unlock()
		err := s.deliveredBatch(ctx, batch)
		for _, r := range batch {
			switch {
			case err != nil:
				r.done <- err
			case r.jobMissed:
				// The delivery is recorded either way; a missing job is
				// worth a line in the log (a canceled one is what the
				// admin wanted).
				r.done <- fmt.Errorf("job %s: %w", r.job, ErrNotFound)
			default:
				r.done <- nil
			}
		}
	}
}

func (s *SQLite) deliveredBatch(ctx context.Context, batch []*deliveredReq) error {
	// Urgent: the crash window is open until this commits. The commit
	// writes the WAL without waiting for the disk (synchronous NORMAL): in
	// the OS's cache it survives a crash of zipgate, and that is what the
	// window is about. Sync makes it survive a power cut before Postfix
	// hears 250.
	s.g.lock(true)
	defer s.g.unlock()
	if _, err := s.w.ExecContext(ctx, `PRAGMA synchronous = NORMAL`); err != nil {
		return err
	}
	defer s.w.ExecContext(context.WithoutCancel(ctx), `PRAGMA synchronous = FULL`)
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, r := range batch {
		m := r.m
		if _, err := tx.ExecContext(ctx, upsertMessage, messageArgs(m)...); err != nil {
			return fmt.Errorf("message %s: %w", m.ID, err)
		}
		for _, rcpt := range r.rcpts {
			if _, err := tx.ExecContext(ctx, `INSERT INTO deliveries (msg_key, rcpt, message, job, delivered_at)
				VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`, m.Key, rcpt, m.ID, r.job, ms(r.now)); err != nil {
				return err
			}
		}
		if r.job == "" {
			continue
		}
		// The delay counts from now, when the copy left: a job an earlier
		// try left pending keeps its full cancel window.
		if _, err := tx.ExecContext(ctx, `UPDATE jobs SET state = 'scheduled', due_at = ? WHERE id = ? AND state = 'pending'`,
			ms(r.due), r.job); err != nil {
			return err
		}
		// A download link opens with its copy; its token is no longer
		// needed for a retry.
		if _, err := tx.ExecContext(ctx, `UPDATE links SET state = 'active', token = NULL WHERE id = ? AND state = 'pending'`,
			r.job); err != nil {
			return err
		}
		var state State
		err := tx.QueryRowContext(ctx, `SELECT state FROM jobs WHERE id = ?`, r.job).Scan(&state)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			r.jobMissed = true
		case err != nil:
			return err
		}
	}
	return tx.Commit()
}

const messageColumns = `id, msg_key, created_at, updated_at, sender, rcpts, queue_id, message_id, subject, size, groups, result`

// scanMessage reads the messageColumns of a row (of either store).
func scanMessage(row scanner) (*Message, error) {
	var m Message
	var created, updated int64
	var rcpts, groups string
	if err := row.Scan(&m.ID, &m.Key, &created, &updated, &m.Sender, &rcpts, &m.QueueID, &m.MessageID,
		&m.Subject, &m.Size, &groups, &m.Result); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(rcpts), &m.Rcpts); err != nil {
		return nil, fmt.Errorf("message %s recipients: %w", m.ID, err)
	}
	if err := json.Unmarshal([]byte(groups), &m.Groups); err != nil {
		return nil, fmt.Errorf("message %s groups: %w", m.ID, err)
	}
	m.CreatedAt, m.UpdatedAt = fromMS(created), fromMS(updated)
	return &m, nil
}
