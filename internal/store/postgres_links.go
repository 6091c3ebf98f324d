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

// Download links on PostgreSQL: the statements of links.go; LinkWork
// leases as the jobs' Work does.

// linkInsert is the INSERT of a new (pending) link, its secrets sealed.
func (p *Postgres) linkInsert(l *Link) (string, []any, error) {
	key, err := p.sec.seal(linkAD(l.ID, "key"), string(l.FileKey))
	if err != nil {
		return "", nil, err
	}
	pw, err := p.sec.seal(linkAD(l.ID, "password"), l.Password)
	if err != nil {
		return "", nil, err
	}
	token, err := p.sec.seal(linkAD(l.ID, "token"), l.Token)
	if err != nil {
		return "", nil, err
	}
	return rebind(`INSERT INTO links (id, message, msg_key, state, auth, sender, rcpts, header_from, subject,
		message_id, zip_name, language, files, file_key, password, token, token_hash, created_at, expires_at, max_downloads)
		VALUES (?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		[]any{l.ID, l.Message, l.Key, l.Auth, l.Sender, jsonText(l.Rcpts), l.HeaderFrom, l.Subject, l.MessageID, l.ZipName,
			l.Language, jsonText(orEmpty(l.Files)), key, pw, token, l.TokenHash, ms(l.CreatedAt), ms(l.ExpiresAt), l.MaxDownloads}, nil
}

func (p *Postgres) getLink(ctx context.Context, db pgdb, id string) (*Link, error) {
	return p.scanLink(db.QueryRow(ctx, `SELECT `+linkColumns+` FROM links WHERE id = $1`, id))
}

// linkMiss explains why an update that needs an active link changed
// nothing.
func pgLinkMiss(ctx context.Context, tx pgx.Tx, id string) error {
	var st LinkState
	err := tx.QueryRow(ctx, `SELECT state FROM links WHERE id = $1`, id).Scan(&st)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return ErrNotFound
	case err != nil:
		return err
	case st == LinkPending:
		return ErrLinkNotActive
	}
	return ErrLinkEnded
}

// LinkDownload: the UPDATE counts under the limit in one statement, so
// two recipients on two nodes racing for the last download cannot both
// get it (the row lock makes the second see the first's count).
func (p *Postgres) LinkDownload(ctx context.Context, id string, now time.Time, e Event) (*Link, error) {
	var l *Link
	err := p.inTx(ctx, func(tx pgx.Tx) error {
		n, err := p.exec(ctx, tx, `UPDATE links SET downloads = downloads + 1,
			first_download_at = CASE WHEN first_download_at = 0 THEN ? ELSE first_download_at END
			WHERE id = ? AND state = 'active' AND expires_at > ? AND (max_downloads = 0 OR downloads < max_downloads)`,
			ms(now), id, ms(now))
		if err != nil {
			return err
		}
		if n != 1 {
			return pgLinkMiss(ctx, tx, id)
		}
		if err := pgAddEvent(ctx, tx, e); err != nil {
			return err
		}
		if l, err = p.getLink(ctx, tx, id); err != nil {
			return err
		}
		if l.Downloads == 1 {
			return notify(ctx, tx, TopicLinks) // the first-download notice
		}
		return nil
	})
	return l, err
}

func (p *Postgres) LinkFailure(ctx context.Context, id string, lockAt int, e Event) (*Link, error) {
	var l *Link
	err := p.inTx(ctx, func(tx pgx.Tx) error {
		var failures int
		err := tx.QueryRow(ctx, `UPDATE links SET failures = failures + 1 WHERE id = $1 AND state = 'active' RETURNING failures`,
			id).Scan(&failures)
		if errors.Is(err, pgx.ErrNoRows) {
			return pgLinkMiss(ctx, tx, id)
		}
		if err != nil {
			return err
		}
		if err := pgAddEvent(ctx, tx, e); err != nil {
			return err
		}
		if failures >= lockAt {
			lock := Event{Message: e.Message, At: e.At, Event: "link_locked", Actor: "zipgate", Via: e.Via,
				Detail: fmt.Sprintf("%d wrong tries", failures)}
			if err := p.endLink(ctx, tx, id, LinkLocked, "zipgate", lock); err != nil {
				return err
			}
		}
		l, err = p.getLink(ctx, tx, id)
		return err
	})
	return l, err
}

func (p *Postgres) SetLinkCode(ctx context.Context, id string, hash []byte, to string, expires time.Time, e Event) error {
	return p.inTx(ctx, func(tx pgx.Tx) error {
		n, err := p.exec(ctx, tx, `UPDATE links SET code_hash = ?, code_to = ?, code_expires = ?, code_sent_at = ?
			WHERE id = ? AND state = 'active'`, hash, to, ms(expires), ms(e.At), id)
		if err != nil {
			return err
		}
		if n != 1 {
			return pgLinkMiss(ctx, tx, id)
		}
		return pgAddEvent(ctx, tx, e)
	})
}

func (p *Postgres) ClearLinkCode(ctx context.Context, id string) error {
	_, err := p.exec(ctx, p.pool, `UPDATE links SET code_hash = NULL, code_expires = 0 WHERE id = ?`, id)
	return err
}

func (p *Postgres) EndLink(ctx context.Context, id string, state LinkState, by string, e Event) error {
	return p.inTx(ctx, func(tx pgx.Tx) error { return p.endLink(ctx, tx, id, state, by, e) })
}

// endLink: as the SQLite store's; the other nodes' links schedulers are
// told, so the files go at once wherever they run.
func (p *Postgres) endLink(ctx context.Context, tx pgx.Tx, id string, state LinkState, by string, e Event) error {
	if !state.Ended() {
		return fmt.Errorf("link %s: %q is not an end", id, state)
	}
	n, err := p.exec(ctx, tx, `UPDATE links SET state = ?, ended_at = ?, ended_by = ?, file_key = NULL,
		password = NULL, token = NULL, code_hash = NULL, code_expires = 0
		WHERE id = ? AND state IN ('pending', 'active')`, string(state), ms(e.At), by, id)
	if err != nil {
		return err
	}
	if n != 1 {
		var st LinkState
		err := tx.QueryRow(ctx, `SELECT state FROM links WHERE id = $1`, id).Scan(&st)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		return ErrLinkEnded
	}
	if _, err := p.exec(ctx, tx, `UPDATE jobs SET state = 'canceled', finished_at = ?, password = NULL,
		confirm_sent = true WHERE id = ? AND state IN ('pending', 'scheduled')`, ms(e.At), id); err != nil {
		return err
	}
	if err := pgAddEvent(ctx, tx, e); err != nil {
		return err
	}
	if err := notify(ctx, tx, TopicLinks); err != nil {
		return err
	}
	return notify(ctx, tx, TopicJobs)
}

const pgLinkNoticeOwed = `notice_next <= ? AND ((first_download_at > 0 AND NOT first_notice_sent)
	OR (state = 'locked' AND NOT end_notice_sent))`

func (p *Postgres) LinkWork(ctx context.Context, now, retention time.Time, filesGrace time.Duration, limit int) ([]*Link, error) {
	t := ms(now)
	list, err := p.queryLinks(ctx, `WITH picked AS (
		SELECT id AS pid FROM links WHERE ((state IN ('pending', 'active') AND (expires_at <= ? OR created_at < ?))
			OR (state NOT IN ('pending', 'active') AND NOT files_gone AND ended_at <= ?)
			OR (`+pgLinkNoticeOwed+`))
		AND (node = ? OR lease_until <= ?)
		ORDER BY created_at, id LIMIT ? FOR UPDATE SKIP LOCKED)
		UPDATE links SET node = ?, lease_until = ? FROM picked WHERE id = pid RETURNING `+linkColumns,
		t, ms(retention), ms(now.Add(-filesGrace)), t, p.node, t, limit, p.node, p.until(now))
	if err != nil {
		return nil, err
	}
	slices.SortFunc(list, func(a, b *Link) int {
		return cmp.Or(cmp.Compare(ms(a.CreatedAt), ms(b.CreatedAt)), strings.Compare(a.ID, b.ID))
	})
	p.keep("links", idsOf(list, func(l *Link) string { return l.ID }))
	return list, nil
}

func (p *Postgres) NextLinkWake(ctx context.Context, filesGrace time.Duration) (time.Time, error) {
	var t *int64
	err := p.pool.QueryRow(ctx, rebind(`SELECT MIN(t) FROM (
		SELECT GREATEST(expires_at, CASE WHEN node = ? THEN 0 ELSE lease_until END) AS t FROM links
			WHERE state IN ('pending', 'active')
		UNION ALL
		SELECT GREATEST(ended_at + ?::bigint, 1, CASE WHEN node = ? THEN 0 ELSE lease_until END) FROM links
			WHERE state NOT IN ('pending', 'active') AND NOT files_gone
		UNION ALL
		SELECT GREATEST(notice_next, 1, CASE WHEN node = ? THEN 0 ELSE lease_until END) FROM links
			WHERE (first_download_at > 0 AND NOT first_notice_sent) OR (state = 'locked' AND NOT end_notice_sent)) w`),
		p.node, filesGrace.Milliseconds(), p.node, p.node).Scan(&t)
	if err != nil || t == nil {
		return time.Time{}, err
	}
	return time.UnixMilli(*t), nil
}

func (p *Postgres) MarkLinkFilesGone(ctx context.Context, id string) error {
	_, err := p.exec(ctx, p.pool, `UPDATE links SET files_gone = true WHERE id = ?`, id)
	return err
}

func (p *Postgres) MarkLinkNotice(ctx context.Context, id, which string) error {
	col := map[string]string{"first": "first_notice_sent", "end": "end_notice_sent"}[which]
	if col == "" {
		return fmt.Errorf("no link notice %q", which)
	}
	_, err := p.exec(ctx, p.pool, `UPDATE links SET `+col+` = true, notice_attempts = 0, notice_next = 0 WHERE id = ?`, id)
	return err
}

func (p *Postgres) MarkLinkNoticeRetry(ctx context.Context, id string, next time.Time) error {
	_, err := p.exec(ctx, p.pool, `UPDATE links SET notice_attempts = notice_attempts + 1, notice_next = ? WHERE id = ?`,
		ms(next), id)
	return err
}
