package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// HeldState is where a held message is in its life.
type HeldState string

const (
	// HeldWaiting: kept back; it leaves when its hold is over, every
	// approval is in and (after the To/Cc guard) the sender said send.
	HeldWaiting HeldState = "held"
	// HeldSending: claimed by the scheduler, on its way now.
	HeldSending  HeldState = "sending"
	HeldSent     HeldState = "sent"
	HeldCanceled HeldState = "canceled" // by the sender or an admin
	HeldRejected HeldState = "rejected" // by an approver
	HeldExpired  HeldState = "expired"  // nobody decided in time
	HeldFailed   HeldState = "failed"   // the next hop refused it for good
)

// Why a message is held (HeldMessage.Reasons).
const (
	ReasonHold     = "hold"
	ReasonApproval = "approval"
	ReasonGuard    = "guard"
)

// HeldMessage is a message kept back before it leaves. Its bytes are in
// a file of the gateway's (hold.Dir); the store keeps what the pages,
// the notices and the scheduler need.
type HeldMessage struct {
	ID    string // the message record's id
	Key   []byte
	State HeldState
	// Envelope is the SMTP envelope as the gateway wrote it (JSON).
	Envelope []byte
	Sender   string
	Rcpts    []string
	Size     int64

	Subject, HeaderFrom, HeaderTo, HeaderCc, MessageID string
	Files                                              []File

	Reasons []string
	Visible int // outside addresses shown in To and Cc (the guard)
	// HoldUntil: it may leave from then on (zero: at once).
	HoldUntil time.Time
	// SenderOK is false while the To/Cc guard waits for the sender's
	// Send now.
	SenderOK bool
	// Approvals are the approver sets still to approve: one address of
	// each. Approved is who did.
	Approvals [][]string
	Approved  []Approval
	// Expires: not sent when approvals or the sender's word are still
	// missing then (zero: never; a plain hold ends by itself).
	Expires time.Time
	// DecidedBy and Reason: who canceled or rejected it, and why.
	DecidedBy, Reason string

	TokenHash  []byte // the sender page
	CreatedAt  time.Time
	FinishedAt time.Time

	Attempts    int
	NextAttempt time.Time
	LastError   string

	// Mail owed: the notice to the sender, the requests to the approvers,
	// the sender's confirmation once final; retried with backoff.
	NoticeSent, RequestsSent, ConfirmSent bool
	NoticeAttempts                        int
	NoticeNext                            time.Time
}

// Approval is one approver's yes.
type Approval struct {
	By  string    `json:"by"`
	At  time.Time `json:"at"`
	Via string    `json:"via"`
}

// Waiting reports whether h still waits for someone: an approver, or
// its sender.
func (h *HeldMessage) Waiting() bool { return len(h.Approvals) > 0 || !h.SenderOK }

// Final reports whether h is over (sent, canceled, rejected, expired,
// failed).
func (h *HeldMessage) Final() bool {
	switch h.State {
	case HeldSent, HeldCanceled, HeldRejected, HeldExpired, HeldFailed:
		return true
	}
	return false
}

// Event is one line of a message's history: who did what, and how.
type Event struct {
	Message string
	At      time.Time
	Event   string // held, send_now, canceled, approved, rejected, expired, sent, failed, ...
	Actor   string // an address, "admin", "zipgate"
	Via     string // page, cli, api, scheduler
	Detail  string
	// Target is what an event not about a message is about ("policy
	// partner.example", "admin alice", "token ci"); Message is "" then.
	Target string
}

// Errors of held messages callers act on.
var (
	ErrAlreadySent = errors.New("the message was already sent")
	ErrNotApprover = errors.New("not an approver of this message")
)

// Holds keeps held messages, their tokens and the history of messages.
type Holds interface {
	// HoldMessage writes m's record, the held message and its first event
	// in one transaction.
	HoldMessage(ctx context.Context, m *Message, h *HeldMessage) error
	GetHeld(ctx context.Context, id string) (*HeldMessage, error)
	HeldByToken(ctx context.Context, tokenHash []byte) (*HeldMessage, error)
	// HeldByApprover finds the message an approver's token is for, and
	// the approver.
	HeldByApprover(ctx context.Context, tokenHash []byte) (*HeldMessage, string, error)
	// HeldByKey finds a held message by its key: Postfix's retry of a
	// message zipgate already holds (it crashed before its 250).
	HeldByKey(ctx context.Context, key []byte) (*HeldMessage, error)
	// ListHeld returns held messages, newest first; state "" means all.
	ListHeld(ctx context.Context, state HeldState, limit int) ([]*HeldMessage, error)
	// HeldBytes is what the waiting ones take on disk.
	HeldBytes(ctx context.Context) (int64, error)

	// HeldWork returns what needs the scheduler at now: messages due to
	// leave, expired ones, and mail owed; oldest first.
	HeldWork(ctx context.Context, now time.Time, limit int) ([]*HeldMessage, error)
	// NextHeldWake is the earliest time a held message needs work.
	NextHeldWake(ctx context.Context) (time.Time, error)
	// ClaimHeld moves a message that may leave now to HeldSending.
	ClaimHeld(ctx context.Context, id string, now time.Time) error
	MarkHeldSent(ctx context.Context, id string, now time.Time) error
	MarkHeldRetry(ctx context.Context, id string, next time.Time, reason string) error
	MarkHeldFailed(ctx context.Context, id string, now time.Time, reason string) error
	// ExpireHeld ends a message nobody decided on by its Expires.
	ExpireHeld(ctx context.Context, id string, now time.Time) error
	// RecoverHeld puts messages a crash left HeldSending back to waiting.
	RecoverHeld(ctx context.Context) (int, error)

	// SendHeldNow: the sender (or an admin) lets it go without waiting
	// for the rest of the hold; approvals are still needed.
	SendHeldNow(ctx context.Context, id, actor, via string, now time.Time) error
	CancelHeld(ctx context.Context, id, actor, via string, now time.Time) error
	// ApproveHeld records approver's yes (ErrNotApprover when not one of
	// the sets still open).
	ApproveHeld(ctx context.Context, id, approver, via string, now time.Time) error
	RejectHeld(ctx context.Context, id, approver, via, reason string, now time.Time) error

	SetHeldToken(ctx context.Context, id string, tokenHash []byte) error
	AddApproverToken(ctx context.Context, id, approver string, tokenHash []byte) error
	MarkHeldNoticeSent(ctx context.Context, id string) error
	MarkHeldRequestsSent(ctx context.Context, id string) error
	MarkHeldConfirmSent(ctx context.Context, id string) error
	MarkHeldNoticeRetry(ctx context.Context, id string, next time.Time) error

	AddEvent(ctx context.Context, e Event) error
	// Events is a message's history, oldest first.
	Events(ctx context.Context, message string) ([]Event, error)
}

const heldColumns = `id, msg_key, state, sender, rcpts, envelope, size, subject, header_from, header_to, header_cc,
	message_id, files, reasons, visible, hold_until, expires_at, sender_ok, approvals, approved, decided_by, reason,
	token_hash, created_at, finished_at, attempts, next_attempt, last_error, notice_sent, requests_sent,
	confirm_sent, notice_attempts, notice_next`

func scanHeld(row scanner) (*HeldMessage, error) {
	var h HeldMessage
	var rcpts, files, reasons, approvals, approved string
	var holdUntil, expires, created, finished, next, noticeNext int64
	err := row.Scan(&h.ID, &h.Key, &h.State, &h.Sender, &rcpts, &h.Envelope, &h.Size, &h.Subject, &h.HeaderFrom,
		&h.HeaderTo, &h.HeaderCc, &h.MessageID, &files, &reasons, &h.Visible, &holdUntil, &expires, &h.SenderOK,
		&approvals, &approved, &h.DecidedBy, &h.Reason, &h.TokenHash, &created, &finished, &h.Attempts, &next,
		&h.LastError, &h.NoticeSent, &h.RequestsSent, &h.ConfirmSent, &h.NoticeAttempts, &noticeNext)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	for _, f := range []struct {
		name string
		src  string
		dst  any
	}{{"rcpts", rcpts, &h.Rcpts}, {"files", files, &h.Files}, {"reasons", reasons, &h.Reasons},
		{"approvals", approvals, &h.Approvals}, {"approved", approved, &h.Approved}} {
		if err := json.Unmarshal([]byte(f.src), f.dst); err != nil {
			return nil, fmt.Errorf("held %s %s: %w", h.ID, f.name, err)
		}
	}
	h.HoldUntil, h.Expires, h.CreatedAt = fromMS(holdUntil), fromMS(expires), fromMS(created)
	h.FinishedAt, h.NextAttempt, h.NoticeNext = fromMS(finished), fromMS(next), fromMS(noticeNext)
	return &h, nil
}

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func (s *SQLite) HoldMessage(ctx context.Context, m *Message, h *HeldMessage) error {
	if h.Approvals == nil {
		h.Approvals = [][]string{}
	}
	if h.Approved == nil {
		h.Approved = []Approval{}
	}
	tx, done, err := s.begin(ctx, false)
	if err != nil {
		return err
	}
	defer done()
	if _, err := tx.ExecContext(ctx, upsertMessage, messageArgs(m)...); err != nil {
		return fmt.Errorf("message %s: %w", m.ID, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO held (id, msg_key, state, sender, rcpts, envelope, size, subject,
		header_from, header_to, header_cc, message_id, files, reasons, visible, hold_until, expires_at, sender_ok,
		approvals, approved, created_at) VALUES (?, ?, 'held', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		h.ID, h.Key, h.Sender, jsonText(h.Rcpts), h.Envelope, h.Size, h.Subject, h.HeaderFrom, h.HeaderTo, h.HeaderCc,
		h.MessageID, jsonText(orEmpty(h.Files)), jsonText(h.Reasons), h.Visible, ms(h.HoldUntil), ms(h.Expires),
		h.SenderOK, jsonText(h.Approvals), jsonText(h.Approved), ms(h.CreatedAt)); err != nil {
		return fmt.Errorf("held %s: %w", h.ID, err)
	}
	if err := addEvent(ctx, tx, Event{Message: h.ID, At: h.CreatedAt, Event: "held", Actor: "zipgate",
		Detail: strings.Join(h.Reasons, ",")}); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	h.State = HeldWaiting
	return nil
}

func orEmpty(f []File) []File {
	if f == nil {
		return []File{}
	}
	return f
}

// What may leave at ?: waiting, its hold over, nobody to wait for.
const heldDue = `state = 'held' AND hold_until <= ? AND sender_ok = 1 AND approvals = '[]' AND next_attempt <= ?`

// Mail to the sender or the approvers owed.
const heldMailOwed = `notice_next <= ? AND ((state = 'held' AND (notice_sent = 0 OR requests_sent = 0))
	OR (state IN ('sent', 'canceled', 'rejected', 'expired', 'failed') AND confirm_sent = 0))`

func (s *SQLite) HeldWork(ctx context.Context, now time.Time, limit int) ([]*HeldMessage, error) {
	t := ms(now)
	return s.queryHeld(ctx, `SELECT `+heldColumns+` FROM held WHERE (`+heldDue+`)
		OR (state = 'held' AND expires_at > 0 AND expires_at <= ?)
		OR (`+heldMailOwed+`)
		ORDER BY created_at, id LIMIT ?`, t, t, t, t, limit)
}

func (s *SQLite) NextHeldWake(ctx context.Context) (time.Time, error) {
	var t sql.NullInt64
	err := s.db.QueryRowContext(ctx, `SELECT MIN(t) FROM (
		SELECT MAX(hold_until, next_attempt, 1) AS t FROM held
			WHERE state = 'held' AND sender_ok = 1 AND approvals = '[]'
		UNION ALL
		SELECT expires_at FROM held WHERE state = 'held' AND expires_at > 0
		UNION ALL
		SELECT MAX(notice_next, 1) FROM held WHERE (state = 'held' AND (notice_sent = 0 OR requests_sent = 0))
			OR (state IN ('sent', 'canceled', 'rejected', 'expired', 'failed') AND confirm_sent = 0))`).Scan(&t)
	if err != nil || !t.Valid {
		return time.Time{}, err
	}
	return time.UnixMilli(t.Int64), nil
}

// heldTransition runs an UPDATE that applies only in some states, records
// the event in the same transaction, and explains a miss by the state.
func (s *SQLite) heldTransition(ctx context.Context, e *Event, query string, args ...any) error {
	tx, done, err := s.begin(ctx, false)
	if err != nil {
		return err
	}
	defer done()
	res, err := tx.ExecContext(ctx, query, args...)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n != 1 {
		var st HeldState
		err := tx.QueryRowContext(ctx, `SELECT state FROM held WHERE id = ?`, e.Message).Scan(&st)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		return heldStateErr(st)
	}
	if e.Event != "" {
		if err := addEvent(ctx, tx, *e); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// heldStateErr says why a held message in st cannot be changed.
func heldStateErr(st HeldState) error {
	switch st {
	case HeldSent:
		return ErrAlreadySent
	case HeldSending:
		return ErrSending
	case HeldCanceled:
		return ErrAlreadyCanceled
	}
	return ErrFinished
}

func (s *SQLite) ClaimHeld(ctx context.Context, id string, now time.Time) error {
	t := ms(now)
	return s.heldTransition(ctx, &Event{Message: id}, `UPDATE held SET state = 'sending' WHERE id = ? AND `+heldDue,
		id, t, t)
}

func (s *SQLite) MarkHeldSent(ctx context.Context, id string, now time.Time) error {
	return s.heldTransition(ctx, &Event{Message: id, At: now, Event: "sent", Actor: "zipgate", Via: "scheduler"},
		`UPDATE held SET state = 'sent', finished_at = ?, last_error = '' WHERE id = ? AND state = 'sending'`, ms(now), id)
}

func (s *SQLite) MarkHeldRetry(ctx context.Context, id string, next time.Time, reason string) error {
	return s.heldTransition(ctx, &Event{Message: id},
		`UPDATE held SET state = 'held', attempts = attempts + 1, next_attempt = ?, last_error = ?
		WHERE id = ? AND state = 'sending'`, ms(next), reason, id)
}

func (s *SQLite) MarkHeldFailed(ctx context.Context, id string, now time.Time, reason string) error {
	return s.heldTransition(ctx, &Event{Message: id, At: now, Event: "failed", Actor: "zipgate", Via: "scheduler", Detail: reason},
		`UPDATE held SET state = 'failed', finished_at = ?, attempts = attempts + 1, last_error = ?
		WHERE id = ? AND state = 'sending'`, ms(now), reason, id)
}

func (s *SQLite) ExpireHeld(ctx context.Context, id string, now time.Time) error {
	return s.heldTransition(ctx, &Event{Message: id, At: now, Event: "expired", Actor: "zipgate", Via: "scheduler"},
		`UPDATE held SET state = 'expired', finished_at = ? WHERE id = ? AND state = 'held' AND expires_at > 0
		AND expires_at <= ?`, ms(now), id, ms(now))
}

func (s *SQLite) RecoverHeld(ctx context.Context) (int, error) {
	res, err := s.exec(ctx, false, `UPDATE held SET state = 'held' WHERE state = 'sending'`)
	if err != nil {
		return 0, err
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

// notLate: a decision comes before the message's deadline (or it has
// none); after it, the message is as good as expired.
const notLate = `(expires_at = 0 OR expires_at > ?)`

// ErrTooLate: the time to decide on a held message is over.
var ErrTooLate = errors.New("the time to decide on this message is over")

func (s *SQLite) SendHeldNow(ctx context.Context, id, actor, via string, now time.Time) error {
	return s.late(ctx, id, now, s.heldTransition(ctx, &Event{Message: id, At: now, Event: "send_now", Actor: actor, Via: via},
		`UPDATE held SET sender_ok = 1, hold_until = MIN(hold_until, ?), next_attempt = 0
		WHERE id = ? AND state = 'held' AND `+notLate, ms(now), id, ms(now)))
}

func (s *SQLite) CancelHeld(ctx context.Context, id, actor, via string, now time.Time) error {
	return s.heldTransition(ctx, &Event{Message: id, At: now, Event: "canceled", Actor: actor, Via: via},
		`UPDATE held SET state = 'canceled', finished_at = ?, decided_by = ? WHERE id = ? AND state = 'held'`,
		ms(now), actor, id)
}

func (s *SQLite) RejectHeld(ctx context.Context, id, approver, via, reason string, now time.Time) error {
	if err := s.mayDecide(ctx, id, approver); err != nil {
		return err
	}
	return s.late(ctx, id, now, s.heldTransition(ctx, &Event{Message: id, At: now, Event: "rejected", Actor: approver, Via: via, Detail: reason},
		`UPDATE held SET state = 'rejected', finished_at = ?, decided_by = ?, reason = ? WHERE id = ? AND state = 'held'
		AND `+notLate, ms(now), approver, reason, id, ms(now)))
}

// approverOf: addr is in one of the sets still to approve.
func approverOf(h *HeldMessage, addr string) bool {
	for _, set := range h.Approvals {
		if slices.Contains(set, strings.ToLower(addr)) {
			return true
		}
	}
	return false
}

// approve decides an approval of h read under the store's lock: the sets
// of approvers still to approve, h.Approved with this one added, and the
// event to record; or why it cannot count.
func approve(h *HeldMessage, approver, via string, now time.Time) ([][]string, Event, error) {
	switch {
	case h.State != HeldWaiting:
		return nil, Event{}, heldStateErr(h.State)
	case !h.Expires.IsZero() && !h.Expires.After(now):
		return nil, Event{}, ErrTooLate
	case !approverOf(h, approver):
		return nil, Event{}, ErrNotApprover
	}
	a := strings.ToLower(approver)
	left := [][]string{}
	for _, set := range h.Approvals {
		if !slices.Contains(set, a) {
			left = append(left, set)
		}
	}
	h.Approved = append(h.Approved, Approval{By: a, At: now, Via: via})
	return left, Event{Message: h.ID, At: now, Event: "approved", Actor: a, Via: via}, nil
}

func (s *SQLite) ApproveHeld(ctx context.Context, id, approver, via string, now time.Time) error {
	tx, done, err := s.begin(ctx, false)
	if err != nil {
		return err
	}
	defer done()
	h, err := scanHeld(tx.QueryRowContext(ctx, `SELECT `+heldColumns+` FROM held WHERE id = ?`, id))
	if err != nil {
		return err
	}
	left, e, err := approve(h, approver, via, now)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE held SET approvals = ?, approved = ?, next_attempt = 0 WHERE id = ?`,
		jsonText(left), jsonText(h.Approved), id); err != nil {
		return err
	}
	if err := addEvent(ctx, tx, e); err != nil {
		return err
	}
	return tx.Commit()
}

func (s *SQLite) SetHeldToken(ctx context.Context, id string, tokenHash []byte) error {
	res, err := s.exec(ctx, false, `UPDATE held SET token_hash = ? WHERE id = ?`, tokenHash, id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

func (s *SQLite) AddApproverToken(ctx context.Context, id, approver string, tokenHash []byte) error {
	_, err := s.exec(ctx, false, `INSERT INTO approver_tokens (token_hash, held, approver) VALUES (?, ?, ?)`,
		tokenHash, id, strings.ToLower(approver))
	return err
}

func (s *SQLite) MarkHeldNoticeSent(ctx context.Context, id string) error {
	_, err := s.exec(ctx, false, `UPDATE held SET notice_sent = 1 WHERE id = ?`, id)
	return err
}

func (s *SQLite) MarkHeldRequestsSent(ctx context.Context, id string) error {
	_, err := s.exec(ctx, false, `UPDATE held SET requests_sent = 1 WHERE id = ?`, id)
	return err
}

func (s *SQLite) MarkHeldConfirmSent(ctx context.Context, id string) error {
	_, err := s.exec(ctx, false, `UPDATE held SET confirm_sent = 1 WHERE id = ?`, id)
	return err
}

func (s *SQLite) MarkHeldNoticeRetry(ctx context.Context, id string, next time.Time) error {
	_, err := s.exec(ctx, false, `UPDATE held SET notice_attempts = notice_attempts + 1, notice_next = ? WHERE id = ?`,
		ms(next), id)
	return err
}

const insertEvent = `INSERT INTO events (message, at, event, actor, via, detail, target) VALUES (?, ?, ?, ?, ?, ?, ?)`

func addEvent(ctx context.Context, tx *sql.Tx, e Event) error {
	_, err := tx.ExecContext(ctx, insertEvent, e.Message, ms(e.At), e.Event, e.Actor, e.Via, e.Detail, e.Target)
	return err
}

func (s *SQLite) AddEvent(ctx context.Context, e Event) error {
	_, err := s.exec(ctx, false, insertEvent, e.Message, ms(e.At), e.Event, e.Actor, e.Via, e.Detail, e.Target)
	return err
}
