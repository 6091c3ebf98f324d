package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// A database that does not answer within the store's timeout counts as
// down (issue 14). No store call has a deadline of its own: the SMTP
// session's context has none, and the gateway makes some calls with
// context.WithoutCancel on purpose (a record must be written even when
// the client left). A database that refuses connections fails them at
// once; but when its host freezes, or the network drops packets, the
// pool's connections stay open and every call (and every SMTP session
// with it) would wait for the kernel's TCP timeout, a quarter of an
// hour, instead of answering Postfix 451. A context cannot help, and
// neither can TCP keepalive against a peer whose kernel still answers:
// so every connection's bytes go through an answerConn, which holds the
// database to one rule whatever the context says.

// DefaultTimeout is how long the database may keep silent when asked
// (PostgresOptions.Timeout, store.timeout).
const DefaultTimeout = 20 * time.Second

// ErrNoAnswer is the error of a call the database did not answer in time.
var ErrNoAnswer = errors.New("the database did not answer")

// noAnswer is what a connection whose database went silent returns from
// then on. It is a timeout (a net.Error, as the deadline error it
// replaces): pgx then reads once more, meets it again, and reports it as
// it closes the connection. After any other error some of pgx's paths
// close the connection first and report only "conn closed".
type noAnswer struct{ limit time.Duration }

func (e noAnswer) Error() string {
	return fmt.Sprintf("%v within %s (store.timeout): counted as down", ErrNoAnswer, e.limit)
}
func (noAnswer) Unwrap() error   { return ErrNoAnswer }
func (noAnswer) Timeout() bool   { return true }
func (noAnswer) Temporary() bool { return false }

// writeChunk: a big write (a held message's chunk) goes in pieces, each
// with its deadline, so that a slow link that still moves is not cut.
const writeChunk = 64 << 10

// answerConn is a connection to the database held to this rule: asked,
// the database must say something within limit of the question or of
// its last word; else the connection fails, pgx drops it, and onSilent
// empties the pool (its other connections lead to the same database),
// so the next call connects afresh. It sits above TLS (pgx's
// AfterNetConnect; the connect timeout bounds the handshake before it),
// so it reads the protocol's message frames: a
// request that wants an answer (the startup, Query, Sync, FunctionCall)
// is owed one ReadyForQuery. Only while one is owed is a read bounded:
// a connection idle in the pool, pgx's background reader left waiting
// after the answer came, or the LISTEN connection waiting for
// notifications (it pings after a quiet minute, and that ping is
// bounded) are not "asked". Writes are bounded always: a database that
// takes none of our bytes for limit is down too. Deadlines pgx sets
// itself (a canceled context, closing) take precedence while set.
type answerConn struct {
	net.Conn
	limit    time.Duration
	onSilent func()

	mu       sync.Mutex
	owed     int       // ReadyForQuery still to come
	reading  bool      // a Read is waiting
	writing  bool      // a Write is under way
	quiet    bool      // reads unbounded (long statements: see Postgres.inLongTx)
	ours     bool      // the read deadline in force is ours
	ourRead  time.Time // ours, when it is
	ourWrite time.Time // the write deadline ours was last armed to
	pgxRead  time.Time
	pgxWrite time.Time
	sent     framer
	got      framer
	dead     error
}

func newAnswerConn(c net.Conn, limit time.Duration, onSilent func()) *answerConn {
	return &answerConn{Conn: c, limit: limit, onSilent: onSilent, sent: framer{untyped: true}}
}

// armRead sets the read deadline: pgx's, else limit from now while an
// answer is owed, else none. Called with mu held.
func (c *answerConn) armRead(now time.Time) {
	switch {
	case !c.pgxRead.IsZero():
		c.ours = false
		c.Conn.SetReadDeadline(c.pgxRead)
	case c.owed > 0 && !c.quiet:
		c.ours, c.ourRead = true, now.Add(c.limit)
		c.Conn.SetReadDeadline(c.ourRead)
	default:
		c.ours = false
		c.Conn.SetReadDeadline(time.Time{})
	}
}

// armWrite sets the write deadline: pgx's, else limit from now while a
// Write is under way. Called with mu held.
func (c *answerConn) armWrite() {
	switch {
	case !c.pgxWrite.IsZero():
		c.Conn.SetWriteDeadline(c.pgxWrite)
	case c.writing:
		c.ourWrite = time.Now().Add(c.limit)
		c.Conn.SetWriteDeadline(c.ourWrite)
	default:
		c.Conn.SetWriteDeadline(time.Time{})
	}
}

func (c *answerConn) Read(b []byte) (int, error) {
	c.mu.Lock()
	if c.dead != nil {
		c.mu.Unlock()
		return 0, c.dead
	}
	c.reading = true
	c.armRead(time.Now())
	c.mu.Unlock()

	n, err := c.Conn.Read(b)

	c.mu.Lock()
	defer c.mu.Unlock()
	c.reading = false
	c.got.feed(b[:n], func(typ byte) {
		if typ == 'Z' && c.owed > 0 {
			c.owed--
		}
	})
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) && c.ours && c.pgxRead.IsZero() && !time.Now().Before(c.ourRead) {
		// Ours ran out. (A deadline pgx set to cancel, and cleared
		// before this read took the lock, re-armed ours: then it is not
		// silence, and the error is pgx's to handle.)
		return n, c.silent()
	}
	return n, err
}

func (c *answerConn) Write(b []byte) (int, error) {
	done := 0
	for {
		chunk := b[done:min(len(b), done+writeChunk)]
		c.mu.Lock()
		if c.dead != nil {
			c.mu.Unlock()
			return done, c.dead
		}
		pgx := c.pgxWrite
		c.writing = true
		c.armWrite()
		c.mu.Unlock()

		n, err := c.Conn.Write(chunk)

		c.mu.Lock()
		c.writing = false
		c.sent.feed(chunk[:n], func(typ byte) {
			switch typ {
			case 0, 'Q', 'S', 'F': // startup, Query, Sync, FunctionCall
				c.owed++
			}
		})
		// A question arms the read waiting for its answer (pgx's
		// background reader may be waiting already), and bytes still
		// going out keep it alive: the database answers once it has
		// them all (a COPY's rows, a big parameter).
		if c.reading && n > 0 {
			c.armRead(time.Now())
		}
		if err != nil && errors.Is(err, os.ErrDeadlineExceeded) && pgx.IsZero() && c.pgxWrite.IsZero() && !time.Now().Before(c.ourWrite) {
			err = c.silent()
		}
		c.mu.Unlock()
		done += n
		if err != nil || done >= len(b) {
			return done, err
		}
	}
}

// silent: the database did not answer in time. The connection is done
// for: closed, so a write on it fails too and the server's side goes.
// Called with mu held.
func (c *answerConn) silent() error {
	if c.dead == nil {
		c.dead = noAnswer{c.limit}
		// Not under mu: closing TLS may wait to send its close alert.
		go c.Conn.Close()
		if c.onSilent != nil {
			go c.onSilent()
		}
	}
	return c.dead
}

func (c *answerConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pgxRead, c.pgxWrite = t, t
	if !t.IsZero() {
		c.ours = false
		return c.Conn.SetDeadline(t)
	}
	c.armWrite()
	c.armRead(time.Now())
	return nil
}

func (c *answerConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pgxRead = t
	c.armRead(time.Now())
	return nil
}

func (c *answerConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pgxWrite = t
	c.armWrite()
	return nil
}

// setQuiet lifts the bound on reads (on) or puts it back.
func (c *answerConn) setQuiet(on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.quiet = on
	if c.reading {
		c.armRead(time.Now())
	}
}

// answerConnOf is the answerConn under a pooled connection.
func answerConnOf(c *pgxpool.Conn) *answerConn {
	ac, _ := c.Conn().PgConn().Conn().(*answerConn)
	return ac
}

// framer finds the messages in one direction of the PostgreSQL protocol:
// each is a type byte (none for the startup message, the first a client
// sends) and a length that counts itself, then the body.
type framer struct {
	untyped bool // the next message has no type byte
	head    [5]byte
	have    int // bytes of head so far
	body    int // bytes of the current body still to come
}

// feed takes the next bytes of the stream and calls msg with the type of
// each message whose header they complete (0: the startup message).
func (f *framer) feed(p []byte, msg func(typ byte)) {
	for len(p) > 0 {
		if f.body > 0 {
			k := min(f.body, len(p))
			f.body -= k
			p = p[k:]
			continue
		}
		n := 5
		if f.untyped {
			n = 4
		}
		k := copy(f.head[f.have:n], p)
		f.have += k
		p = p[k:]
		if f.have < n {
			return
		}
		typ, length := byte(0), f.head[:4]
		if !f.untyped {
			typ, length = f.head[0], f.head[1:5]
		}
		f.untyped, f.have = false, 0
		f.body = max(0, int(binary.BigEndian.Uint32(length))-4)
		msg(typ)
	}
}
