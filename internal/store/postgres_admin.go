package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/zipgate/zipgate/internal/policy"
)

// Policies, admin accounts, sessions, API tokens and the audit searches
// on PostgreSQL: the statements of policies.go, admin_accounts.go and
// admin_audit.go. Text searches are ILIKE: case-insensitive as SQLite's
// LIKE is for ASCII (and, here, beyond it).

func (p *Postgres) ListPolicies(ctx context.Context) ([]policy.Policy, error) {
	rows, err := p.pool.Query(ctx, `SELECT `+policyColumns+` FROM policies ORDER BY domain`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []policy.Policy
	for rows.Next() {
		pol, err := scanPolicy(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *pol)
	}
	return out, rows.Err()
}

func (p *Postgres) GetPolicy(ctx context.Context, domain string) (*policy.Policy, error) {
	domain, err := policy.NormalizePattern(domain)
	if err != nil {
		return nil, err
	}
	return scanPolicy(p.pool.QueryRow(ctx, `SELECT `+policyColumns+` FROM policies WHERE domain = $1`, domain))
}

func (p *Postgres) PutPolicy(ctx context.Context, pol *policy.Policy) error {
	if err := pol.Validate(); err != nil {
		return err
	}
	pol.Domain, _ = policy.NormalizePattern(pol.Domain)
	_, err := p.exec(ctx, p.pool, `INSERT INTO policies (`+policyColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (domain) DO UPDATE SET action = excluded.action, password_to = excluded.password_to,
			delay_ms = excluded.delay_ms, zip_method = excluded.zip_method,
			filename_encoding = excluded.filename_encoding, language = excluded.language,
			note = excluded.note, updated_at = excluded.updated_at, hold_ms = excluded.hold_ms,
			approvers = excluded.approvers, guard = excluded.guard, link_expiry_ms = excluded.link_expiry_ms,
			max_downloads = excluded.max_downloads, link_auth = excluded.link_auth`, policyArgs(pol)...)
	return err
}

func (p *Postgres) DeletePolicy(ctx context.Context, domain string) error {
	domain, err := policy.NormalizePattern(domain)
	if err != nil {
		return err
	}
	n, err := p.exec(ctx, p.pool, `DELETE FROM policies WHERE domain = ?`, domain)
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNoPolicy
	}
	return nil
}

func (p *Postgres) PutAdmin(ctx context.Context, name string, hash []byte, now time.Time) (bool, error) {
	created := false
	err := p.inTx(ctx, func(tx pgx.Tx) error {
		n, err := p.exec(ctx, tx, `UPDATE admins SET password_hash = ?, updated_at = ? WHERE name = ?`, hash, ms(now), name)
		if err != nil {
			return err
		}
		if n == 0 {
			created = true
			_, err := p.exec(ctx, tx, `INSERT INTO admins (name, password_hash, created_at, updated_at) VALUES (?, ?, ?, ?)`,
				name, hash, ms(now), ms(now))
			return err
		}
		// A new password ends the sessions signed in with the old one.
		_, err = p.exec(ctx, tx, `DELETE FROM admin_sessions WHERE admin = ?`, name)
		return err
	})
	return created, err
}

func (p *Postgres) GetAdmin(ctx context.Context, name string) (*Admin, error) {
	return scanAdmin(p.pool.QueryRow(ctx, `SELECT `+adminColumns+` FROM admins WHERE name = $1`, name))
}

func (p *Postgres) ListAdmins(ctx context.Context) ([]Admin, error) {
	rows, err := p.pool.Query(ctx, `SELECT `+adminColumns+` FROM admins ORDER BY name`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Admin
	for rows.Next() {
		a, err := scanAdmin(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *a)
	}
	return out, rows.Err()
}

func (p *Postgres) DeleteAdmin(ctx context.Context, name string) error {
	return p.inTx(ctx, func(tx pgx.Tx) error {
		n, err := p.exec(ctx, tx, `DELETE FROM admins WHERE name = ?`, name)
		if err != nil {
			return err
		}
		if n == 0 {
			return ErrNoAdmin
		}
		_, err = p.exec(ctx, tx, `DELETE FROM admin_sessions WHERE admin = ?`, name)
		return err
	})
}

func (p *Postgres) AdminLoggedIn(ctx context.Context, name string, now time.Time) error {
	_, err := p.exec(ctx, p.pool, `UPDATE admins SET last_login = ? WHERE name = ?`, ms(now), name)
	return err
}

func (p *Postgres) CreateSession(ctx context.Context, se *Session) error {
	_, err := p.exec(ctx, p.pool, `INSERT INTO admin_sessions (id_hash, admin, csrf, created_at, seen_at, expires_at)
		VALUES (?, ?, ?, ?, ?, ?)`, se.IDHash, se.Admin, se.CSRF, ms(se.CreatedAt), ms(se.SeenAt), ms(se.Expires))
	return err
}

func (p *Postgres) SessionByHash(ctx context.Context, idHash []byte, now time.Time) (*Session, error) {
	var se Session
	var created, seen, expires int64
	err := p.pool.QueryRow(ctx, `SELECT s.id_hash, s.admin, s.csrf, s.created_at, s.seen_at, s.expires_at
		FROM admin_sessions s JOIN admins a ON a.name = s.admin WHERE s.id_hash = $1 AND s.expires_at > $2`,
		idHash, ms(now)).Scan(&se.IDHash, &se.Admin, &se.CSRF, &created, &seen, &expires)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNoSession
	}
	if err != nil {
		return nil, err
	}
	se.CreatedAt, se.SeenAt, se.Expires = fromMS(created), fromMS(seen), fromMS(expires)
	return &se, nil
}

func (p *Postgres) TouchSession(ctx context.Context, idHash []byte, seen, expires time.Time) error {
	_, err := p.exec(ctx, p.pool, `UPDATE admin_sessions SET seen_at = ?, expires_at = ? WHERE id_hash = ?`,
		ms(seen), ms(expires), idHash)
	return err
}

func (p *Postgres) DeleteSession(ctx context.Context, idHash []byte) error {
	_, err := p.exec(ctx, p.pool, `DELETE FROM admin_sessions WHERE id_hash = ?`, idHash)
	return err
}

func (p *Postgres) CreateToken(ctx context.Context, name string, hash []byte, now time.Time) error {
	n, err := p.exec(ctx, p.pool, `INSERT INTO api_tokens (name, token_hash, created_at) VALUES (?, ?, ?)
		ON CONFLICT (name) DO NOTHING`, name, hash, ms(now))
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrExists
	}
	return nil
}

func (p *Postgres) TokenByHash(ctx context.Context, hash []byte, now time.Time) (*Token, error) {
	var t Token
	var created, used int64
	err := p.pool.QueryRow(ctx, `SELECT name, token_hash, created_at, last_used FROM api_tokens WHERE token_hash = $1`,
		hash).Scan(&t.Name, &t.Hash, &created, &used)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNoToken
	}
	if err != nil {
		return nil, err
	}
	t.CreatedAt, t.LastUsed = fromMS(created), fromMS(used)
	if now.Sub(t.LastUsed) >= time.Minute {
		if _, err := p.exec(ctx, p.pool, `UPDATE api_tokens SET last_used = ? WHERE name = ?`, ms(now), t.Name); err != nil {
			return nil, err
		}
	}
	return &t, nil
}

func (p *Postgres) ListTokens(ctx context.Context) ([]Token, error) {
	rows, err := p.pool.Query(ctx, `SELECT name, created_at, last_used FROM api_tokens ORDER BY name`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Token
	for rows.Next() {
		var t Token
		var created, used int64
		if err := rows.Scan(&t.Name, &created, &used); err != nil {
			return nil, err
		}
		t.CreatedAt, t.LastUsed = fromMS(created), fromMS(used)
		out = append(out, t)
	}
	return out, rows.Err()
}

func (p *Postgres) RevokeToken(ctx context.Context, name string) error {
	n, err := p.exec(ctx, p.pool, `DELETE FROM api_tokens WHERE name = ?`, name)
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNoToken
	}
	return nil
}

func (p *Postgres) RecordMessage(ctx context.Context, m *Message, files []File, evs []Event) error {
	b := &pgx.Batch{}
	if m != nil {
		b.Queue(rebind(upsertMessage), messageArgs(m)...)
		if files != nil {
			b.Queue(`UPDATE messages SET files = $1 WHERE id = $2`, filesJSON(files), m.ID)
		}
	}
	for _, e := range evs {
		queueEvent(b, e)
	}
	if b.Len() == 0 {
		return nil
	}
	return p.pool.SendBatch(ctx, b).Close()
}

// ilike is the conditions of a search in PostgreSQL's words.
func ilike(s string) string { return strings.ReplaceAll(s, " LIKE ", " ILIKE ") }

func (p *Postgres) SearchEvents(ctx context.Context, q AuditQuery, fn func(AuditRow) error) error {
	w := auditWhere(q)
	query := `SELECT e.seq, e.message, e.at, e.event, e.actor, e.via, e.detail, e.target,
		COALESCE(m.sender, ''), COALESCE(m.rcpts, '[]'), COALESCE(m.subject, ''), COALESCE(m.files, '[]')
		FROM events e LEFT JOIN messages m ON m.id = e.message AND e.message <> ''` + ilike(w.sql()) + ` ORDER BY e.seq DESC`
	if q.Limit > 0 {
		query += fmt.Sprintf(" LIMIT %d", q.Limit)
	}
	rows, err := p.pool.Query(ctx, rebind(query), w.args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var r AuditRow
		var at int64
		var rcpts, files string
		if err := rows.Scan(&r.Seq, &r.Message, &at, &r.Event.Event, &r.Actor, &r.Via, &r.Detail, &r.Target,
			&r.Sender, &rcpts, &r.Subject, &files); err != nil {
			return err
		}
		r.At = fromMS(at)
		if err := json.Unmarshal([]byte(rcpts), &r.Rcpts); err != nil {
			return fmt.Errorf("message %s recipients: %w", r.Message, err)
		}
		if err := json.Unmarshal([]byte(files), &r.Files); err != nil {
			return fmt.Errorf("message %s files: %w", r.Message, err)
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return rows.Err()
}

const pgSummaryColumns = `m.id, m.msg_key, m.created_at, m.updated_at, m.sender, m.rcpts, m.queue_id, m.message_id,
	m.subject, m.size, m.groups, m.result, m.files, COALESCE((SELECT state FROM held h WHERE h.id = m.id), ''),
	COALESCE((SELECT string_agg(state, ',' ORDER BY created_at, id) FROM jobs j WHERE j.message = m.id OR j.id = m.id), '')`

func (p *Postgres) FindMessages(ctx context.Context, q MessageQuery) ([]*MessageSummary, error) {
	w, err := messageWhere(q)
	if err != nil {
		return nil, err
	}
	rows, err := p.pool.Query(ctx, rebind(`SELECT `+pgSummaryColumns+` FROM messages m`+ilike(w.sql())+
		fmt.Sprintf(` ORDER BY m.created_at DESC, m.id LIMIT %d`, messageLimit(q))), w.args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*MessageSummary
	for rows.Next() {
		m, err := scanSummary(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

func (p *Postgres) FindMessage(ctx context.Context, id string) (*MessageSummary, error) {
	m, err := scanSummary(p.pool.QueryRow(ctx, `SELECT `+pgSummaryColumns+` FROM messages m WHERE m.id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNoMessage
	}
	return m, err
}

func (p *Postgres) JobsOf(ctx context.Context, message string) ([]*Job, error) {
	jobs, err := p.query(ctx, p.pool, `SELECT `+jobColumns+` FROM jobs WHERE message = ? OR id = ? ORDER BY created_at, id`,
		message, message)
	for _, j := range jobs {
		j.Password = "" // the pages and the API never show it
	}
	return jobs, err
}

func (p *Postgres) Counts(ctx context.Context) (Counts, error) {
	c := Counts{Jobs: map[State]int{}, Held: map[HeldState]int{}}
	for _, q := range []struct {
		sql string
		put func(string, int)
	}{
		{`SELECT state, COUNT(*)::int FROM jobs GROUP BY state`, func(st string, n int) { c.Jobs[State(st)] = n }},
		{`SELECT state, COUNT(*)::int FROM held GROUP BY state`, func(st string, n int) { c.Held[HeldState(st)] = n }},
	} {
		rows, err := p.pool.Query(ctx, q.sql)
		if err != nil {
			return c, err
		}
		for rows.Next() {
			var st string
			var n int
			if err := rows.Scan(&st, &n); err != nil {
				rows.Close()
				return c, err
			}
			q.put(st, n)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return c, err
		}
	}
	return c, nil
}

func (p *Postgres) PurgeAudit(ctx context.Context, before time.Time) (int, error) {
	var n int64
	err := p.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		if n, err = p.exec(ctx, tx, `DELETE FROM events WHERE at < ?`, ms(before)); err != nil {
			return err
		}
		if _, err := p.exec(ctx, tx, `DELETE FROM messages WHERE updated_at < ?
			AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.message = messages.id)
			AND NOT EXISTS (SELECT 1 FROM held h WHERE h.id = messages.id)`, ms(before)); err != nil {
			return err
		}
		_, err = p.exec(ctx, tx, `DELETE FROM admin_sessions WHERE expires_at < ?`, ms(time.Now()))
		return err
	})
	return int(n), err
}
