package store

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// The release jobs on PostgreSQL: the statements of sqlite.go, with
// leases. A job is Claimed (Scheduled → Sending) by one node, under the
// lease; only that node completes it. A job left Sending by a node that
// stopped renewing goes back to Scheduled once its lease ran out, at the
// next node's Work.

func (p *Postgres) Create(ctx context.Context, j *Job) error {
	sealed, err := p.sec.seal(j.ID, j.Password)
	if err != nil {
		return err
	}
	_, err = p.exec(ctx, p.pool, insertJob, jobArgs(j, sealed)...)
	if err == nil {
		j.State = Pending
	}
	return err
}

// transition runs an UPDATE that applies only in the given states and
// explains a miss by the job's current state.
func (p *Postgres) transition(ctx context.Context, id string, now time.Time, topic string, query string, args ...any) error {
	return p.inTx(ctx, func(tx pgx.Tx) error {
		n, err := p.exec(ctx, tx, query, args...)
		if err != nil {
			return err
		}
		if n == 1 {
			if topic != "" {
				return notify(ctx, tx, topic)
			}
			return nil
		}
		return p.jobMiss(ctx, tx, id, now)
	})
}

// jobMiss says why a job could not be changed: its state, or (a job
// another node holds) ErrSending.
func (p *Postgres) jobMiss(ctx context.Context, db pgdb, id string, now time.Time) error {
	var st State
	var node string
	var lease int64
	err := db.QueryRow(ctx, `SELECT state, node, lease_until FROM jobs WHERE id = $1`, id).Scan(&st, &node, &lease)
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrNotFound
	}
	if err != nil {
		return err
	}
	switch {
	case st == Released:
		return ErrAlreadyReleased
	case st == Canceled:
		return ErrAlreadyCanceled
	case st == Sending:
		return ErrSending
	case st == Scheduled && node != p.node && lease > ms(now):
		return ErrSending // another node works on it
	}
	return ErrFinished
}

func (p *Postgres) Schedule(ctx context.Context, id string) error {
	return p.transition(ctx, id, time.Now(), "", `UPDATE jobs SET state = 'scheduled' WHERE id = ? AND state = 'pending'`, id)
}

func (p *Postgres) Discard(ctx context.Context, id string) error {
	return p.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := p.exec(ctx, tx, `DELETE FROM jobs WHERE id = ? AND state = 'pending'`, id); err != nil {
			return err
		}
		_, err := p.exec(ctx, tx, `DELETE FROM links WHERE id = ? AND state = 'pending'`, id)
		return err
	})
}

// Recover at start: jobs left Sending by this node (its name outlives a
// restart: the data_dir lock says the last process that had it is gone)
// or whose lease ran out go back to Scheduled; those of nodes still at
// work keep their leases. What this node held before the stop (jobs,
// links) it takes up at once, without waiting for its leases to run out.
func (p *Postgres) Recover(ctx context.Context) (int, error) {
	var n int64
	err := p.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		n, err = p.exec(ctx, tx, `UPDATE jobs SET state = 'scheduled' WHERE state = 'sending' AND (node = ? OR lease_until <= ?)`,
			p.node, ms(p.now()))
		if err != nil {
			return err
		}
		for _, table := range []string{"jobs", "links"} {
			if _, err := p.exec(ctx, tx, `UPDATE `+table+` SET lease_until = 0 WHERE node = ? AND lease_until > 0`, p.node); err != nil {
				return err
			}
		}
		return nil
	})
	return int(n), err
}

func (p *Postgres) Cancel(ctx context.Context, id string, now time.Time) error {
	return p.transition(ctx, id, now, TopicJobs, `UPDATE jobs SET state = 'canceled', finished_at = ?, password = NULL
		WHERE id = ? AND state IN ('pending', 'scheduled')`, ms(now), id)
}

func (p *Postgres) ReleaseNow(ctx context.Context, id string, now time.Time) error {
	return p.transition(ctx, id, now, TopicJobs, `UPDATE jobs SET due_at = CASE WHEN due_at = 0 OR due_at > ? THEN ? ELSE due_at END,
		next_attempt = 0 WHERE id = ? AND state IN ('pending', 'scheduled')`, ms(now), ms(now), id)
}

// Claim takes a due job for this node: not one another node holds. It
// never shortens the lease the job has: a claim late in a long pass
// (its now read at the start) must not write a lease that has already
// run out, which the renewal would skip and another node take over.
func (p *Postgres) Claim(ctx context.Context, id string, now time.Time) error {
	return p.transition(ctx, id, now, "", `UPDATE jobs SET state = 'sending', node = ?, lease_until = GREATEST(lease_until, ?)
		WHERE id = ? AND state = 'scheduled' AND due_at > 0 AND due_at <= ? AND next_attempt <= ?
		AND (node = ? OR lease_until <= ?)`, p.node, p.until(now), id, ms(now), ms(now), p.node, ms(now))
}

// The ends of a claim: only by the node that holds it.

func (p *Postgres) MarkReleased(ctx context.Context, id string, now time.Time) error {
	return p.transition(ctx, id, now, "", `UPDATE jobs SET state = 'released', finished_at = ?, password = NULL, last_error = ''
		WHERE id = ? AND state = 'sending' AND node = ?`, ms(now), id, p.node)
}

func (p *Postgres) MarkRetry(ctx context.Context, id string, next time.Time, reason string) error {
	return p.transition(ctx, id, next, "", `UPDATE jobs SET state = 'scheduled', attempts = attempts + 1, next_attempt = ?, last_error = ?
		WHERE id = ? AND state = 'sending' AND node = ?`, ms(next), reason, id, p.node)
}

func (p *Postgres) MarkFailed(ctx context.Context, id string, now time.Time, reason string) error {
	return p.transition(ctx, id, now, "", `UPDATE jobs SET state = 'failed', finished_at = ?, password = NULL, attempts = attempts + 1, last_error = ?
		WHERE id = ? AND state = 'sending' AND node = ?`, ms(now), reason, id, p.node)
}

func (p *Postgres) SetToken(ctx context.Context, id string, tokenHash []byte) error {
	n, err := p.exec(ctx, p.pool, `UPDATE jobs SET token_hash = ? WHERE id = ?`, tokenHash, id)
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

func (p *Postgres) MarkNoticeSent(ctx context.Context, id string) error {
	_, err := p.exec(ctx, p.pool, `UPDATE jobs SET notice_sent = true WHERE id = ?`, id)
	return err
}

func (p *Postgres) MarkNoticeRetry(ctx context.Context, id string, next time.Time) error {
	_, err := p.exec(ctx, p.pool, `UPDATE jobs SET notice_attempts = notice_attempts + 1, notice_next = ? WHERE id = ?`, ms(next), id)
	return err
}

func (p *Postgres) MarkConfirmSent(ctx context.Context, id string) error {
	_, err := p.exec(ctx, p.pool, `UPDATE jobs SET confirm_sent = true WHERE id = ?`, id)
	return err
}

// Purge may delete a great many rows at once (the first purge of a big
// store, a shorter retention): a long transaction (inLongTx). Only the
// scheduler's hourly pass waits on it, never a message.
func (p *Postgres) Purge(ctx context.Context, before time.Time) (int, error) {
	var n int64
	err := p.inLongTx(ctx, func(tx pgx.Tx) error {
		var err error
		n, err = p.exec(ctx, tx, `DELETE FROM jobs WHERE (finished_at > 0 AND finished_at < ?)
			OR (state = 'pending' AND created_at < ?)`, ms(before), ms(before))
		if err != nil {
			return err
		}
		for _, q := range []string{
			`DELETE FROM deliveries WHERE delivered_at < ?`,
			`DELETE FROM approver_tokens WHERE held IN (SELECT id FROM held WHERE finished_at > 0 AND finished_at < ?)`,
			`DELETE FROM held WHERE finished_at > 0 AND finished_at < ?`,
			`DELETE FROM links WHERE files_gone AND ended_at > 0 AND ended_at < ?`,
		} {
			if _, err := p.exec(ctx, tx, q, ms(before)); err != nil {
				return err
			}
		}
		return nil
	})
	return int(n), err
}

// jobsWork is what needs the scheduler at ? (four times): due passwords,
// notices owed, and claims whose node stopped renewing them.
const jobsWork = `((state = 'scheduled' AND due_at > 0 AND due_at <= ? AND next_attempt <= ?)
	OR (notice_next <= ? AND (
		(state IN ('scheduled', 'released', 'canceled', 'failed') AND NOT notice_sent)
		OR (state IN ('released', 'canceled', 'failed') AND NOT confirm_sent)))
	OR (state = 'sending' AND lease_until <= ?))`

// Work leases the jobs that need work and that no other node holds,
// skipping those another node is taking right now; a claim whose lease
// ran out goes back to Scheduled on the way.
func (p *Postgres) Work(ctx context.Context, now time.Time, limit int) ([]*Job, error) {
	t := ms(now)
	jobs, err := p.query(ctx, `WITH picked AS (
		SELECT id AS pid FROM jobs WHERE `+jobsWork+` AND (node = ? OR lease_until <= ?)
		ORDER BY due_at, id LIMIT ? FOR UPDATE SKIP LOCKED)
		UPDATE jobs SET node = ?, lease_until = ?,
			state = CASE WHEN state = 'sending' THEN 'scheduled' ELSE state END
		FROM picked WHERE id = pid RETURNING `+jobColumns,
		t, t, t, t, p.node, t, limit, p.node, p.until(now))
	if err != nil {
		return nil, err
	}
	slices.SortFunc(jobs, func(a, b *Job) int {
		return cmp.Or(cmp.Compare(ms(a.DueAt), ms(b.DueAt)), strings.Compare(a.ID, b.ID))
	})
	p.keep("jobs", idsOf(jobs, func(j *Job) string { return j.ID }))
	return jobs, nil
}

func idsOf[T any](list []T, id func(T) string) []string {
	out := make([]string, len(list))
	for i, v := range list {
		out[i] = id(v)
	}
	return out
}

// NextWake: a job another node holds needs this one at the end of its
// lease at the earliest.
func (p *Postgres) NextWake(ctx context.Context) (time.Time, error) {
	var t *int64
	err := p.pool.QueryRow(ctx, rebind(`SELECT MIN(t) FROM (
		SELECT GREATEST(due_at, next_attempt, CASE WHEN node = ? THEN 0 ELSE lease_until END) AS t FROM jobs
			WHERE state = 'scheduled' AND due_at > 0
		UNION ALL
		SELECT GREATEST(notice_next, 1, CASE WHEN node = ? THEN 0 ELSE lease_until END) FROM jobs
			WHERE (state IN ('scheduled', 'released', 'canceled', 'failed') AND NOT notice_sent)
			OR (state IN ('released', 'canceled', 'failed') AND NOT confirm_sent)
		UNION ALL
		SELECT lease_until FROM jobs WHERE state = 'sending' AND node <> ?) w`), p.node, p.node, p.node).Scan(&t)
	if err != nil || t == nil {
		return time.Time{}, err
	}
	return time.UnixMilli(*t), nil
}
