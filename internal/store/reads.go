package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/zipgate/zipgate/internal/policy"
)

// reads are the queries both stores run the same way, written once with
// ? placeholders: SQLite and PostgreSQL embed a reads with their own
// reader. What each store writes, and how it locks and leases, stays in
// its own files.
type reads struct {
	db  reader
	sec *sealer
}

// reader runs one read on a store's connections.
type reader interface {
	rows(ctx context.Context, q string, args ...any) (rowSet, error)
	row(ctx context.Context, q string, args ...any) scanner
	// caseless makes the LIKEs of q case-insensitive: SQLite's LIKE is
	// already (for ASCII), PostgreSQL's ILIKE is.
	caseless(q string) string
	// jobStates is the SQL of a message's job states joined by commas,
	// an aggregate the two dialects spell differently.
	jobStates() string
}

type scanner interface{ Scan(...any) error }

// rowSet is what database/sql and pgx rows both offer.
type rowSet interface {
	scanner
	Next() bool
	Err() error
	Close()
}

// collect reads every row of q with scan.
func collect[T any](ctx context.Context, db reader, scan func(scanner) (T, error), q string, args ...any) ([]T, error) {
	rows, err := db.rows(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// sqlReader reads SQLite through its read pool.
type sqlReader struct{ db *sql.DB }

type sqlRows struct{ *sql.Rows }

func (r sqlRows) Close() { r.Rows.Close() }

func (r sqlReader) rows(ctx context.Context, q string, args ...any) (rowSet, error) {
	rows, err := r.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	return sqlRows{rows}, nil
}

func (r sqlReader) row(ctx context.Context, q string, args ...any) scanner {
	return r.db.QueryRowContext(ctx, q, args...)
}

func (sqlReader) caseless(q string) string { return q }
func (sqlReader) jobStates() string        { return `GROUP_CONCAT(state)` }

// Jobs.

func (r *reads) scan(row scanner) (*Job, error) { return scanJob(r.sec, row) }

func (r *reads) Get(ctx context.Context, id string) (*Job, error) {
	return r.scan(r.db.row(ctx, `SELECT `+jobColumns+` FROM jobs WHERE id = ?`, id))
}

func (r *reads) ByToken(ctx context.Context, tokenHash []byte) (*Job, error) {
	if len(tokenHash) == 0 {
		return nil, ErrNotFound
	}
	return r.scan(r.db.row(ctx, `SELECT `+jobColumns+` FROM jobs WHERE token_hash = ?`, tokenHash))
}

func (r *reads) query(ctx context.Context, q string, args ...any) ([]*Job, error) {
	return collect(ctx, r.db, r.scan, q, args...)
}

func (r *reads) List(ctx context.Context, state State, limit int) ([]*Job, error) {
	return r.query(ctx, `SELECT `+jobColumns+` FROM jobs WHERE ? = '' OR state = ?
		ORDER BY created_at DESC, id LIMIT ?`, string(state), string(state), limit)
}

func (r *reads) JobsOf(ctx context.Context, message string) ([]*Job, error) {
	jobs, err := r.query(ctx, `SELECT `+jobColumns+` FROM jobs WHERE message = ? OR id = ? ORDER BY created_at, id`,
		message, message)
	for _, j := range jobs {
		j.Password = "" // the pages and the API never show it
	}
	return jobs, err
}

// Held messages and the history of a message.

func (r *reads) GetHeld(ctx context.Context, id string) (*HeldMessage, error) {
	return scanHeld(r.db.row(ctx, `SELECT `+heldColumns+` FROM held WHERE id = ?`, id))
}

func (r *reads) HeldByToken(ctx context.Context, tokenHash []byte) (*HeldMessage, error) {
	if len(tokenHash) == 0 {
		return nil, ErrNotFound
	}
	return scanHeld(r.db.row(ctx, `SELECT `+heldColumns+` FROM held WHERE token_hash = ?`, tokenHash))
}

func (r *reads) HeldByApprover(ctx context.Context, tokenHash []byte) (*HeldMessage, string, error) {
	var id, approver string
	err := r.db.row(ctx, `SELECT held, approver FROM approver_tokens WHERE token_hash = ?`, tokenHash).
		Scan(&id, &approver)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, "", ErrNotFound
	}
	if err != nil {
		return nil, "", err
	}
	h, err := r.GetHeld(ctx, id)
	return h, approver, err
}

func (r *reads) HeldByKey(ctx context.Context, key []byte) (*HeldMessage, error) {
	return scanHeld(r.db.row(ctx, `SELECT `+heldColumns+` FROM held WHERE msg_key = ?
		ORDER BY created_at DESC LIMIT 1`, key))
}

func (r *reads) queryHeld(ctx context.Context, q string, args ...any) ([]*HeldMessage, error) {
	return collect(ctx, r.db, scanHeld, q, args...)
}

func (r *reads) ListHeld(ctx context.Context, state HeldState, limit int) ([]*HeldMessage, error) {
	return r.queryHeld(ctx, `SELECT `+heldColumns+` FROM held WHERE ? = '' OR state = ?
		ORDER BY created_at DESC, id LIMIT ?`, string(state), string(state), limit)
}

func (r *reads) HeldBytes(ctx context.Context) (int64, error) {
	var n int64
	err := r.db.row(ctx, `SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM held WHERE state IN ('held', 'sending')`).Scan(&n)
	return n, err
}

// late turns a refusal of a still waiting message into ErrTooLate when
// its deadline passed.
func (r *reads) late(ctx context.Context, id string, now time.Time, err error) error {
	if !errors.Is(err, ErrFinished) {
		return err
	}
	if h, gerr := r.GetHeld(ctx, id); gerr == nil && h.State == HeldWaiting && !h.Expires.IsZero() && !h.Expires.After(now) {
		return ErrTooLate
	}
	return err
}

// mayDecide says why approver cannot decide on held message id, if not:
// not one of its approvers (what the message's state says first, when
// it is decided already).
func (r *reads) mayDecide(ctx context.Context, id, approver string) error {
	h, err := r.GetHeld(ctx, id)
	if err != nil {
		return err
	}
	if !approverOf(h, approver) {
		if h.State != HeldWaiting {
			return heldStateErr(h.State)
		}
		return ErrNotApprover
	}
	return nil
}

func scanEvent(row scanner) (Event, error) {
	var e Event
	var at int64
	err := row.Scan(&e.Message, &at, &e.Event, &e.Actor, &e.Via, &e.Detail, &e.Target)
	e.At = fromMS(at)
	return e, err
}

func (r *reads) Events(ctx context.Context, message string) ([]Event, error) {
	return collect(ctx, r.db, scanEvent, `SELECT message, at, event, actor, via, detail, target FROM events
		WHERE message = ? ORDER BY seq`, message)
}

// Download links.

func (r *reads) scanLink(row scanner) (*Link, error) { return scanLink(r.sec, row) }

func (r *reads) GetLink(ctx context.Context, id string) (*Link, error) {
	return r.scanLink(r.db.row(ctx, `SELECT `+linkColumns+` FROM links WHERE id = ?`, id))
}

func (r *reads) LinkByToken(ctx context.Context, tokenHash []byte) (*Link, error) {
	if len(tokenHash) == 0 {
		return nil, ErrNotFound
	}
	return r.scanLink(r.db.row(ctx, `SELECT `+linkColumns+` FROM links WHERE token_hash = ?`, tokenHash))
}

func (r *reads) queryLinks(ctx context.Context, q string, args ...any) ([]*Link, error) {
	return collect(ctx, r.db, r.scanLink, q, args...)
}

func (r *reads) ListLinks(ctx context.Context, limit int) ([]*Link, error) {
	return r.queryLinks(ctx, `SELECT `+linkColumns+` FROM links ORDER BY created_at DESC, id LIMIT ?`, limit)
}

func (r *reads) UsedUpLinks(ctx context.Context) ([]*Link, error) {
	return r.queryLinks(ctx, `SELECT `+linkColumns+` FROM links WHERE
		state = 'active' AND max_downloads > 0 AND downloads >= max_downloads ORDER BY created_at, id`)
}

// Message records.

func (r *reads) queryMessages(ctx context.Context, q string, args ...any) ([]*Message, error) {
	return collect(ctx, r.db, scanMessage, q, args...)
}

func (r *reads) GetMessage(ctx context.Context, id string) (*Message, error) {
	found, err := r.queryMessages(ctx, `SELECT `+messageColumns+` FROM messages WHERE id = ?`, id)
	if err != nil {
		return nil, err
	}
	if len(found) == 0 {
		return nil, ErrNoMessage
	}
	return found[0], nil
}

func (r *reads) ListMessages(ctx context.Context, limit int) ([]*Message, error) {
	return r.queryMessages(ctx, `SELECT `+messageColumns+` FROM messages ORDER BY created_at DESC, id LIMIT ?`, limit)
}

func (r *reads) Prior(ctx context.Context, key []byte, rcpts []string) (*Prior, error) {
	p := &Prior{Delivered: map[string]bool{}}
	delivered, err := collect(ctx, r.db, func(row scanner) (rcpt string, err error) {
		return rcpt, row.Scan(&rcpt)
	}, `SELECT rcpt FROM deliveries WHERE msg_key = ?`, key)
	if err != nil {
		return nil, err
	}
	for _, rcpt := range delivered {
		p.Delivered[rcpt] = true
	}
	tries, err := r.queryMessages(ctx, `SELECT `+messageColumns+` FROM messages WHERE msg_key = ? ORDER BY created_at DESC`, key)
	if err != nil {
		return nil, err
	}
	for _, m := range tries {
		if sameSet(m.Rcpts, rcpts) {
			p.Message = m
			break
		}
	}
	p.Pending, err = r.query(ctx, `SELECT `+jobColumns+` FROM jobs WHERE msg_key = ? AND state = 'pending' ORDER BY id`, key)
	if err != nil {
		return nil, err
	}
	canceled, err := r.query(ctx, `SELECT `+jobColumns+` FROM jobs WHERE msg_key = ? AND state = 'canceled' ORDER BY id`, key)
	if err != nil {
		return nil, err
	}
	for _, j := range canceled {
		for _, rcpt := range j.Rcpts {
			if !p.Delivered[rcpt] {
				p.TakenBack = append(p.TakenBack, j)
				break
			}
		}
	}
	p.Links = map[string]*Link{}
	for _, j := range p.Pending {
		l, err := r.GetLink(ctx, j.ID)
		switch {
		case err == nil:
			p.Links[j.ID] = l
		case !errors.Is(err, ErrNotFound):
			return nil, err
		}
	}
	return p, nil
}

// Policies and admin accounts.

func (r *reads) ListPolicies(ctx context.Context) ([]policy.Policy, error) {
	return collect(ctx, r.db, func(row scanner) (policy.Policy, error) {
		p, err := scanPolicy(row)
		if err != nil {
			return policy.Policy{}, err
		}
		return *p, nil
	}, `SELECT `+policyColumns+` FROM policies ORDER BY domain`)
}

func (r *reads) GetPolicy(ctx context.Context, domain string) (*policy.Policy, error) {
	domain, err := policy.NormalizePattern(domain)
	if err != nil {
		return nil, err
	}
	return scanPolicy(r.db.row(ctx, `SELECT `+policyColumns+` FROM policies WHERE domain = ?`, domain))
}

func (r *reads) GetAdmin(ctx context.Context, name string) (*Admin, error) {
	return scanAdmin(r.db.row(ctx, `SELECT `+adminColumns+` FROM admins WHERE name = ?`, name))
}

func (r *reads) ListAdmins(ctx context.Context) ([]Admin, error) {
	return collect(ctx, r.db, func(row scanner) (Admin, error) {
		a, err := scanAdmin(row)
		if err != nil {
			return Admin{}, err
		}
		return *a, nil
	}, `SELECT `+adminColumns+` FROM admins ORDER BY name`)
}

func (r *reads) SessionByHash(ctx context.Context, idHash []byte, now time.Time) (*Session, error) {
	var se Session
	var created, seen, expires int64
	err := r.db.row(ctx, `SELECT s.id_hash, s.admin, s.csrf, s.created_at, s.seen_at, s.expires_at
		FROM admin_sessions s JOIN admins a ON a.name = s.admin WHERE s.id_hash = ? AND s.expires_at > ?`,
		idHash, ms(now)).Scan(&se.IDHash, &se.Admin, &se.CSRF, &created, &seen, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNoSession
	}
	if err != nil {
		return nil, err
	}
	se.CreatedAt, se.SeenAt, se.Expires = fromMS(created), fromMS(seen), fromMS(expires)
	return &se, nil
}

// token reads an API token by its hash, without stamping its use.
func (r *reads) token(ctx context.Context, hash []byte) (*Token, error) {
	var t Token
	var created, used int64
	err := r.db.row(ctx, `SELECT name, token_hash, created_at, last_used FROM api_tokens WHERE token_hash = ?`,
		hash).Scan(&t.Name, &t.Hash, &created, &used)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNoToken
	}
	if err != nil {
		return nil, err
	}
	t.CreatedAt, t.LastUsed = fromMS(created), fromMS(used)
	return &t, nil
}

func (r *reads) ListTokens(ctx context.Context) ([]Token, error) {
	return collect(ctx, r.db, func(row scanner) (Token, error) {
		var t Token
		var created, used int64
		err := row.Scan(&t.Name, &created, &used)
		t.CreatedAt, t.LastUsed = fromMS(created), fromMS(used)
		return t, err
	}, `SELECT name, created_at, last_used FROM api_tokens ORDER BY name`)
}

// The audit trail.

func scanAuditRow(row scanner) (AuditRow, error) {
	var a AuditRow
	var at int64
	var rcpts, files string
	if err := row.Scan(&a.Seq, &a.Message, &at, &a.Event.Event, &a.Actor, &a.Via, &a.Detail, &a.Target,
		&a.Sender, &rcpts, &a.Subject, &files); err != nil {
		return a, err
	}
	a.At = fromMS(at)
	if err := json.Unmarshal([]byte(rcpts), &a.Rcpts); err != nil {
		return a, fmt.Errorf("message %s recipients: %w", a.Message, err)
	}
	if err := json.Unmarshal([]byte(files), &a.Files); err != nil {
		return a, fmt.Errorf("message %s files: %w", a.Message, err)
	}
	return a, nil
}

func (r *reads) SearchEvents(ctx context.Context, q AuditQuery, fn func(AuditRow) error) error {
	w := auditWhere(q)
	query := `SELECT e.seq, e.message, e.at, e.event, e.actor, e.via, e.detail, e.target,
		COALESCE(m.sender, ''), COALESCE(m.rcpts, '[]'), COALESCE(m.subject, ''), COALESCE(m.files, '[]')
		FROM events e LEFT JOIN messages m ON m.id = e.message AND e.message <> ''` + r.db.caseless(w.sql()) + ` ORDER BY e.seq DESC`
	if q.Limit > 0 {
		query += fmt.Sprintf(" LIMIT %d", q.Limit)
	}
	// Rows go to fn as they are read: an export of the whole trail is
	// never in memory at once.
	rows, err := r.db.rows(ctx, query, w.args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		a, err := scanAuditRow(rows)
		if err != nil {
			return err
		}
		if err := fn(a); err != nil {
			return err
		}
	}
	return rows.Err()
}

func (r *reads) summaryColumns() string {
	return `m.id, m.msg_key, m.created_at, m.updated_at, m.sender, m.rcpts, m.queue_id, m.message_id,
	m.subject, m.size, m.groups, m.result, m.files, COALESCE((SELECT state FROM held h WHERE h.id = m.id), ''),
	COALESCE((SELECT ` + r.db.jobStates() + ` FROM jobs j WHERE j.message = m.id OR j.id = m.id), '')`
}

func (r *reads) FindMessages(ctx context.Context, q MessageQuery) ([]*MessageSummary, error) {
	w, err := messageWhere(q)
	if err != nil {
		return nil, err
	}
	return collect(ctx, r.db, scanSummary, `SELECT `+r.summaryColumns()+` FROM messages m`+r.db.caseless(w.sql())+
		fmt.Sprintf(` ORDER BY m.created_at DESC, m.id LIMIT %d`, messageLimit(q)), w.args...)
}

func (r *reads) FindMessage(ctx context.Context, id string) (*MessageSummary, error) {
	m, err := scanSummary(r.db.row(ctx, `SELECT `+r.summaryColumns()+` FROM messages m WHERE m.id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNoMessage
	}
	return m, err
}

func (r *reads) Counts(ctx context.Context) (Counts, error) {
	c := Counts{Jobs: map[State]int{}, Held: map[HeldState]int{}}
	type count struct {
		state string
		n     int
	}
	scan := func(row scanner) (c count, err error) { return c, row.Scan(&c.state, &c.n) }
	jobs, err := collect(ctx, r.db, scan, `SELECT state, COUNT(*) FROM jobs GROUP BY state`)
	if err != nil {
		return c, err
	}
	for _, n := range jobs {
		c.Jobs[State(n.state)] = n.n
	}
	held, err := collect(ctx, r.db, scan, `SELECT state, COUNT(*) FROM held GROUP BY state`)
	if err != nil {
		return c, err
	}
	for _, n := range held {
		c.Held[HeldState(n.state)] = n.n
	}
	return c, nil
}
