package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// The message records and deliveries on PostgreSQL. SaveMessage and
// Delivered go in one round trip each: a batch is one implicit
// transaction, all of it or none.

func (p *Postgres) Prior(ctx context.Context, key []byte, rcpts []string) (*Prior, error) {
	pr := &Prior{Delivered: map[string]bool{}}
	rows, err := p.pool.Query(ctx, `SELECT rcpt FROM deliveries WHERE msg_key = $1`, key)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var r string
		if err := rows.Scan(&r); err != nil {
			rows.Close()
			return nil, err
		}
		pr.Delivered[r] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	tries, err := p.queryMessages(ctx, `SELECT `+messageColumns+` FROM messages WHERE msg_key = ? ORDER BY created_at DESC`, key)
	if err != nil {
		return nil, err
	}
	for _, m := range tries {
		if sameSet(m.Rcpts, rcpts) {
			pr.Message = m
			break
		}
	}
	pr.Pending, err = p.query(ctx, p.pool, `SELECT `+jobColumns+` FROM jobs WHERE msg_key = ? AND state = 'pending' ORDER BY id`, key)
	if err != nil {
		return nil, err
	}
	canceled, err := p.query(ctx, p.pool, `SELECT `+jobColumns+` FROM jobs WHERE msg_key = ? AND state = 'canceled' ORDER BY id`, key)
	if err != nil {
		return nil, err
	}
	for _, j := range canceled {
		for _, r := range j.Rcpts {
			if !pr.Delivered[r] {
				pr.TakenBack = append(pr.TakenBack, j)
				break
			}
		}
	}
	pr.Links = map[string]*Link{}
	for _, j := range pr.Pending {
		l, err := p.GetLink(ctx, j.ID)
		switch {
		case err == nil:
			pr.Links[j.ID] = l
		case !errors.Is(err, ErrNotFound):
			return nil, err
		}
	}
	return pr, nil
}

func (p *Postgres) SaveMessage(ctx context.Context, m *Message, jobs ...*Job) error {
	b := &pgx.Batch{}
	b.Queue(rebind(upsertMessage), messageArgs(m)...)
	for _, j := range jobs {
		sealed, err := p.sec.seal(j.ID, j.Password)
		if err != nil {
			return err
		}
		b.Queue(rebind(insertJob), jobArgs(j, sealed)...)
		if j.Link != nil {
			q, args, err := p.linkInsert(j.Link)
			if err != nil {
				return err
			}
			b.Queue(q, args...)
		}
	}
	if err := p.pool.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("message %s: %w", m.ID, err)
	}
	for _, j := range jobs {
		j.State = Pending
		if j.Link != nil {
			j.Link.State = LinkPending
		}
	}
	return nil
}

// Delivered: the record, the deliveries, the job scheduled and its link
// opened, in one round trip. Its commit does not wait for the disk
// (synchronous_commit off for this transaction only): from then on the
// record is the database's, whatever happens to zipgate, and that is
// what the crash window is about; Sync makes it durable before Postfix
// hears 250, as the SQLite store does.
func (p *Postgres) Delivered(ctx context.Context, m *Message, rcpts []string, job string, due, now time.Time) error {
	b := &pgx.Batch{}
	b.Queue(`SELECT set_config('synchronous_commit', 'off', true)`)
	b.Queue(rebind(upsertMessage), messageArgs(m)...)
	for _, rcpt := range rcpts {
		b.Queue(`INSERT INTO deliveries (msg_key, rcpt, message, job, delivered_at) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT DO NOTHING`, m.Key, rcpt, m.ID, job, ms(now))
	}
	var found *int
	if job != "" {
		// The delay counts from now, when the copy left: a job an earlier
		// try left pending keeps its full cancel window.
		b.Queue(`UPDATE jobs SET state = 'scheduled', due_at = $1 WHERE id = $2 AND state = 'pending'`, ms(due), job)
		// A download link opens with its copy; its token is no longer
		// needed for a retry.
		b.Queue(`UPDATE links SET state = 'active', token = NULL WHERE id = $1 AND state = 'pending'`, job)
		b.Queue(`SELECT COUNT(*)::int FROM jobs WHERE id = $1`, job).QueryRow(func(row pgx.Row) error {
			var n int
			if err := row.Scan(&n); err != nil {
				return err
			}
			found = &n
			return nil
		})
	}
	if err := p.pool.SendBatch(ctx, b).Close(); err != nil {
		return err
	}
	if found != nil && *found == 0 {
		return fmt.Errorf("job %s: %w", job, ErrNotFound)
	}
	return nil
}

func (p *Postgres) queryMessages(ctx context.Context, q string, args ...any) ([]*Message, error) {
	rows, err := p.pool.Query(ctx, rebind(q), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*Message
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

func (p *Postgres) GetMessage(ctx context.Context, id string) (*Message, error) {
	found, err := p.queryMessages(ctx, `SELECT `+messageColumns+` FROM messages WHERE id = ?`, id)
	if err != nil {
		return nil, err
	}
	if len(found) == 0 {
		return nil, ErrNoMessage
	}
	return found[0], nil
}

func (p *Postgres) ListMessages(ctx context.Context, limit int) ([]*Message, error) {
	return p.queryMessages(ctx, `SELECT `+messageColumns+` FROM messages ORDER BY created_at DESC, id LIMIT ?`, limit)
}
