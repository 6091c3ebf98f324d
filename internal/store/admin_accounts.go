package store

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// Admin is an account of the admin pages. The store keeps a bcrypt hash
// of its password, never the password.
type Admin struct {
	Name         string
	PasswordHash []byte
	CreatedAt    time.Time
	UpdatedAt    time.Time
	LastLogin    time.Time
}

// Session is a signed-in admin's session. The cookie carries a random
// value; the store keeps its SHA-256 only, so a copy of the database
// opens no session.
type Session struct {
	IDHash    []byte
	Admin     string
	CSRF      string // the value every form of the session carries
	CreatedAt time.Time
	SeenAt    time.Time
	Expires   time.Time
}

// Token is an API token: its name and the SHA-256 of its value, which
// only its creator saw.
type Token struct {
	Name      string
	Hash      []byte
	CreatedAt time.Time
	LastUsed  time.Time
}

// Errors of accounts callers act on.
var (
	ErrNoAdmin   = errors.New("no such admin")
	ErrNoSession = errors.New("no such session")
	ErrNoToken   = errors.New("no such token")
	ErrExists    = errors.New("already exists")
)

// Admins are the accounts of the admin pages, their sessions and the API
// tokens.
type Admins interface {
	// PutAdmin creates the account, or sets a new password hash for it;
	// created reports which.
	PutAdmin(ctx context.Context, name string, hash []byte, now time.Time) (created bool, err error)
	GetAdmin(ctx context.Context, name string) (*Admin, error)
	ListAdmins(ctx context.Context) ([]Admin, error)
	// DeleteAdmin removes the account and ends its sessions.
	DeleteAdmin(ctx context.Context, name string) error
	// AdminLoggedIn stamps a successful login.
	AdminLoggedIn(ctx context.Context, name string, now time.Time) error

	CreateSession(ctx context.Context, s *Session) error
	// SessionByHash returns a session that has not expired at now and
	// whose account still exists.
	SessionByHash(ctx context.Context, idHash []byte, now time.Time) (*Session, error)
	// TouchSession moves a session's expiry on (an admin at work stays
	// signed in).
	TouchSession(ctx context.Context, idHash []byte, seen, expires time.Time) error
	DeleteSession(ctx context.Context, idHash []byte) error

	// CreateToken fails with ErrExists when the name is taken.
	CreateToken(ctx context.Context, name string, hash []byte, now time.Time) error
	// TokenByHash returns the token and stamps its use.
	TokenByHash(ctx context.Context, hash []byte, now time.Time) (*Token, error)
	ListTokens(ctx context.Context) ([]Token, error)
	RevokeToken(ctx context.Context, name string) error
}

func (s *SQLite) PutAdmin(ctx context.Context, name string, hash []byte, now time.Time) (bool, error) {
	tx, done, err := s.begin(ctx, false)
	if err != nil {
		return false, err
	}
	defer done()
	res, err := tx.ExecContext(ctx, `UPDATE admins SET password_hash = ?, updated_at = ? WHERE name = ?`, hash, ms(now), name)
	if err != nil {
		return false, err
	}
	created := false
	if n, _ := res.RowsAffected(); n == 0 {
		if _, err := tx.ExecContext(ctx, `INSERT INTO admins (name, password_hash, created_at, updated_at) VALUES (?, ?, ?, ?)`,
			name, hash, ms(now), ms(now)); err != nil {
			return false, err
		}
		created = true
	} else if _, err := tx.ExecContext(ctx, `DELETE FROM admin_sessions WHERE admin = ?`, name); err != nil {
		// A new password ends the sessions signed in with the old one.
		return false, err
	}
	return created, tx.Commit()
}

func scanAdmin(row scanner) (*Admin, error) {
	var a Admin
	var created, updated, last int64
	err := row.Scan(&a.Name, &a.PasswordHash, &created, &updated, &last)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNoAdmin
	}
	if err != nil {
		return nil, err
	}
	a.CreatedAt, a.UpdatedAt, a.LastLogin = fromMS(created), fromMS(updated), fromMS(last)
	return &a, nil
}

const adminColumns = `name, password_hash, created_at, updated_at, last_login`

func (s *SQLite) DeleteAdmin(ctx context.Context, name string) error {
	tx, done, err := s.begin(ctx, false)
	if err != nil {
		return err
	}
	defer done()
	res, err := tx.ExecContext(ctx, `DELETE FROM admins WHERE name = ?`, name)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNoAdmin
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM admin_sessions WHERE admin = ?`, name); err != nil {
		return err
	}
	return tx.Commit()
}

func (s *SQLite) AdminLoggedIn(ctx context.Context, name string, now time.Time) error {
	_, err := s.exec(ctx, false, `UPDATE admins SET last_login = ? WHERE name = ?`, ms(now), name)
	return err
}

func (s *SQLite) CreateSession(ctx context.Context, se *Session) error {
	_, err := s.exec(ctx, false, `INSERT INTO admin_sessions (id_hash, admin, csrf, created_at, seen_at, expires_at)
		VALUES (?, ?, ?, ?, ?, ?)`, se.IDHash, se.Admin, se.CSRF, ms(se.CreatedAt), ms(se.SeenAt), ms(se.Expires))
	return err
}

func (s *SQLite) TouchSession(ctx context.Context, idHash []byte, seen, expires time.Time) error {
	_, err := s.exec(ctx, false, `UPDATE admin_sessions SET seen_at = ?, expires_at = ? WHERE id_hash = ?`,
		ms(seen), ms(expires), idHash)
	return err
}

func (s *SQLite) DeleteSession(ctx context.Context, idHash []byte) error {
	_, err := s.exec(ctx, false, `DELETE FROM admin_sessions WHERE id_hash = ?`, idHash)
	return err
}

func (s *SQLite) CreateToken(ctx context.Context, name string, hash []byte, now time.Time) error {
	tx, done, err := s.begin(ctx, false)
	if err != nil {
		return err
	}
	defer done()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM api_tokens WHERE name = ?`, name).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return ErrExists
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO api_tokens (name, token_hash, created_at) VALUES (?, ?, ?)`,
		name, hash, ms(now)); err != nil {
		return err
	}
	return tx.Commit()
}

func (s *SQLite) TokenByHash(ctx context.Context, hash []byte, now time.Time) (*Token, error) {
	t, err := s.token(ctx, hash)
	if err != nil || !stampToken(t, now) {
		return t, err
	}
	if _, err := s.exec(ctx, false, `UPDATE api_tokens SET last_used = ? WHERE name = ?`, ms(now), t.Name); err != nil {
		return nil, err
	}
	return t, nil
}

// stampToken says whether a token's use is written down: at most once a
// minute, so a busy client does not write on every request.
func stampToken(t *Token, now time.Time) bool { return now.Sub(t.LastUsed) >= time.Minute }

func (s *SQLite) RevokeToken(ctx context.Context, name string) error {
	res, err := s.exec(ctx, false, `DELETE FROM api_tokens WHERE name = ?`, name)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNoToken
	}
	return nil
}
