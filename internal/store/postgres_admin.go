package store

import (
	"context"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/zipgate/zipgate/internal/policy"
)

// Policies, admin accounts, sessions, API tokens and the audit searches
// on PostgreSQL: the statements of policies.go, admin_accounts.go and
// admin_audit.go. Text searches are ILIKE: case-insensitive as SQLite's
// LIKE is for ASCII (and, here, beyond it).

func (p *Postgres) PutPolicy(ctx context.Context, pol *policy.Policy) error {
	q, args, err := policySave(pol, nil)
	if err != nil {
		return err
	}
	_, err = p.exec(ctx, p.pool, q, args...)
	return err
}

func (p *Postgres) PutPolicyIf(ctx context.Context, pol *policy.Policy, was time.Time) error {
	q, args, err := policySave(pol, &was)
	if err != nil {
		return err
	}
	n, err := p.exec(ctx, p.pool, q, args...)
	if err == nil && n == 0 {
		err = ErrPolicyChanged
	}
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
	t, err := p.token(ctx, hash)
	if err != nil || !stampToken(t, now) {
		return t, err
	}
	if _, err := p.exec(ctx, p.pool, `UPDATE api_tokens SET last_used = ? WHERE name = ?`, ms(now), t.Name); err != nil {
		return nil, err
	}
	return t, nil
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

// PurgeAudit: a long transaction, as Purge.
func (p *Postgres) PurgeAudit(ctx context.Context, before time.Time) (int, error) {
	var n int64
	err := p.inLongTx(ctx, func(tx pgx.Tx) error {
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
