package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// The message records and deliveries on PostgreSQL. SaveMessage and
// Delivered go in one round trip each: a batch is one implicit
// transaction, all of it or none.

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
