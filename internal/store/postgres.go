package store

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// pgMigrations make the PostgreSQL schema, each once, all of them in one
// transaction that starts with a fixed advisory lock: nodes that start
// together wait for each other instead of racing. Version 1 is the
// SQLite schema of its 7 migrations at once, plus the leases (node,
// lease_until) that let several nodes share the work, and the blobs
// that keep held messages and the files of download links.
var pgMigrations = []string{
	`CREATE TABLE jobs (
		id              TEXT PRIMARY KEY,
		state           TEXT NOT NULL,
		sender          TEXT NOT NULL,
		rcpts           TEXT NOT NULL,
		header_from     TEXT NOT NULL DEFAULT '',
		header_to       TEXT NOT NULL DEFAULT '',
		header_cc       TEXT NOT NULL DEFAULT '',
		subject         TEXT NOT NULL DEFAULT '',
		message_id      TEXT NOT NULL DEFAULT '',
		zip_name        TEXT NOT NULL,
		files           TEXT NOT NULL,
		password        BYTEA,
		token_hash      BYTEA UNIQUE,
		created_at      BIGINT NOT NULL,
		due_at          BIGINT NOT NULL,
		finished_at     BIGINT NOT NULL DEFAULT 0,
		attempts        INTEGER NOT NULL DEFAULT 0,
		next_attempt    BIGINT NOT NULL DEFAULT 0,
		last_error      TEXT NOT NULL DEFAULT '',
		notice_sent     BOOLEAN NOT NULL DEFAULT false,
		confirm_sent    BOOLEAN NOT NULL DEFAULT false,
		message         TEXT NOT NULL DEFAULT '',
		msg_key         BYTEA,
		password_to     TEXT NOT NULL DEFAULT 'recipient',
		language        TEXT NOT NULL DEFAULT '',
		rule            TEXT NOT NULL DEFAULT '',
		notice_attempts INTEGER NOT NULL DEFAULT 0,
		notice_next     BIGINT NOT NULL DEFAULT 0,
		node            TEXT NOT NULL DEFAULT '',
		lease_until     BIGINT NOT NULL DEFAULT 0
	);
	CREATE INDEX jobs_by_state_due ON jobs(state, due_at);
	CREATE INDEX jobs_by_created ON jobs(created_at);
	CREATE INDEX jobs_by_key ON jobs(msg_key);
	CREATE INDEX jobs_by_message ON jobs(message);
	CREATE TABLE policies (
		domain            TEXT PRIMARY KEY,
		action            TEXT NOT NULL DEFAULT '',
		password_to       TEXT NOT NULL DEFAULT '',
		delay_ms          BIGINT,
		zip_method        TEXT NOT NULL DEFAULT '',
		filename_encoding TEXT NOT NULL DEFAULT '',
		language          TEXT NOT NULL DEFAULT '',
		note              TEXT NOT NULL DEFAULT '',
		updated_at        BIGINT NOT NULL,
		hold_ms           BIGINT,
		approvers         TEXT,
		guard             TEXT NOT NULL DEFAULT '',
		link_expiry_ms    BIGINT,
		max_downloads     BIGINT,
		link_auth         TEXT NOT NULL DEFAULT ''
	);
	CREATE TABLE messages (
		id         TEXT PRIMARY KEY,
		msg_key    BYTEA NOT NULL,
		created_at BIGINT NOT NULL,
		updated_at BIGINT NOT NULL,
		sender     TEXT NOT NULL,
		rcpts      TEXT NOT NULL,
		queue_id   TEXT NOT NULL DEFAULT '',
		message_id TEXT NOT NULL DEFAULT '',
		subject    TEXT NOT NULL DEFAULT '',
		size       BIGINT NOT NULL DEFAULT 0,
		groups     TEXT NOT NULL DEFAULT '[]',
		result     TEXT NOT NULL DEFAULT '',
		files      TEXT NOT NULL DEFAULT '[]'
	);
	CREATE INDEX messages_by_key ON messages(msg_key);
	CREATE INDEX messages_by_created ON messages(created_at);
	CREATE TABLE deliveries (
		msg_key      BYTEA NOT NULL,
		rcpt         TEXT NOT NULL,
		message      TEXT NOT NULL,
		job          TEXT NOT NULL DEFAULT '',
		delivered_at BIGINT NOT NULL,
		PRIMARY KEY (msg_key, rcpt)
	);
	CREATE INDEX deliveries_by_time ON deliveries(delivered_at);
	CREATE TABLE held (
		id              TEXT PRIMARY KEY,
		msg_key         BYTEA NOT NULL,
		state           TEXT NOT NULL,
		sender          TEXT NOT NULL,
		rcpts           TEXT NOT NULL,
		envelope        BYTEA NOT NULL,
		size            BIGINT NOT NULL,
		subject         TEXT NOT NULL DEFAULT '',
		header_from     TEXT NOT NULL DEFAULT '',
		header_to       TEXT NOT NULL DEFAULT '',
		header_cc       TEXT NOT NULL DEFAULT '',
		message_id      TEXT NOT NULL DEFAULT '',
		files           TEXT NOT NULL DEFAULT '[]',
		reasons         TEXT NOT NULL DEFAULT '[]',
		visible         INTEGER NOT NULL DEFAULT 0,
		hold_until      BIGINT NOT NULL DEFAULT 0,
		expires_at      BIGINT NOT NULL DEFAULT 0,
		sender_ok       BOOLEAN NOT NULL DEFAULT true,
		approvals       TEXT NOT NULL DEFAULT '[]',
		approved        TEXT NOT NULL DEFAULT '[]',
		decided_by      TEXT NOT NULL DEFAULT '',
		reason          TEXT NOT NULL DEFAULT '',
		token_hash      BYTEA UNIQUE,
		created_at      BIGINT NOT NULL,
		finished_at     BIGINT NOT NULL DEFAULT 0,
		attempts        INTEGER NOT NULL DEFAULT 0,
		next_attempt    BIGINT NOT NULL DEFAULT 0,
		last_error      TEXT NOT NULL DEFAULT '',
		notice_sent     BOOLEAN NOT NULL DEFAULT false,
		requests_sent   BOOLEAN NOT NULL DEFAULT false,
		confirm_sent    BOOLEAN NOT NULL DEFAULT false,
		notice_attempts INTEGER NOT NULL DEFAULT 0,
		notice_next     BIGINT NOT NULL DEFAULT 0,
		node            TEXT NOT NULL DEFAULT '',
		lease_until     BIGINT NOT NULL DEFAULT 0
	);
	CREATE INDEX held_by_state ON held(state, hold_until);
	CREATE INDEX held_by_key ON held(msg_key);
	CREATE TABLE approver_tokens (
		token_hash BYTEA PRIMARY KEY,
		held       TEXT NOT NULL,
		approver   TEXT NOT NULL
	);
	CREATE INDEX approver_tokens_by_held ON approver_tokens(held);
	CREATE TABLE events (
		seq     BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
		message TEXT NOT NULL,
		at      BIGINT NOT NULL,
		event   TEXT NOT NULL,
		actor   TEXT NOT NULL DEFAULT '',
		via     TEXT NOT NULL DEFAULT '',
		detail  TEXT NOT NULL DEFAULT '',
		target  TEXT NOT NULL DEFAULT ''
	);
	CREATE INDEX events_by_message ON events(message, seq);
	CREATE INDEX events_by_at ON events(at);
	CREATE TABLE links (
		id                TEXT PRIMARY KEY,
		message           TEXT NOT NULL,
		msg_key           BYTEA,
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
		file_key          BYTEA,
		password          BYTEA,
		token             BYTEA,
		token_hash        BYTEA UNIQUE,
		created_at        BIGINT NOT NULL,
		expires_at        BIGINT NOT NULL,
		max_downloads     INTEGER NOT NULL DEFAULT 0,
		downloads         INTEGER NOT NULL DEFAULT 0,
		failures          INTEGER NOT NULL DEFAULT 0,
		first_download_at BIGINT NOT NULL DEFAULT 0,
		first_notice_sent BOOLEAN NOT NULL DEFAULT false,
		ended_at          BIGINT NOT NULL DEFAULT 0,
		ended_by          TEXT NOT NULL DEFAULT '',
		end_notice_sent   BOOLEAN NOT NULL DEFAULT false,
		files_gone        BOOLEAN NOT NULL DEFAULT false,
		code_hash         BYTEA,
		code_to           TEXT NOT NULL DEFAULT '',
		code_expires      BIGINT NOT NULL DEFAULT 0,
		code_sent_at      BIGINT NOT NULL DEFAULT 0,
		notice_attempts   INTEGER NOT NULL DEFAULT 0,
		notice_next       BIGINT NOT NULL DEFAULT 0,
		node              TEXT NOT NULL DEFAULT '',
		lease_until       BIGINT NOT NULL DEFAULT 0
	);
	CREATE INDEX links_by_state ON links(state, expires_at);
	CREATE INDEX links_by_message ON links(message);
	CREATE TABLE admins (
		name          TEXT PRIMARY KEY,
		password_hash BYTEA NOT NULL,
		created_at    BIGINT NOT NULL,
		updated_at    BIGINT NOT NULL,
		last_login    BIGINT NOT NULL DEFAULT 0
	);
	CREATE TABLE admin_sessions (
		id_hash    BYTEA PRIMARY KEY,
		admin      TEXT NOT NULL,
		csrf       TEXT NOT NULL,
		created_at BIGINT NOT NULL,
		seen_at    BIGINT NOT NULL,
		expires_at BIGINT NOT NULL
	);
	CREATE INDEX admin_sessions_by_admin ON admin_sessions(admin);
	CREATE TABLE api_tokens (
		name       TEXT PRIMARY KEY,
		token_hash BYTEA NOT NULL UNIQUE,
		created_at BIGINT NOT NULL,
		last_used  BIGINT NOT NULL DEFAULT 0
	);
	CREATE TABLE blob_files (
		kind       TEXT NOT NULL,
		id         TEXT NOT NULL,
		n          INTEGER NOT NULL,
		size       BIGINT NOT NULL,
		chunks     INTEGER NOT NULL,
		written_at BIGINT NOT NULL,
		PRIMARY KEY (kind, id, n)
	);
	CREATE TABLE blob_chunks (
		kind TEXT NOT NULL,
		id   TEXT NOT NULL,
		n    INTEGER NOT NULL,
		seq  INTEGER NOT NULL,
		data BYTEA NOT NULL,
		PRIMARY KEY (kind, id, n, seq)
	);
	ALTER TABLE blob_chunks ALTER COLUMN data SET STORAGE EXTERNAL;
	CREATE TABLE meta (
		name  TEXT PRIMARY KEY,
		value BYTEA NOT NULL
	);`,
}

// pgMigrationLock is the advisory lock every migration takes ("zipgate").
const pgMigrationLock = int64(0x7a6970676174)

// Topics of the notifications: a hint to the other nodes' schedulers
// that something changed (a cancel, a release now, an approval, a link
// taken back). A lost one costs a poll interval, never a job.
const (
	TopicJobs  = "zipgate_jobs"
	TopicHeld  = "zipgate_held"
	TopicLinks = "zipgate_links"
)

// Notifier is a store whose changes other nodes make can be listened to.
type Notifier interface {
	// Listen calls wake[topic] for each notification until ctx ends,
	// and every one of them after a lost connection came back (what
	// was said meanwhile is lost).
	Listen(ctx context.Context, wake map[string]func()) error
}

// PostgresOptions say how to reach the database and how this node
// shares the work.
type PostgresOptions struct {
	URL string
	// Password, when not in the URL or PGPASSFILE.
	Password string
	// Node names this node in its leases; "" is a random name.
	Node string
	// Lease is how long a claim holds without renewal (0: 30 s).
	Lease time.Duration
	// Existing refuses a database zipgate never used (ErrNoStore): the
	// admin commands never make a store.
	Existing bool
	// Timeout is how long the database may keep silent when asked
	// before it counts as down (0: DefaultTimeout); see answerConn.
	Timeout time.Duration
}

// ErrNoStore: the database holds no zipgate store.
var ErrNoStore = errors.New("no zipgate store in this database")

// Postgres is the store several zipgate nodes share. Everything the
// SQLite store keeps is here, plus the bytes of held messages and of
// download links (Blobs). A node that takes work (Work, HeldWork,
// LinkWork, Claim, ClaimHeld) leases the rows for Lease: no other node
// works them meanwhile (SELECT ... FOR UPDATE SKIP LOCKED), and a job
// is completed (MarkReleased, MarkRetry, MarkFailed) only by the node
// that claimed it. The rows of a node that died are taken over by the
// next node that looks once the lease has run out; RenewLeases keeps a
// live node's leases while it works.
type Postgres struct {
	reads // on pool
	pool  *pgxpool.Pool
	node  string
	lease time.Duration

	mu     sync.Mutex
	inHand map[string][]string // table: the ids the last Work of it returned

	// now is the clock of Recover and RecoverHeld, which take none.
	now func() time.Time
}

var _ Store = (*Postgres)(nil)

// OpenPostgres connects, migrates, and opens the store with the key in
// keyFile. Every node must have the same key: the first node to start
// on an empty database makes it (when keyFile does not exist) and leaves
// a check value in the database; a node whose key differs, or that has
// no key file on a database that already has one, is refused.
func OpenPostgres(ctx context.Context, o PostgresOptions, keyFile string) (*Postgres, []byte, error) {
	pool, err := connect(ctx, o)
	if err != nil {
		return nil, nil, err
	}
	p := &Postgres{pool: pool}
	if o.Existing {
		var made bool
		if err := pool.QueryRow(ctx, `SELECT to_regclass('schema_version') IS NOT NULL`).Scan(&made); err != nil {
			pool.Close()
			return nil, nil, fmt.Errorf("store %s: %w", redact(o.URL), err)
		}
		if !made {
			pool.Close()
			return nil, nil, fmt.Errorf("store %s: %w", redact(o.URL), ErrNoStore)
		}
	}
	if err := p.migrate(ctx); err != nil {
		pool.Close()
		return nil, nil, fmt.Errorf("store %s: %w", redact(o.URL), err)
	}
	if _, err := os.Stat(keyFile); errors.Is(err, fs.ErrNotExist) {
		var n int
		if err := pool.QueryRow(ctx, `SELECT COUNT(*) FROM meta WHERE name = 'key_check'`).Scan(&n); err != nil {
			pool.Close()
			return nil, nil, err
		}
		if n > 0 || o.Existing {
			pool.Close()
			return nil, nil, fmt.Errorf("no key file %s, and the database already holds data sealed with a key: "+
				"copy the key file (release.key_file) of a node that uses this database", keyFile)
		}
	}
	key, err := LoadKey(keyFile)
	if err != nil {
		pool.Close()
		return nil, nil, err
	}
	if err := p.init(ctx, o, key); err != nil {
		pool.Close()
		return nil, nil, fmt.Errorf("store %s: %w", redact(o.URL), err)
	}
	return p, key, nil
}

// OpenPostgresKey opens the store with key (tests, store migrate).
func OpenPostgresKey(ctx context.Context, o PostgresOptions, key []byte) (*Postgres, error) {
	pool, err := connect(ctx, o)
	if err != nil {
		return nil, err
	}
	p := &Postgres{pool: pool}
	err = p.migrate(ctx)
	if err == nil {
		err = p.init(ctx, o, key)
	}
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("store %s: %w", redact(o.URL), err)
	}
	return p, nil
}

func connect(ctx context.Context, o PostgresOptions) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(o.URL)
	if err != nil {
		// pgx's message may quote the URL, password and all.
		return nil, fmt.Errorf("store.url %s does not parse as a PostgreSQL URL", redact(o.URL))
	}
	if o.Password != "" {
		cfg.ConnConfig.Password = o.Password
	}
	limit := o.Timeout
	if limit <= 0 {
		limit = DefaultTimeout
	}
	if !strings.Contains(o.URL, "connect_timeout") {
		// A database host that does not answer is a 451 within seconds,
		// not after the system's TCP timeout. The TLS handshake comes
		// before answerConn: the timeout bounds it, as answerConn does
		// the rest.
		cfg.ConnConfig.ConnectTimeout = min(10*time.Second, limit)
	}
	if !strings.Contains(o.URL, "pool_max_conns") {
		// Room for mail, leases, schedulers, pages and downloads at once
		// (each statement holds one only while it runs; the LISTEN
		// connection is one more, outside the pool).
		cfg.MaxConns = 25
	}
	if !strings.Contains(o.URL, "pool_min_conns") {
		// Connections made before the mail comes: a new one (a TCP and a
		// SCRAM handshake, statements prepared on first use) would
		// lengthen the window between the next hop's 250 and its record.
		cfg.MinConns = 4
	}
	// A connection idle in the pool to a host that died (or behind a
	// network that lost it) is noticed by TCP within half a minute, not
	// the two hours of the system's default, nor pgx's 5 minutes.
	dialer := &net.Dialer{KeepAliveConfig: net.KeepAliveConfig{Enable: true,
		Idle: 15 * time.Second, Interval: 5 * time.Second, Count: 3}}
	cfg.ConnConfig.DialFunc = dialer.DialContext
	var made atomic.Pointer[pgxpool.Pool]
	cfg.ConnConfig.AfterNetConnect = func(_ context.Context, _ *pgconn.Config, c net.Conn) (net.Conn, error) {
		return newAnswerConn(c, limit, func() {
			if pool := made.Load(); pool != nil {
				pool.Reset()
			}
		}), nil
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", redact(o.URL), err)
	}
	made.Store(pool)
	return pool, nil
}

// init sets the key, checks it against the database's, and names the
// node.
func (p *Postgres) init(ctx context.Context, o PostgresOptions, key []byte) error {
	sec, err := newSealer(key)
	if err != nil {
		return err
	}
	p.reads = reads{db: pgReader{p.pool}, sec: sec}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("zipgate store key check"))
	check := mac.Sum(nil)
	if _, err := p.pool.Exec(ctx, `INSERT INTO meta (name, value) VALUES ('key_check', $1) ON CONFLICT DO NOTHING`, check); err != nil {
		return err
	}
	var have []byte
	if err := p.pool.QueryRow(ctx, `SELECT value FROM meta WHERE name = 'key_check'`).Scan(&have); err != nil {
		return err
	}
	if !hmac.Equal(have, check) {
		return errors.New("this node's key (release.key_file) is not the key the database's passwords are sealed with: " +
			"give every node the same key file")
	}
	p.node, p.lease = o.Node, o.Lease
	if p.node == "" {
		b := make([]byte, 6)
		rand.Read(b)
		host, _ := os.Hostname()
		p.node = host + "-" + hex.EncodeToString(b)
	}
	if p.lease <= 0 {
		p.lease = 30 * time.Second
	}
	p.inHand = map[string][]string{}
	p.now = time.Now
	return nil
}

// Node is the name of this node in the leases.
func (p *Postgres) Node() string { return p.node }

// migrate runs in a long transaction: a node that starts while another
// migrates waits for the lock as long as that one's migrations run, and
// a migration may rewrite a big table; neither is the database being
// down. Nothing waits on it but this node's start (serve gives it a
// minute; Postfix meanwhile finds nothing listening and defers).
func (p *Postgres) migrate(ctx context.Context) error {
	return p.inLongTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, pgMigrationLock); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY)`); err != nil {
			return err
		}
		var v int
		if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&v); err != nil {
			return err
		}
		if v > len(pgMigrations) {
			return fmt.Errorf("database schema %d is newer than this zipgate (%d)", v, len(pgMigrations))
		}
		for ; v < len(pgMigrations); v++ {
			if _, err := tx.Exec(ctx, pgMigrations[v]); err != nil {
				return fmt.Errorf("migration %d: %w", v+1, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_version (version) VALUES ($1)`, v+1); err != nil {
				return err
			}
		}
		return nil
	})
}

func (p *Postgres) Close() error {
	p.pool.Close()
	return nil
}

// Sync makes every commit so far durable: a transaction with an id of
// its own commits with synchronous_commit on (whatever the server's
// default), so its commit waits until
// the WAL is on disk up to it, and with it every commit before it (those
// of Delivered, which do not wait).
func (p *Postgres) Sync(ctx context.Context) error {
	_, err := p.pool.Exec(ctx, `SELECT set_config('synchronous_commit', 'on', true), pg_current_xact_id()`)
	return err
}

// Ping checks that the database answers.
func (p *Postgres) Ping(ctx context.Context) error { return p.pool.Ping(ctx) }

// redact is config.RedactURL, which store cannot import.
func redact(raw string) string {
	u, err := pgURL(raw)
	if err != nil {
		return "(a URL that does not parse)"
	}
	return u
}

// pgdb is what the pool and a transaction both do.
type pgdb interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// pgReader reads through the pool, the ? placeholders rebound.
type pgReader struct{ db pgdb }

func (r pgReader) rows(ctx context.Context, q string, args ...any) (rowSet, error) {
	return r.db.Query(ctx, rebind(q), args...)
}

func (r pgReader) row(ctx context.Context, q string, args ...any) scanner {
	return r.db.QueryRow(ctx, rebind(q), args...)
}

// caseless: ILIKE is case-insensitive as SQLite's LIKE is for ASCII
// (and, here, beyond it).
func (pgReader) caseless(q string) string { return strings.ReplaceAll(q, " LIKE ", " ILIKE ") }
func (pgReader) jobStates() string        { return `string_agg(state, ',' ORDER BY created_at, id)` }

// rebind turns the ? placeholders of q into $1, $2, ... (outside quotes),
// so the statements read as their SQLite twins.
func rebind(q string) string {
	if !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	n, quoted := 0, false
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case c == '\'':
			quoted = !quoted
		case c == '?' && !quoted:
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

func (p *Postgres) exec(ctx context.Context, db pgdb, q string, args ...any) (int64, error) {
	tag, err := db.Exec(ctx, rebind(q), args...)
	return tag.RowsAffected(), err
}

// inTx runs fn in a transaction and commits it when fn succeeds.
func (p *Postgres) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	tx, err := p.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// inLongTx is inTx on a connection whose reads have no bound (see
// answerConn): for the few statements that may legitimately keep the
// database silent longer than the timeout (lock waits, big deletes).
// Nothing on the mail's path may use it. What bounds it instead: ctx,
// TCP keepalive against a host that is gone, and the bound on writes.
func (p *Postgres) inLongTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	c, err := p.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer c.Release()
	if ac := answerConnOf(c); ac != nil {
		ac.setQuiet(true)
		defer ac.setQuiet(false)
	}
	tx, err := c.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// notify tells the other nodes, at the commit of tx, that topic changed.
func notify(ctx context.Context, tx pgx.Tx, topic string) error {
	_, err := tx.Exec(ctx, `SELECT pg_notify($1, '')`, topic)
	return err
}

// until is the end of a lease taken at now.
func (p *Postgres) until(now time.Time) int64 { return ms(now) + p.lease.Milliseconds() }

// keep remembers the ids a Work of table returned: RenewLeases keeps
// their leases until the next Work.
func (p *Postgres) keep(table string, ids []string) {
	p.mu.Lock()
	p.inHand[table] = ids
	p.mu.Unlock()
}

// RenewLeases keeps this node's leases: the rows it is sending (a slow
// next hop may take longer than a lease) and those its last Work gave
// it. Call it every third of the lease while serving; a node that stops
// renewing (it died, or lost the database) loses its rows to the others
// once the lease runs out.
func (p *Postgres) RenewLeases(ctx context.Context, now time.Time) error {
	p.mu.Lock()
	hand := map[string][]string{}
	for k, v := range p.inHand {
		hand[k] = slices.Clone(v)
	}
	p.mu.Unlock()
	b := &pgx.Batch{}
	for _, t := range []struct{ table, sending string }{{"jobs", "sending"}, {"held", "sending"}, {"links", ""}} {
		ids := hand[t.table]
		if ids == nil {
			ids = []string{}
		}
		b.Queue(rebind(`UPDATE `+t.table+` SET lease_until = ? WHERE node = ? AND lease_until > ?
			AND (state = ? OR id = ANY(?))`), p.until(now), p.node, ms(now), t.sending, ids)
	}
	return p.pool.SendBatch(ctx, b).Close()
}

// StartRenewing renews the leases every third of the lease until ctx
// ends.
func (p *Postgres) StartRenewing(ctx context.Context, onError func(error)) {
	go func() {
		t := time.NewTicker(p.lease / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := p.RenewLeases(ctx, time.Now()); err != nil && ctx.Err() == nil && onError != nil {
					onError(err)
				}
			}
		}
	}()
}

// Listen: LISTEN on a connection of its own, reconnecting with backoff.
// report hears when listening stops working (once, with why: a pgbouncer
// in transaction mode, say, never lets it work) and when it works again
// (nil); polling goes on meanwhile, so changes come within a poll.
func (p *Postgres) Listen(ctx context.Context, wake map[string]func(), report func(error)) error {
	backoff := time.Second
	down := false
	for ctx.Err() == nil {
		err := p.listenOnce(ctx, wake, func() {
			backoff = time.Second
			if down {
				down = false
				report(nil)
			}
		})
		if ctx.Err() != nil {
			return nil
		}
		if !down {
			down = true
			report(err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
	return nil
}

func (p *Postgres) listenOnce(ctx context.Context, wake map[string]func(), connected func()) error {
	conn, err := pgx.ConnectConfig(ctx, p.pool.Config().ConnConfig.Copy())
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for topic := range wake {
		if _, err := conn.Exec(ctx, `LISTEN `+pgx.Identifier{topic}.Sanitize()); err != nil {
			return err
		}
	}
	connected()
	// Whatever was said while no one listened.
	for _, w := range wake {
		w()
	}
	for {
		// A connection that died quietly (a network cut) would wait
		// forever: ping it when nothing came for a minute. The wait is
		// not bounded by the store's timeout (nothing was asked), the
		// ping is (see answerConn).
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		n, err := conn.WaitForNotification(wctx)
		idle := wctx.Err() != nil && ctx.Err() == nil
		cancel()
		switch {
		case idle && !conn.IsClosed():
			if err := conn.Ping(ctx); err != nil {
				return err
			}
			continue
		case err != nil:
			return err
		}
		if w := wake[n.Channel]; w != nil {
			w()
		}
	}
}

var dsnPassword = regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)

// pgURL is raw without its password, in URL or in key=value form.
func pgURL(raw string) (string, error) {
	if !strings.Contains(raw, "://") {
		return dsnPassword.ReplaceAllString(raw, "${1}xxxxx"), nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.String(), nil
}
