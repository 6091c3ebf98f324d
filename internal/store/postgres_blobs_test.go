package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/zipgate/zipgate/internal/pgtest"
)

// The files of a download are read a chunk at a time, each chunk with a
// statement of its own: forty files open on a pool of ten hold no
// connection between reads, however many are open and however slowly
// they are read; they may be read in any order, even at once; the rest
// of the node reaches the database meanwhile; a file removed while it is
// read ends its reader with fs.ErrNotExist (the links scheduler's grace
// is what keeps the files of a download in flight).
func TestPostgresBlobReadersHoldNoConnection(t *testing.T) {
	ctx := context.Background()
	url := pgtest.Shared(t).NewSchema(t) + "&pool_max_conns=10"
	a, b := node(t, url, "a"), node(t, url, "b")
	const n = 40
	ns := make([]int, n)
	content := func(i int) string { return strings.Repeat(fmt.Sprintf("file %d;", i), 3000*i) } // up to 1 MiB: 5 chunks
	for i := range ns {
		ns[i] = i
		must(t, "Put", a.Blobs(BlobLinks).Put(ctx, "l1", i, strings.NewReader(content(i))))
	}

	rs, err := b.Blobs(BlobLinks).OpenAll(ctx, "l1", ns)
	must(t, "OpenAll", err)
	// Every reader has begun (a chunk each in memory), none has ended.
	firsts := make([][]byte, n)
	for i := n - 1; i >= 0; i-- {
		firsts[i] = make([]byte, min(10, len(content(i))))
		if _, err := io.ReadFull(rs[i], firsts[i]); err != nil {
			t.Fatalf("file %d: %v", i, err)
		}
	}
	if got := b.PoolStat().AcquiredConns(); got != 0 {
		t.Errorf("%d files open and begun hold %d connections, want 0", n, got)
	}
	must(t, "Ping", b.Ping(ctx))
	must(t, "Put", b.Blobs(BlobHeld).Put(ctx, "h1", 0, strings.NewReader("held")))
	for i, r := range rs {
		rest, err := io.ReadAll(r)
		if got := string(firsts[i]) + string(rest); err != nil || got != content(i) {
			t.Fatalf("file %d: %d bytes, %v; want %d", i, len(got), err, len(content(i)))
		}
		must(t, "Close", r.Close())
	}
	if _, err := rs[0].Read(make([]byte, 1)); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("a read after Close: %v", err)
	}

	// Removed while read: the next chunk is not there.
	rs, err = b.Blobs(BlobLinks).OpenAll(ctx, "l1", []int{n - 1})
	must(t, "OpenAll", err)
	if _, err := io.ReadFull(rs[0], make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	must(t, "Remove", a.Blobs(BlobLinks).Remove(ctx, "l1"))
	if _, err := io.ReadAll(rs[0]); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a file removed while read: %v, want fs.ErrNotExist", err)
	}
	rs[0].Close()
	if _, err := b.Blobs(BlobLinks).OpenAll(ctx, "l1", []int{0}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("removed: %v, want fs.ErrNotExist", err)
	}
	must(t, "Put", a.Blobs(BlobLinks).Put(ctx, "l2", 0, strings.NewReader("two")))
	if _, err := b.Blobs(BlobLinks).OpenAll(ctx, "l2", []int{0, 1}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("one of two missing: %v", err)
	}
	if got := b.PoolStat().AcquiredConns(); got != 0 {
		t.Errorf("at the end %d connections are held", got)
	}
}

// Review 14b, F1: with pool_max_conns=1 a download that is being read
// leaves the one connection free between its chunks: the store call
// every download makes next (LinkDownload), and every SMTP session's,
// gets it.
func TestPoolOfOneServesAReaderAndTheNode(t *testing.T) {
	ctx := context.Background()
	url := pgtest.Shared(t).NewSchema(t) + "&pool_max_conns=1&pool_min_conns=1"
	s := node(t, url, "a")
	want := strings.Repeat("x", 600<<10) // three chunks
	must(t, "Put", s.Blobs(BlobLinks).Put(ctx, "l1", 0, strings.NewReader(want)))
	rs, err := s.Blobs(BlobLinks).OpenAll(ctx, "l1", []int{0})
	must(t, "OpenAll", err)
	defer rs[0].Close()
	first := make([]byte, 100)
	if _, err := io.ReadFull(rs[0], first); err != nil {
		t.Fatal(err)
	}
	// A bound for a regression only: without it a store call waits for
	// as long as the reader stays open.
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.Ping(cctx); err != nil {
		t.Fatalf("a store call while one file is being read on a pool of 1: %v", err)
	}
	rest, err := io.ReadAll(rs[0])
	if err != nil || string(first)+string(rest) != want {
		t.Fatalf("the file: %d bytes, %v", len(first)+len(rest), err)
	}
}

// Review 14b, F2: a download in flight (a slow client) holds no
// snapshot, so it does not keep VACUUM from removing the dead rows of
// the tables every node rewrites all the time (leases, job states).
func TestDownloadHoldsNoSnapshot(t *testing.T) {
	ctx := context.Background()
	url := pgtest.Shared(t).NewSchema(t)
	s := node(t, url, "a")
	must(t, "Put", s.Blobs(BlobLinks).Put(ctx, "l1", 0, strings.NewReader(strings.Repeat("x", 600<<10))))
	must(t, "table", execs(ctx, s, `CREATE TABLE churn (id int PRIMARY KEY, v int)`, `INSERT INTO churn VALUES (1, 0)`))

	rs, err := s.Blobs(BlobLinks).OpenAll(ctx, "l1", []int{0})
	must(t, "OpenAll", err)
	defer rs[0].Close()
	if _, err := rs[0].Read(make([]byte, 1)); err != nil { // the download began; the client is slow now
		t.Fatal(err)
	}
	must(t, "update", execs(ctx, s, `UPDATE churn SET v = v + 1`)) // a lease renewal, say
	if dead := vacuumUnremovable(t, ctx, url); dead != 0 {
		t.Errorf("with one download in flight, VACUUM left %d dead row(s) of an unrelated table", dead)
	}
}

func execs(ctx context.Context, s *Postgres, qs ...string) error {
	for _, q := range qs {
		if _, err := s.pool.Exec(ctx, q); err != nil {
			return err
		}
	}
	return nil
}

var notRemovable = regexp.MustCompile(`(\d+) are dead but not yet removable`)

// vacuumUnremovable vacuums churn on a connection of its own and returns
// how many dead rows it had to keep.
func vacuumUnremovable(t *testing.T, ctx context.Context, url string) int {
	t.Helper()
	cfg, err := pgx.ParseConfig(url)
	must(t, "config", err)
	var msgs []string
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) { msgs = append(msgs, n.Message) }
	c, err := pgx.ConnectConfig(ctx, cfg)
	must(t, "connect", err)
	defer c.Close(ctx)
	_, err = c.Exec(ctx, `VACUUM (VERBOSE) churn`)
	must(t, "VACUUM", err)
	for _, m := range msgs {
		if g := notRemovable.FindStringSubmatch(m); g != nil {
			n, _ := strconv.Atoi(g[1])
			return n
		}
	}
	t.Fatalf("no VACUUM VERBOSE line about dead rows in %q", msgs)
	return 0
}
