package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Held messages, approver tokens and events on PostgreSQL: the
// statements of held.go, with leases as for the jobs.

func (p *Postgres) HoldMessage(ctx context.Context, m *Message, h *HeldMessage) error {
	if h.Approvals == nil {
		h.Approvals = [][]string{}
	}
	if h.Approved == nil {
		h.Approved = []Approval{}
	}
	b := &pgx.Batch{}
	b.Queue(rebind(upsertMessage), messageArgs(m)...)
	b.Queue(rebind(`INSERT INTO held (id, msg_key, state, sender, rcpts, envelope, size, subject,
		header_from, header_to, header_cc, message_id, files, reasons, visible, hold_until, expires_at, sender_ok,
		approvals, approved, created_at) VALUES (?, ?, 'held', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		h.ID, h.Key, h.Sender, jsonText(h.Rcpts), h.Envelope, h.Size, h.Subject, h.HeaderFrom, h.HeaderTo, h.HeaderCc,
		h.MessageID, jsonText(orEmpty(h.Files)), jsonText(h.Reasons), h.Visible, ms(h.HoldUntil), ms(h.Expires),
		h.SenderOK, jsonText(h.Approvals), jsonText(h.Approved), ms(h.CreatedAt))
	queueEvent(b, Event{Message: h.ID, At: h.CreatedAt, Event: "held", Actor: "zipgate", Detail: strings.Join(h.Reasons, ",")})
	if err := p.pool.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("held %s: %w", h.ID, err)
	}
	h.State = HeldWaiting
	return nil
}

func queueEvent(b *pgx.Batch, e Event) {
	b.Queue(rebind(insertEvent), e.Message, ms(e.At), e.Event, e.Actor, e.Via, e.Detail, e.Target)
}

func pgAddEvent(ctx context.Context, db pgdb, e Event) error {
	_, err := db.Exec(ctx, rebind(insertEvent), e.Message, ms(e.At), e.Event, e.Actor, e.Via, e.Detail, e.Target)
	return err
}

// What may leave at ?: waiting, its hold over, nobody to wait for.
const pgHeldDue = `state = 'held' AND hold_until <= ? AND sender_ok AND approvals = '[]' AND next_attempt <= ?`

// Mail to the sender or the approvers owed.
const pgHeldMailOwed = `notice_next <= ? AND ((state = 'held' AND (NOT notice_sent OR NOT requests_sent))
	OR (state IN ('sent', 'canceled', 'rejected', 'expired', 'failed') AND NOT confirm_sent))`

// HeldWork leases what needs work and no other node holds; a message
// left on its way by a node whose lease ran out waits again.
func (p *Postgres) HeldWork(ctx context.Context, now time.Time, limit int) ([]*HeldMessage, error) {
	t := ms(now)
	list, err := p.queryHeld(ctx, `WITH picked AS (
		SELECT id AS pid FROM held WHERE ((`+pgHeldDue+`)
			OR (state = 'held' AND expires_at > 0 AND expires_at <= ?)
			OR (`+pgHeldMailOwed+`)
			OR (state = 'sending' AND lease_until <= ?))
		AND (node = ? OR lease_until <= ?)
		ORDER BY created_at, id LIMIT ? FOR UPDATE SKIP LOCKED)
		UPDATE held SET node = ?, lease_until = ?,
			state = CASE WHEN state = 'sending' THEN 'held' ELSE state END
		FROM picked WHERE id = pid RETURNING `+heldColumns,
		t, t, t, t, t, p.node, t, limit, p.node, p.until(now))
	if err != nil {
		return nil, err
	}
	slices.SortFunc(list, func(a, b *HeldMessage) int {
		return cmp.Or(cmp.Compare(ms(a.CreatedAt), ms(b.CreatedAt)), strings.Compare(a.ID, b.ID))
	})
	p.keep("held", idsOf(list, func(h *HeldMessage) string { return h.ID }))
	return list, nil
}

func (p *Postgres) NextHeldWake(ctx context.Context) (time.Time, error) {
	var t *int64
	err := p.pool.QueryRow(ctx, rebind(`SELECT MIN(t) FROM (
		SELECT GREATEST(hold_until, next_attempt, 1, CASE WHEN node = ? THEN 0 ELSE lease_until END) AS t FROM held
			WHERE state = 'held' AND sender_ok AND approvals = '[]'
		UNION ALL
		SELECT GREATEST(expires_at, CASE WHEN node = ? THEN 0 ELSE lease_until END) FROM held
			WHERE state = 'held' AND expires_at > 0
		UNION ALL
		SELECT GREATEST(notice_next, 1, CASE WHEN node = ? THEN 0 ELSE lease_until END) FROM held
			WHERE (state = 'held' AND (NOT notice_sent OR NOT requests_sent))
			OR (state IN ('sent', 'canceled', 'rejected', 'expired', 'failed') AND NOT confirm_sent)
		UNION ALL
		SELECT lease_until FROM held WHERE state = 'sending' AND node <> ?) w`), p.node, p.node, p.node, p.node).Scan(&t)
	if err != nil || t == nil {
		return time.Time{}, err
	}
	return time.UnixMilli(*t), nil
}

// heldTransition runs an UPDATE that applies only in some states, records
// the event in the same transaction, and explains a miss by the state.
func (p *Postgres) heldTransition(ctx context.Context, e *Event, topic string, query string, args ...any) error {
	return p.inTx(ctx, func(tx pgx.Tx) error {
		n, err := p.exec(ctx, tx, query, args...)
		if err != nil {
			return err
		}
		if n != 1 {
			var st HeldState
			err := tx.QueryRow(ctx, `SELECT state FROM held WHERE id = $1`, e.Message).Scan(&st)
			if errors.Is(err, pgx.ErrNoRows) {
				return ErrNotFound
			}
			if err != nil {
				return err
			}
			return heldStateErr(st)
		}
		if e.Event != "" {
			if err := pgAddEvent(ctx, tx, *e); err != nil {
				return err
			}
		}
		if topic != "" {
			return notify(ctx, tx, topic)
		}
		return nil
	})
}

// ClaimHeld, like Claim, never shortens the lease the message has.
func (p *Postgres) ClaimHeld(ctx context.Context, id string, now time.Time) error {
	t := ms(now)
	return p.heldTransition(ctx, &Event{Message: id}, "", `UPDATE held SET state = 'sending', node = ?, lease_until = GREATEST(lease_until, ?)
		WHERE id = ? AND `+pgHeldDue+` AND (node = ? OR lease_until <= ?)`, p.node, p.until(now), id, t, t, p.node, t)
}

func (p *Postgres) MarkHeldSent(ctx context.Context, id string, now time.Time) error {
	return p.heldTransition(ctx, &Event{Message: id, At: now, Event: "sent", Actor: "zipgate", Via: "scheduler"}, "",
		`UPDATE held SET state = 'sent', finished_at = ?, last_error = '' WHERE id = ? AND state = 'sending' AND node = ?`,
		ms(now), id, p.node)
}

func (p *Postgres) MarkHeldRetry(ctx context.Context, id string, next time.Time, reason string) error {
	return p.heldTransition(ctx, &Event{Message: id}, "",
		`UPDATE held SET state = 'held', attempts = attempts + 1, next_attempt = ?, last_error = ?
		WHERE id = ? AND state = 'sending' AND node = ?`, ms(next), reason, id, p.node)
}

func (p *Postgres) MarkHeldFailed(ctx context.Context, id string, now time.Time, reason string) error {
	return p.heldTransition(ctx, &Event{Message: id, At: now, Event: "failed", Actor: "zipgate", Via: "scheduler", Detail: reason}, "",
		`UPDATE held SET state = 'failed', finished_at = ?, attempts = attempts + 1, last_error = ?
		WHERE id = ? AND state = 'sending' AND node = ?`, ms(now), reason, id, p.node)
}

func (p *Postgres) ExpireHeld(ctx context.Context, id string, now time.Time) error {
	return p.heldTransition(ctx, &Event{Message: id, At: now, Event: "expired", Actor: "zipgate", Via: "scheduler"}, "",
		`UPDATE held SET state = 'expired', finished_at = ? WHERE id = ? AND state = 'held' AND expires_at > 0
		AND expires_at <= ?`, ms(now), id, ms(now))
}

// RecoverHeld at start: messages left on their way by this node, or
// whose lease ran out, wait again; this node's other leases end.
func (p *Postgres) RecoverHeld(ctx context.Context) (int, error) {
	var n int64
	err := p.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		n, err = p.exec(ctx, tx, `UPDATE held SET state = 'held' WHERE state = 'sending' AND (node = ? OR lease_until <= ?)`,
			p.node, ms(p.now()))
		if err != nil {
			return err
		}
		_, err = p.exec(ctx, tx, `UPDATE held SET lease_until = 0 WHERE node = ? AND lease_until > 0`, p.node)
		return err
	})
	return int(n), err
}

func (p *Postgres) SendHeldNow(ctx context.Context, id, actor, via string, now time.Time) error {
	return p.late(ctx, id, now, p.heldTransition(ctx, &Event{Message: id, At: now, Event: "send_now", Actor: actor, Via: via}, TopicHeld,
		`UPDATE held SET sender_ok = true, hold_until = LEAST(hold_until, ?), next_attempt = 0
		WHERE id = ? AND state = 'held' AND `+notLate, ms(now), id, ms(now)))
}

func (p *Postgres) CancelHeld(ctx context.Context, id, actor, via string, now time.Time) error {
	return p.heldTransition(ctx, &Event{Message: id, At: now, Event: "canceled", Actor: actor, Via: via}, TopicHeld,
		`UPDATE held SET state = 'canceled', finished_at = ?, decided_by = ? WHERE id = ? AND state = 'held'`,
		ms(now), actor, id)
}

func (p *Postgres) RejectHeld(ctx context.Context, id, approver, via, reason string, now time.Time) error {
	if err := p.mayDecide(ctx, id, approver); err != nil {
		return err
	}
	return p.late(ctx, id, now, p.heldTransition(ctx, &Event{Message: id, At: now, Event: "rejected", Actor: approver, Via: via, Detail: reason}, TopicHeld,
		`UPDATE held SET state = 'rejected', finished_at = ?, decided_by = ?, reason = ? WHERE id = ? AND state = 'held'
		AND `+notLate, ms(now), approver, reason, id, ms(now)))
}

// ApproveHeld reads and updates the row under its lock (FOR UPDATE): two
// approvers at once on two nodes both count.
func (p *Postgres) ApproveHeld(ctx context.Context, id, approver, via string, now time.Time) error {
	return p.inTx(ctx, func(tx pgx.Tx) error {
		h, err := scanHeld(tx.QueryRow(ctx, `SELECT `+heldColumns+` FROM held WHERE id = $1 FOR UPDATE`, id))
		if err != nil {
			return err
		}
		left, e, err := approve(h, approver, via, now)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE held SET approvals = $1, approved = $2, next_attempt = 0 WHERE id = $3`,
			jsonText(left), jsonText(h.Approved), id); err != nil {
			return err
		}
		if err := pgAddEvent(ctx, tx, e); err != nil {
			return err
		}
		return notify(ctx, tx, TopicHeld)
	})
}

func (p *Postgres) SetHeldToken(ctx context.Context, id string, tokenHash []byte) error {
	n, err := p.exec(ctx, p.pool, `UPDATE held SET token_hash = ? WHERE id = ?`, tokenHash, id)
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

func (p *Postgres) AddApproverToken(ctx context.Context, id, approver string, tokenHash []byte) error {
	_, err := p.exec(ctx, p.pool, `INSERT INTO approver_tokens (token_hash, held, approver) VALUES (?, ?, ?)`,
		tokenHash, id, strings.ToLower(approver))
	return err
}

func (p *Postgres) MarkHeldNoticeSent(ctx context.Context, id string) error {
	_, err := p.exec(ctx, p.pool, `UPDATE held SET notice_sent = true WHERE id = ?`, id)
	return err
}

func (p *Postgres) MarkHeldRequestsSent(ctx context.Context, id string) error {
	_, err := p.exec(ctx, p.pool, `UPDATE held SET requests_sent = true WHERE id = ?`, id)
	return err
}

func (p *Postgres) MarkHeldConfirmSent(ctx context.Context, id string) error {
	_, err := p.exec(ctx, p.pool, `UPDATE held SET confirm_sent = true WHERE id = ?`, id)
	return err
}

func (p *Postgres) MarkHeldNoticeRetry(ctx context.Context, id string, next time.Time) error {
	_, err := p.exec(ctx, p.pool, `UPDATE held SET notice_attempts = notice_attempts + 1, notice_next = ? WHERE id = ?`,
		ms(next), id)
	return err
}

func (p *Postgres) AddEvent(ctx context.Context, e Event) error { return pgAddEvent(ctx, p.pool, e) }
