package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	_ "modernc.org/sqlite" // database/sql driver "sqlite", no cgo

	"github.com/zipgate/zipgate/internal/policy"
)

// migrations are applied in order, each once, each in a transaction.
var migrations = []string{
	`CREATE TABLE jobs (
		id           TEXT PRIMARY KEY,
		state        TEXT NOT NULL,
		sender       TEXT NOT NULL,
		rcpts        TEXT NOT NULL,
		header_from  TEXT NOT NULL DEFAULT '',
		header_to    TEXT NOT NULL DEFAULT '',
		header_cc    TEXT NOT NULL DEFAULT '',
		subject      TEXT NOT NULL DEFAULT '',
		message_id   TEXT NOT NULL DEFAULT '',
		zip_name     TEXT NOT NULL,
		files        TEXT NOT NULL,
		password     BLOB,
		token_hash   BLOB UNIQUE,
		created_at   INTEGER NOT NULL,
		due_at       INTEGER NOT NULL,
		finished_at  INTEGER NOT NULL DEFAULT 0,
		attempts     INTEGER NOT NULL DEFAULT 0,
		next_attempt INTEGER NOT NULL DEFAULT 0,
		last_error   TEXT NOT NULL DEFAULT '',
		notice_sent  INTEGER NOT NULL DEFAULT 0,
		confirm_sent INTEGER NOT NULL DEFAULT 0
	);
	CREATE INDEX jobs_by_state_due ON jobs(state, due_at);`,
	// 2: List (jobs CLI, the health check) reads newest first.
	`CREATE INDEX jobs_by_created ON jobs(created_at);`,
	// 3: per-domain policies; a record of every message and of each
	// recipient the next hop accepted it for (what makes a retried
	// message exactly-once); jobs know their message and policy.
	`CREATE TABLE policies (
		domain            TEXT PRIMARY KEY,
		action            TEXT NOT NULL DEFAULT '',
		password_to       TEXT NOT NULL DEFAULT '',
		delay_ms          INTEGER,
		zip_method        TEXT NOT NULL DEFAULT '',
		filename_encoding TEXT NOT NULL DEFAULT '',
		language          TEXT NOT NULL DEFAULT '',
		note              TEXT NOT NULL DEFAULT '',
		updated_at        INTEGER NOT NULL
	);
	CREATE TABLE messages (
		id         TEXT PRIMARY KEY,
		msg_key    BLOB NOT NULL,
		created_at INTEGER NOT NULL,
		updated_at INTEGER NOT NULL,
		sender     TEXT NOT NULL,
		rcpts      TEXT NOT NULL,
		queue_id   TEXT NOT NULL DEFAULT '',
		message_id TEXT NOT NULL DEFAULT '',
		subject    TEXT NOT NULL DEFAULT '',
		size       INTEGER NOT NULL DEFAULT 0,
		groups     TEXT NOT NULL DEFAULT '[]',
		result     TEXT NOT NULL DEFAULT ''
	);
	CREATE INDEX messages_by_key ON messages(msg_key);
	CREATE INDEX messages_by_created ON messages(created_at);
	CREATE TABLE deliveries (
		msg_key      BLOB NOT NULL,
		rcpt         TEXT NOT NULL,
		message      TEXT NOT NULL,
		job          TEXT NOT NULL DEFAULT '',
		delivered_at INTEGER NOT NULL,
		PRIMARY KEY (msg_key, rcpt)
	);
	CREATE INDEX deliveries_by_time ON deliveries(delivered_at);
	ALTER TABLE jobs ADD COLUMN message TEXT NOT NULL DEFAULT '';
	ALTER TABLE jobs ADD COLUMN msg_key BLOB;
	ALTER TABLE jobs ADD COLUMN password_to TEXT NOT NULL DEFAULT 'recipient';
	ALTER TABLE jobs ADD COLUMN language TEXT NOT NULL DEFAULT '';
	ALTER TABLE jobs ADD COLUMN rule TEXT NOT NULL DEFAULT '';
	CREATE INDEX jobs_by_key ON jobs(msg_key);`,
	// 4: mail to the sender (notice, confirmation) that a next hop defers
	// is retried with backoff, so failing notices never crowd out due work.
	`ALTER TABLE jobs ADD COLUMN notice_attempts INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE jobs ADD COLUMN notice_next INTEGER NOT NULL DEFAULT 0;`,
	// 5: messages held before they leave (hold, approval, the To/Cc
	// guard), the approvers' page tokens, and the history of each message.
	`ALTER TABLE policies ADD COLUMN hold_ms INTEGER;
	ALTER TABLE policies ADD COLUMN approvers TEXT;
	ALTER TABLE policies ADD COLUMN guard TEXT NOT NULL DEFAULT '';
	CREATE TABLE held (
		id              TEXT PRIMARY KEY,
		msg_key         BLOB NOT NULL,
		state           TEXT NOT NULL,
		sender          TEXT NOT NULL,
		rcpts           TEXT NOT NULL,
		envelope        BLOB NOT NULL,
		size            INTEGER NOT NULL,
		subject         TEXT NOT NULL DEFAULT '',
		header_from     TEXT NOT NULL DEFAULT '',
		header_to       TEXT NOT NULL DEFAULT '',
		header_cc       TEXT NOT NULL DEFAULT '',
		message_id      TEXT NOT NULL DEFAULT '',
		files           TEXT NOT NULL DEFAULT '[]',
		reasons         TEXT NOT NULL DEFAULT '[]',
		visible         INTEGER NOT NULL DEFAULT 0,
		hold_until      INTEGER NOT NULL DEFAULT 0,
		expires_at      INTEGER NOT NULL DEFAULT 0,
		sender_ok       INTEGER NOT NULL DEFAULT 1,
		approvals       TEXT NOT NULL DEFAULT '[]',
		approved        TEXT NOT NULL DEFAULT '[]',
		decided_by      TEXT NOT NULL DEFAULT '',
		reason          TEXT NOT NULL DEFAULT '',
		token_hash      BLOB UNIQUE,
		created_at      INTEGER NOT NULL,
		finished_at     INTEGER NOT NULL DEFAULT 0,
		attempts        INTEGER NOT NULL DEFAULT 0,
		next_attempt    INTEGER NOT NULL DEFAULT 0,
		last_error      TEXT NOT NULL DEFAULT '',
		notice_sent     INTEGER NOT NULL DEFAULT 0,
		requests_sent   INTEGER NOT NULL DEFAULT 0,
		confirm_sent    INTEGER NOT NULL DEFAULT 0,
		notice_attempts INTEGER NOT NULL DEFAULT 0,
		notice_next     INTEGER NOT NULL DEFAULT 0
	);
	CREATE INDEX held_by_state ON held(state, hold_until);
	CREATE INDEX held_by_key ON held(msg_key);
	CREATE TABLE approver_tokens (
		token_hash BLOB PRIMARY KEY,
		held       TEXT NOT NULL,
		approver   TEXT NOT NULL
	);
	CREATE INDEX approver_tokens_by_held ON approver_tokens(held);
	CREATE TABLE events (
		seq     INTEGER PRIMARY KEY AUTOINCREMENT,
		message TEXT NOT NULL,
		at      INTEGER NOT NULL,
		event   TEXT NOT NULL,
		actor   TEXT NOT NULL DEFAULT '',
		via     TEXT NOT NULL DEFAULT '',
		detail  TEXT NOT NULL DEFAULT ''
	);
	CREATE INDEX events_by_message ON events(message, seq);`,
	// 6: download links (policy action link): the link of each linked
	// copy, with its sealed file key and password, and the rules' fields.
	`ALTER TABLE policies ADD COLUMN link_expiry_ms INTEGER;
	ALTER TABLE policies ADD COLUMN max_downloads INTEGER;
	ALTER TABLE policies ADD COLUMN link_auth TEXT NOT NULL DEFAULT '';
	CREATE TABLE links (
		id                TEXT PRIMARY KEY,
		message           TEXT NOT NULL,
		msg_key           BLOB,
		state             TEXT NOT NULL,
		auth              TEXT NOT NULL,
		sender            TEXT NOT NULL,
		rcpts             TEXT NOT NULL,
		header_from       TEXT NOT NULL DEFAULT '',
		subject           TEXT NOT NULL DEFAULT '',
		message_id        TEXT NOT NULL DEFAULT '',
		zip_name          TEXT NOT NULL DEFAULT '',
		language          TEXT NOT NULL DEFAULT '',
		files             TEXT NOT NULL,
		file_key          BLOB,
		password          BLOB,
		token             BLOB,
		token_hash        BLOB UNIQUE,
		created_at        INTEGER NOT NULL,
		expires_at        INTEGER NOT NULL,
		max_downloads     INTEGER NOT NULL DEFAULT 0,
		downloads         INTEGER NOT NULL DEFAULT 0,
		failures          INTEGER NOT NULL DEFAULT 0,
		first_download_at INTEGER NOT NULL DEFAULT 0,
		first_notice_sent INTEGER NOT NULL DEFAULT 0,
		ended_at          INTEGER NOT NULL DEFAULT 0,
		ended_by          TEXT NOT NULL DEFAULT '',
		end_notice_sent   INTEGER NOT NULL DEFAULT 0,
		files_gone        INTEGER NOT NULL DEFAULT 0,
		code_hash         BLOB,
		code_to           TEXT NOT NULL DEFAULT '',
		code_expires      INTEGER NOT NULL DEFAULT 0,
		code_sent_at      INTEGER NOT NULL DEFAULT 0,
		notice_attempts   INTEGER NOT NULL DEFAULT 0,
		notice_next       INTEGER NOT NULL DEFAULT 0
	);
	CREATE INDEX links_by_state ON links(state, expires_at);
	CREATE INDEX links_by_message ON links(message);`,
	// 7: the admin pages and API: accounts (bcrypt hashes), their
	// sessions and API tokens (only hashes of both); the audit trail in
	// events: what an event is about when it is not a message (a policy,
	// an account), the file names of each message record, and the
	// indexes its search and the message pages read by.
	`ALTER TABLE events ADD COLUMN target TEXT NOT NULL DEFAULT '';
	CREATE INDEX events_by_at ON events(at);
	ALTER TABLE messages ADD COLUMN files TEXT NOT NULL DEFAULT '[]';
	CREATE INDEX jobs_by_message ON jobs(message);
	CREATE TABLE admins (
		name          TEXT PRIMARY KEY,
		password_hash BLOB NOT NULL,
		created_at    INTEGER NOT NULL,
		updated_at    INTEGER NOT NULL,
		last_login    INTEGER NOT NULL DEFAULT 0
	);
	CREATE TABLE admin_sessions (
		id_hash    BLOB PRIMARY KEY,
		admin      TEXT NOT NULL,
		csrf       TEXT NOT NULL,
		created_at INTEGER NOT NULL,
		seen_at    INTEGER NOT NULL,
		expires_at INTEGER NOT NULL
	);
	CREATE INDEX admin_sessions_by_admin ON admin_sessions(admin);
	CREATE TABLE api_tokens (
		name       TEXT PRIMARY KEY,
		token_hash BLOB NOT NULL UNIQUE,
		created_at INTEGER NOT NULL,
		last_used  INTEGER NOT NULL DEFAULT 0
	);`,
}

// SQLite is the embedded store: one file, WAL, synchronous=FULL so that a
// job written before a relay survives a power cut.
type SQLite struct {
	reads         // on db
	db    *sql.DB // reads, on several connections (WAL lets them run beside a write)
	w     *sql.DB // writes, on one connection, through the gate
	g     gate
	dq    deliveryQueue
	path  string
}

// exec runs one write statement through the gate.
func (s *SQLite) exec(ctx context.Context, urgent bool, query string, args ...any) (sql.Result, error) {
	s.g.lock(urgent)
	defer s.g.unlock()
	return s.w.ExecContext(ctx, query, args...)
}

// begin starts a write transaction through the gate; call done after
// Commit or Rollback.
func (s *SQLite) begin(ctx context.Context, urgent bool) (tx *sql.Tx, done func(), err error) {
	s.g.lock(urgent)
	tx, err = s.w.BeginTx(ctx, nil)
	if err != nil {
		s.g.unlock()
		return nil, nil, err
	}
	return tx, func() { tx.Rollback(); s.g.unlock() }, nil
}

// OpenSQLite opens (creating and migrating) the database at path; key
// encrypts the passwords at rest.
func OpenSQLite(ctx context.Context, path string, key []byte) (*SQLite, error) {
	sec, err := newSealer(key)
	if err != nil {
		return nil, err
	}
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "busy_timeout(10000)")
	// A wiped password must not stay behind in the free space of a page,
	// where the key file would still open it: an UPDATE that makes a row
	// longer (MarkFailed with an SMTP reply) moves the row and leaves the
	// old one, sealed password and all, in the file.
	q.Add("_pragma", "secure_delete(ON)")
	q.Add("_txlock", "immediate")
	// Subjects, recipients and file names are for the admin only. SQLite
	// gives the -wal and -shm files the mode of the database file, so the
	// file is made 0600 before SQLite makes them (umask 022 would leave
	// them world-readable otherwise).
	if f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600); err == nil {
		f.Close()
	}
	// The DSN is a URI: escape the file name, or "#", "?" and "%" in it
	// would open another file.
	name := (&url.URL{Path: filepath.Clean(path)}).EscapedPath()
	db, err := sql.Open("sqlite", "file:"+name+"?"+q.Encode())
	if err != nil {
		return nil, err
	}
	// One connection for the writes of this process: they queue at the
	// gate and go the moment the last one commits, rather than in SQLite's
	// busy handler, which sleeps up to 100 ms between tries. Other
	// processes (the CLI) still meet the busy timeout.
	w, err := sql.Open("sqlite", "file:"+name+"?"+q.Encode())
	if err != nil {
		db.Close()
		return nil, err
	}
	w.SetMaxOpenConns(1)
	s := &SQLite{reads: reads{db: sqlReader{db}, sec: sec}, db: db, w: w, path: filepath.Clean(path)}
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	// A database made by an older zipgate may have wider modes.
	for _, f := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Chmod(f, 0o600); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// Open opens the SQLite store at dbFile with the key in keyFile, making
// the key on first use, and returns the key too (the web's CSRF key is
// derived from it).
func Open(ctx context.Context, dbFile, keyFile string) (*SQLite, []byte, error) {
	key, err := LoadKey(keyFile)
	if err != nil {
		return nil, nil, err
	}
	st, err := OpenSQLite(ctx, dbFile, key)
	if err != nil {
		return nil, nil, err
	}
	return st, key, nil
}

func (s *SQLite) migrate(ctx context.Context) error {
	if _, err := s.exec(ctx, false, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
		return err
	}
	// The version is read inside the migration's transaction (BEGIN
	// IMMEDIATE, so it holds the write lock): a server and a CLI opening
	// a new database together must not both apply the same migration.
	for {
		done, err := s.migrateOne(ctx)
		if err != nil || done {
			return err
		}
	}
}

// migrateOne applies the next migration, if any; done reports that the
// schema is up to date.
func (s *SQLite) migrateOne(ctx context.Context) (done bool, err error) {
	tx, release, err := s.begin(ctx, false)
	if err != nil {
		return false, err
	}
	defer release()
	var v int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&v); err != nil {
		return false, err
	}
	if v > len(migrations) {
		return false, fmt.Errorf("database schema %d is newer than this zipgate (%d)", v, len(migrations))
	}
	if v == len(migrations) {
		return true, nil
	}
	if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
		return false, fmt.Errorf("migration %d: %w", v+1, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version (version) VALUES (?)`, v+1); err != nil {
		return false, err
	}
	return false, tx.Commit()
}

func (s *SQLite) Close() error { return errors.Join(s.w.Close(), s.db.Close()) }

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v)
}

func (s *SQLite) Create(ctx context.Context, j *Job) error {
	sealed, err := s.sec.seal(j.ID, j.Password)
	if err != nil {
		return err
	}
	_, err = s.exec(ctx, false, insertJob, jobArgs(j, sealed)...)
	if err == nil {
		j.State = Pending
	}
	return err
}

const insertJob = `INSERT INTO jobs
	(id, state, sender, rcpts, header_from, header_to, header_cc, subject, message_id,
	 zip_name, files, password, created_at, due_at, message, msg_key, password_to, language, rule)
	VALUES (?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

func jobArgs(j *Job, sealed []byte) []any {
	rcpts, _ := json.Marshal(j.Rcpts)
	files, _ := json.Marshal(j.Files)
	return []any{j.ID, j.Sender, string(rcpts), j.HeaderFrom, j.HeaderTo, j.HeaderCc, j.Subject, j.MessageID,
		j.ZipName, string(files), sealed, ms(j.CreatedAt), ms(j.DueAt), j.Message, j.Key,
		string(orDefaultPT(j.PasswordTo)), j.Language, j.Rule}
}

func orDefaultPT(p policy.PasswordTo) policy.PasswordTo {
	if p == "" {
		return policy.ToRecipient
	}
	return p
}

// transition runs an UPDATE that applies only in the given states and
// explains a miss by the job's current state.
func (s *SQLite) transition(ctx context.Context, urgent bool, id, query string, args ...any) error {
	res, err := s.exec(ctx, urgent, query, args...)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return nil
	}
	var st State
	err = s.db.QueryRowContext(ctx, `SELECT state FROM jobs WHERE id = ?`, id).Scan(&st)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	if err != nil {
		return err
	}
	switch st {
	case Released:
		return ErrAlreadyReleased
	case Canceled:
		return ErrAlreadyCanceled
	case Sending:
		return ErrSending
	}
	return ErrFinished
}

func (s *SQLite) Schedule(ctx context.Context, id string) error {
	return s.transition(ctx, false, id, `UPDATE jobs SET state = 'scheduled' WHERE id = ? AND state = 'pending'`, id)
}

func (s *SQLite) Discard(ctx context.Context, id string) error {
	tx, done, err := s.begin(ctx, false)
	if err != nil {
		return err
	}
	defer done()
	if _, err := tx.ExecContext(ctx, `DELETE FROM jobs WHERE id = ? AND state = 'pending'`, id); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM links WHERE id = ? AND state = 'pending'`, id); err != nil {
		return err
	}
	return tx.Commit()
}

func (s *SQLite) Recover(ctx context.Context) (int, error) {
	res, err := s.exec(ctx, false, `UPDATE jobs SET state = 'scheduled' WHERE state = 'sending'`)
	if err != nil {
		return 0, err
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

func (s *SQLite) Cancel(ctx context.Context, id string, now time.Time) error {
	return s.transition(ctx, false, id, `UPDATE jobs SET state = 'canceled', finished_at = ?, password = NULL
		WHERE id = ? AND state IN ('pending', 'scheduled')`, ms(now), id)
}

// ReleaseNow also releases a job that waits for the sender (due_at 0).
func (s *SQLite) ReleaseNow(ctx context.Context, id string, now time.Time) error {
	return s.transition(ctx, false, id, `UPDATE jobs SET due_at = CASE WHEN due_at = 0 OR due_at > ? THEN ? ELSE due_at END,
		next_attempt = 0 WHERE id = ? AND state IN ('pending', 'scheduled')`, ms(now), ms(now), id)
}

func (s *SQLite) Claim(ctx context.Context, id string, now time.Time) error {
	return s.transition(ctx, false, id, `UPDATE jobs SET state = 'sending'
		WHERE id = ? AND state = 'scheduled' AND due_at > 0 AND due_at <= ? AND next_attempt <= ?`, id, ms(now), ms(now))
}

func (s *SQLite) MarkReleased(ctx context.Context, id string, now time.Time) error {
	// Urgent: it records what the next hop just accepted.
	return s.transition(ctx, true, id, `UPDATE jobs SET state = 'released', finished_at = ?, password = NULL, last_error = ''
		WHERE id = ? AND state = 'sending'`, ms(now), id)
}

func (s *SQLite) MarkRetry(ctx context.Context, id string, next time.Time, reason string) error {
	return s.transition(ctx, false, id, `UPDATE jobs SET state = 'scheduled', attempts = attempts + 1, next_attempt = ?, last_error = ?
		WHERE id = ? AND state = 'sending'`, ms(next), reason, id)
}

func (s *SQLite) MarkFailed(ctx context.Context, id string, now time.Time, reason string) error {
	return s.transition(ctx, false, id, `UPDATE jobs SET state = 'failed', finished_at = ?, password = NULL, attempts = attempts + 1, last_error = ?
		WHERE id = ? AND state = 'sending'`, ms(now), reason, id)
}

func (s *SQLite) SetToken(ctx context.Context, id string, tokenHash []byte) error {
	res, err := s.exec(ctx, false, `UPDATE jobs SET token_hash = ? WHERE id = ?`, tokenHash, id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

func (s *SQLite) MarkNoticeSent(ctx context.Context, id string) error {
	_, err := s.exec(ctx, false, `UPDATE jobs SET notice_sent = 1 WHERE id = ?`, id)
	return err
}

func (s *SQLite) MarkNoticeRetry(ctx context.Context, id string, next time.Time) error {
	_, err := s.exec(ctx, false, `UPDATE jobs SET notice_attempts = notice_attempts + 1, notice_next = ? WHERE id = ?`, ms(next), id)
	return err
}

func (s *SQLite) MarkConfirmSent(ctx context.Context, id string) error {
	_, err := s.exec(ctx, false, `UPDATE jobs SET confirm_sent = 1 WHERE id = ?`, id)
	return err
}

// Purge deletes finished jobs, jobs left pending (their message never
// came back from Postfix), deliveries and finished held messages, all
// older than before. It counts the jobs. Message records and their
// events are the audit trail: PurgeAudit, after audit.retention.
func (s *SQLite) Purge(ctx context.Context, before time.Time) (int, error) {
	tx, done, err := s.begin(ctx, false)
	if err != nil {
		return 0, err
	}
	defer done()
	res, err := tx.ExecContext(ctx, `DELETE FROM jobs WHERE (finished_at > 0 AND finished_at < ?)
		OR (state = 'pending' AND created_at < ?)`, ms(before), ms(before))
	if err != nil {
		return 0, err
	}
	n, _ := res.RowsAffected()
	if _, err := tx.ExecContext(ctx, `DELETE FROM deliveries WHERE delivered_at < ?`, ms(before)); err != nil {
		return 0, err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM approver_tokens WHERE held IN
		(SELECT id FROM held WHERE finished_at > 0 AND finished_at < ?)`, ms(before)); err != nil {
		return 0, err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM held WHERE finished_at > 0 AND finished_at < ?`, ms(before)); err != nil {
		return 0, err
	}
	// Links whose files are gone; the links scheduler ends those older
	// than the retention first and deletes their files.
	if _, err := tx.ExecContext(ctx, `DELETE FROM links WHERE files_gone = 1 AND ended_at > 0 AND ended_at < ?`,
		ms(before)); err != nil {
		return 0, err
	}
	return int(n), tx.Commit()
}

const jobColumns = `id, state, sender, rcpts, header_from, header_to, header_cc, subject, message_id,
	zip_name, files, password, token_hash, created_at, due_at, finished_at, attempts, next_attempt,
	last_error, notice_sent, confirm_sent, message, msg_key, password_to, language, rule, notice_attempts, notice_next`

// scanJob reads the jobColumns of a row (of either store).
func scanJob(sec *sealer, row scanner) (*Job, error) {
	var j Job
	var rcpts, files string
	var sealed []byte
	var created, due, finished, next, noticeNext int64
	err := row.Scan(&j.ID, &j.State, &j.Sender, &rcpts, &j.HeaderFrom, &j.HeaderTo, &j.HeaderCc, &j.Subject,
		&j.MessageID, &j.ZipName, &files, &sealed, &j.TokenHash, &created, &due, &finished, &j.Attempts, &next,
		&j.LastError, &j.NoticeSent, &j.ConfirmSent, &j.Message, &j.Key, &j.PasswordTo, &j.Language, &j.Rule,
		&j.NoticeAttempts, &noticeNext)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(rcpts), &j.Rcpts); err != nil {
		return nil, fmt.Errorf("job %s recipients: %w", j.ID, err)
	}
	if err := json.Unmarshal([]byte(files), &j.Files); err != nil {
		return nil, fmt.Errorf("job %s files: %w", j.ID, err)
	}
	if j.Password, err = sec.open(j.ID, sealed); err != nil {
		return nil, fmt.Errorf("job %s: %w", j.ID, err)
	}
	j.CreatedAt, j.DueAt, j.FinishedAt, j.NextAttempt = fromMS(created), fromMS(due), fromMS(finished), fromMS(next)
	j.NoticeNext = fromMS(noticeNext)
	return &j, nil
}

func (s *SQLite) Work(ctx context.Context, now time.Time, limit int) ([]*Job, error) {
	return s.query(ctx, `SELECT `+jobColumns+` FROM jobs WHERE
		(state = 'scheduled' AND due_at > 0 AND due_at <= ? AND next_attempt <= ?)
		OR (notice_next <= ? AND (
			(state IN ('scheduled', 'released', 'canceled', 'failed') AND notice_sent = 0)
			OR (state IN ('released', 'canceled', 'failed') AND confirm_sent = 0)))
		ORDER BY due_at, id LIMIT ?`, ms(now), ms(now), ms(now), limit)
}

func (s *SQLite) NextWake(ctx context.Context) (time.Time, error) {
	var t sql.NullInt64
	err := s.db.QueryRowContext(ctx, `SELECT MIN(t) FROM (
		SELECT MAX(due_at, next_attempt) AS t FROM jobs WHERE state = 'scheduled' AND due_at > 0
		UNION ALL
		SELECT MAX(notice_next, 1) FROM jobs WHERE (state IN ('scheduled', 'released', 'canceled', 'failed') AND notice_sent = 0)
			OR (state IN ('released', 'canceled', 'failed') AND confirm_sent = 0))`).Scan(&t)
	if err != nil || !t.Valid {
		return time.Time{}, err
	}
	return time.UnixMilli(t.Int64), nil
}

var _ Store = (*SQLite)(nil)
