package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Audit is the trail of what happened to each message and what admins
// changed (events), and the searches the admin pages and API make over
// it joined with the message records.
type Audit interface {
	// RecordMessage writes m's record as it is now (nil: none) with its
	// file names (nil: unchanged), and adds events, in one transaction.
	RecordMessage(ctx context.Context, m *Message, files []File, evs []Event) error
	// SearchEvents calls fn for each event q matches, newest first.
	SearchEvents(ctx context.Context, q AuditQuery, fn func(AuditRow) error) error
	// FindMessages returns message records q matches, newest first.
	FindMessages(ctx context.Context, q MessageQuery) ([]*MessageSummary, error)
	// FindMessage is one record with what the pages show of it.
	FindMessage(ctx context.Context, id string) (*MessageSummary, error)
	// JobsOf returns the release jobs of a message, passwords left out.
	JobsOf(ctx context.Context, message string) ([]*Job, error)
	// Counts are the jobs and held messages by state (metrics).
	Counts(ctx context.Context) (Counts, error)
	// PurgeAudit deletes events and message records older than before,
	// and sessions that expired; it counts the events.
	PurgeAudit(ctx context.Context, before time.Time) (int, error)
}

// AuditQuery selects events. Every field is optional; text matches are
// substrings, case-insensitive for ASCII.
type AuditQuery struct {
	// Q matches the message's sender, recipients, subject and file names,
	// and the event's detail, actor and target.
	Q      string
	Sender string
	Rcpt   string
	// Domain: a recipient in this domain, or a policy for it.
	Domain string
	File   string
	Since  time.Time // at or after
	Until  time.Time // before
	Limit  int       // 0: all
}

// AuditRow is one event with the record of its message ("" fields for an
// event that is about no message).
type AuditRow struct {
	Seq int64
	Event
	Sender  string
	Rcpts   []string
	Subject string
	Files   []File
}

// MessageQuery selects message records.
type MessageQuery struct {
	Sender, Rcpt, Domain, File string
	// State: held, scheduled (a password waits), released, canceled,
	// failed, refused (5xx to Postfix), deferred (4xx); "" any.
	State        string
	Since, Until time.Time
	Limit        int
}

// MessageStates are the values MessageQuery.State takes.
var MessageStates = []string{"held", "scheduled", "released", "canceled", "failed", "refused", "deferred"}

// MessageSummary is a message record with its file names, the state of
// its held message ("" when it was never held) and of its jobs.
type MessageSummary struct {
	Message
	Files []File
	Held  HeldState
	Jobs  []State
}

// Counts are what the metrics show of the store.
type Counts struct {
	Jobs map[State]int
	Held map[HeldState]int
}

// filesJSON keeps names as written: & < > stay themselves, so a search
// for them finds them.
func filesJSON(files []File) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if files == nil {
		files = []File{}
	}
	enc.Encode(files)
	return strings.TrimSpace(b.String())
}

func (s *SQLite) RecordMessage(ctx context.Context, m *Message, files []File, evs []Event) error {
	tx, done, err := s.begin(ctx, false)
	if err != nil {
		return err
	}
	defer done()
	if m != nil {
		if _, err := tx.ExecContext(ctx, upsertMessage, messageArgs(m)...); err != nil {
			return fmt.Errorf("message %s: %w", m.ID, err)
		}
		if files != nil {
			if _, err := tx.ExecContext(ctx, `UPDATE messages SET files = ? WHERE id = ?`, filesJSON(files), m.ID); err != nil {
				return err
			}
		}
	}
	for _, e := range evs {
		if err := addEvent(ctx, tx, e); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// like makes a LIKE pattern that matches s anywhere, its own % and _
// taken literally (ESCAPE '\').
func like(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return "%" + r.Replace(s) + "%"
}

// where gathers the conditions of a search: fixed SQL, values as
// arguments.
type where struct {
	conds []string
	args  []any
}

func (w *where) add(cond string, args ...any) {
	w.conds = append(w.conds, cond)
	w.args = append(w.args, args...)
}

func (w *where) sql() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}

// domainPattern: recipients are kept as a JSON list, so an address in the
// domain ends in @domain".
func domainPattern(domain string) string {
	return like("@" + strings.ToLower(strings.TrimSuffix(strings.TrimSpace(domain), ".")) + `"`)
}

// auditWhere is the conditions of an audit search.
func auditWhere(q AuditQuery) where {
	var w where
	if q.Q != "" {
		p := like(q.Q)
		w.add(`(m.sender LIKE ? ESCAPE '\' OR m.rcpts LIKE ? ESCAPE '\' OR m.subject LIKE ? ESCAPE '\'
			OR m.files LIKE ? ESCAPE '\' OR e.detail LIKE ? ESCAPE '\' OR e.actor LIKE ? ESCAPE '\'
			OR e.target LIKE ? ESCAPE '\' OR e.message = ?)`, p, p, p, p, p, p, p, q.Q)
	}
	if q.Sender != "" {
		w.add(`m.sender LIKE ? ESCAPE '\'`, like(q.Sender))
	}
	if q.Rcpt != "" {
		w.add(`m.rcpts LIKE ? ESCAPE '\'`, like(q.Rcpt))
	}
	if q.Domain != "" {
		d := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(q.Domain), "."))
		w.add(`(m.rcpts LIKE ? ESCAPE '\' OR e.target = ?)`, domainPattern(d), "policy "+d)
	}
	if q.File != "" {
		w.add(`m.files LIKE ? ESCAPE '\'`, like(q.File))
	}
	if !q.Since.IsZero() {
		w.add(`e.at >= ?`, ms(q.Since))
	}
	if !q.Until.IsZero() {
		w.add(`e.at < ?`, ms(q.Until))
	}
	return w
}

func scanSummary(row scanner) (*MessageSummary, error) {
	var ms MessageSummary
	m := &ms.Message
	var created, updated int64
	var rcpts, groups, files, jobs string
	if err := row.Scan(&m.ID, &m.Key, &created, &updated, &m.Sender, &rcpts, &m.QueueID, &m.MessageID,
		&m.Subject, &m.Size, &groups, &m.Result, &files, &ms.Held, &jobs); err != nil {
		return nil, err
	}
	for _, f := range []struct {
		src string
		dst any
	}{{rcpts, &m.Rcpts}, {groups, &m.Groups}, {files, &ms.Files}} {
		if err := json.Unmarshal([]byte(f.src), f.dst); err != nil {
			return nil, fmt.Errorf("message %s: %w", m.ID, err)
		}
	}
	m.CreatedAt, m.UpdatedAt = fromMS(created), fromMS(updated)
	if jobs != "" {
		for _, st := range strings.Split(jobs, ",") {
			ms.Jobs = append(ms.Jobs, State(st))
		}
	}
	return &ms, nil
}

// jobOf: the jobs of a message name it; the first zip's job of a message
// stored before they did has the message's id.
const jobOf = `(j.message = m.id OR j.id = m.id)`

// messageWhere is the conditions of a search of message records.
func messageWhere(q MessageQuery) (where, error) {
	var w where
	if q.Sender != "" {
		w.add(`m.sender LIKE ? ESCAPE '\'`, like(q.Sender))
	}
	if q.Rcpt != "" {
		w.add(`m.rcpts LIKE ? ESCAPE '\'`, like(q.Rcpt))
	}
	if q.Domain != "" {
		w.add(`m.rcpts LIKE ? ESCAPE '\'`, domainPattern(q.Domain))
	}
	if q.File != "" {
		w.add(`m.files LIKE ? ESCAPE '\'`, like(q.File))
	}
	if !q.Since.IsZero() {
		w.add(`m.created_at >= ?`, ms(q.Since))
	}
	if !q.Until.IsZero() {
		w.add(`m.created_at < ?`, ms(q.Until))
	}
	jobIn := func(states string) string {
		return `EXISTS (SELECT 1 FROM jobs j WHERE ` + jobOf + ` AND j.state IN (` + states + `))`
	}
	heldIn := func(states string) string {
		return `EXISTS (SELECT 1 FROM held h WHERE h.id = m.id AND h.state IN (` + states + `))`
	}
	switch q.State {
	case "":
	case "held":
		w.add(heldIn(`'held', 'sending'`))
	case "scheduled":
		w.add(jobIn(`'pending', 'scheduled', 'sending'`))
	case "released":
		w.add(jobIn(`'released'`))
	case "canceled":
		w.add(`(` + jobIn(`'canceled'`) + ` OR ` + heldIn(`'canceled', 'rejected', 'expired'`) + `)`)
	case "failed":
		w.add(`(` + jobIn(`'failed'`) + ` OR ` + heldIn(`'failed'`) + `)`)
	case "refused":
		w.add(`m.result LIKE '5%'`)
	case "deferred":
		w.add(`m.result LIKE '4%'`)
	default:
		return w, fmt.Errorf("state %q is not one of %s", q.State, strings.Join(MessageStates, ", "))
	}
	return w, nil
}

// messageLimit caps a search of message records at 1000.
func messageLimit(q MessageQuery) int {
	if q.Limit <= 0 || q.Limit > 1000 {
		return 1000
	}
	return q.Limit
}

func (s *SQLite) PurgeAudit(ctx context.Context, before time.Time) (int, error) {
	tx, done, err := s.begin(ctx, false)
	if err != nil {
		return 0, err
	}
	defer done()
	res, err := tx.ExecContext(ctx, `DELETE FROM events WHERE at < ?`, ms(before))
	if err != nil {
		return 0, err
	}
	n, _ := res.RowsAffected()
	// A record still needed by a job or a held message stays.
	if _, err := tx.ExecContext(ctx, `DELETE FROM messages WHERE updated_at < ?
		AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.message = messages.id)
		AND NOT EXISTS (SELECT 1 FROM held h WHERE h.id = messages.id)`, ms(before)); err != nil {
		return 0, err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM admin_sessions WHERE expires_at < ?`, ms(time.Now())); err != nil {
		return 0, err
	}
	return int(n), tx.Commit()
}
