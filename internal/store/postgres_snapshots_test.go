package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/zipgate/zipgate/internal/pgtest"
)

func TestSnapshotLimitLeavesConnections(t *testing.T) {
	for pool, want := range map[int32]int{25: 17, 16: 8, 10: 5, 4: 2, 2: 1, 1: 1} {
		if got := snapshotLimit(pool); got != want {
			t.Errorf("a pool of %d: %d snapshots, want %d", pool, got, want)
		}
	}
}

// eventually polls cond until it holds; a bound, not a measure.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(20 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("still not so after 20 s: %s", what)
		}
	}
}

// The files of one download are read in one snapshot: forty files take
// one connection of a pool of ten, read one after another, to their ends
// even once removed; the snapshots of the node are capped below the
// pool, so the rest of the node still reaches the database when they are
// all taken; a full cap is ErrBusy after the wait, a caller that gives
// up while waiting leaves no trace; and once every reader is closed, no
// connection is held.
func TestPostgresBlobSnapshots(t *testing.T) {
	ctx := context.Background()
	url := pgtest.Shared(t).NewSchema(t) + "&pool_max_conns=10"
	a, b := node(t, url, "a"), node(t, url, "b")
	const n = 40
	ns := make([]int, n)
	for i := range ns {
		ns[i] = i
		must(t, "Put", a.Blobs(BlobLinks).Put(ctx, "l1", i, strings.NewReader(strings.Repeat(fmt.Sprintf("file %d;", i), 1000*i))))
	}
	if got := b.Snapshots().Limit; got != 5 {
		t.Fatalf("a pool of 10 gives %d snapshot slots, want 5", got)
	}

	rs, err := b.Blobs(BlobLinks).OpenAll(ctx, "l1", ns)
	must(t, "OpenAll", err)
	if got := b.PoolStat().AcquiredConns(); got != 1 {
		t.Errorf("%d files open take %d connections, want 1", n, got)
	}
	must(t, "Remove", a.Blobs(BlobLinks).Remove(ctx, "l1"))
	for i, r := range rs {
		got, err := io.ReadAll(r)
		if want := strings.Repeat(fmt.Sprintf("file %d;", i), 1000*i); err != nil || string(got) != want {
			t.Fatalf("file %d after Remove: %d bytes, %v; want %d", i, len(got), err, len(want))
		}
		if i < n-1 {
			must(t, "Close", r.Close())
		}
	}
	if s := b.Snapshots(); s.InUse != 1 {
		t.Errorf("with one reader left open: %+v", s)
	}
	must(t, "Close", rs[n-1].Close())
	if s, c := b.Snapshots(), b.PoolStat().AcquiredConns(); s.InUse != 0 || c != 0 {
		t.Errorf("all closed: %+v, %d connections acquired", s, c)
	}
	if _, err := b.Blobs(BlobLinks).OpenAll(ctx, "l1", []int{0}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("removed: %v, want fs.ErrNotExist", err)
	}

	// Every slot taken (a link's files and a held message share them).
	must(t, "Put", a.Blobs(BlobLinks).Put(ctx, "l2", 0, strings.NewReader("two")))
	must(t, "Put", a.Blobs(BlobHeld).Put(ctx, "h1", 0, strings.NewReader("held")))
	if _, err := b.Blobs(BlobLinks).OpenAll(ctx, "l2", []int{0, 1}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("one of two missing: %v", err)
	}
	var taken []io.ReadCloser
	for i := range 5 {
		kind, id := BlobLinks, "l2"
		if i == 0 {
			kind, id = BlobHeld, "h1"
		}
		r, err := b.Blobs(kind).Open(ctx, id, 0)
		must(t, "Open", err)
		taken = append(taken, r)
	}
	b.SetSnapshotWait(100 * time.Millisecond)
	if _, err := b.Blobs(BlobLinks).Open(ctx, "l2", 0); !errors.Is(err, ErrBusy) {
		t.Errorf("a sixth snapshot: %v, want ErrBusy", err)
	}
	// The node itself is not stuck.
	must(t, "Ping", b.Ping(ctx))
	must(t, "Put", b.Blobs(BlobLinks).Put(ctx, "l3", 0, strings.NewReader("three")))
	if has, err := b.Blobs(BlobLinks).Has(ctx, "l3", 0); !has || err != nil {
		t.Errorf("Has while the slots are taken: %v, %v", has, err)
	}

	// One that gives up while it waits.
	b.SetSnapshotWait(time.Hour)
	gone, cancel := context.WithCancel(ctx)
	res := make(chan error, 1)
	go func() {
		_, err := b.Blobs(BlobLinks).Open(gone, "l2", 0)
		res <- err
	}()
	eventually(t, "an open waits for a slot", func() bool { return b.Snapshots().Waiting == 1 })
	cancel()
	if err := <-res; !errors.Is(err, context.Canceled) {
		t.Errorf("an open whose caller left: %v", err)
	}
	if s := b.Snapshots(); s.Waiting != 0 || s.InUse != 5 {
		t.Errorf("after the caller left: %+v", s)
	}

	// One that waits gets the slot the first reader frees.
	go func() {
		r, err := b.Blobs(BlobLinks).Open(ctx, "l2", 0)
		if err == nil {
			var got []byte
			got, err = io.ReadAll(r)
			if string(got) != "two" {
				err = fmt.Errorf("read %q", got)
			}
			r.Close()
		}
		res <- err
	}()
	eventually(t, "an open waits for a slot", func() bool { return b.Snapshots().Waiting == 1 })
	must(t, "Close", taken[0].Close())
	must(t, "the waiting open", <-res)
	for _, r := range taken[1:] {
		must(t, "Close", r.Close())
	}
	if s, c := b.Snapshots(), b.PoolStat().AcquiredConns(); s.InUse != 0 || s.Waiting != 0 || c != 0 {
		t.Errorf("all closed: %+v, %d connections acquired", s, c)
	}
}
