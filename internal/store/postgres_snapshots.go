package store

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrBusy: every snapshot slot of this node stayed taken for the
// snapshot wait; try again later (a download page answers 503).
var ErrBusy = errors.New("store: every snapshot slot of this node is in use")

// snapshotReserve is how many connections of the pool blob snapshots
// never take: a download holds its connection while it streams, and
// mail intake, lease renewal and the schedulers must still reach the
// database meanwhile.
const snapshotReserve = 8

// defaultSnapshotWait is how long an open waits for a slot before
// ErrBusy: long enough to ride out a burst, short enough that a
// browser gets an answer instead of a hang.
const defaultSnapshotWait = 5 * time.Second

// snapshotSlots caps the blob snapshots (Blobs.OpenAll) this node keeps
// open at once, whatever their kind: each holds a connection of the
// pool until its last reader is closed.
type snapshotSlots struct {
	once    sync.Once
	free    chan struct{} // a token per slot in use
	wait    atomic.Int64  // time.Duration; 0: defaultSnapshotWait
	waiting atomic.Int32
}

// snapshotLimit is the cap for a pool of maxConns: all but
// snapshotReserve connections, or half of a pool too small for that,
// and one at least.
func snapshotLimit(maxConns int32) int {
	reserve := min(snapshotReserve, maxConns/2)
	return int(max(1, maxConns-reserve))
}

func (p *Postgres) snapshots() *snapshotSlots {
	s := &p.snaps
	s.once.Do(func() { s.free = make(chan struct{}, snapshotLimit(p.pool.Config().MaxConns)) })
	return s
}

// acquire takes a slot, waiting while ctx lasts, at most the snapshot
// wait (then ErrBusy).
func (s *snapshotSlots) acquire(ctx context.Context) error {
	select {
	case s.free <- struct{}{}:
		return nil
	default:
	}
	s.waiting.Add(1)
	defer s.waiting.Add(-1)
	wait := time.Duration(s.wait.Load())
	if wait <= 0 {
		wait = defaultSnapshotWait
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case s.free <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return ErrBusy
	}
}

func (s *snapshotSlots) release() { <-s.free }

// SetSnapshotWait sets how long an open waits for a snapshot slot
// before ErrBusy (0: 5 s).
func (p *Postgres) SetSnapshotWait(d time.Duration) { p.snapshots().wait.Store(int64(d)) }

// SnapshotStats says how the snapshot slots of this node are used.
type SnapshotStats struct {
	Limit   int // slots in all
	InUse   int // snapshots open
	Waiting int // opens waiting for a slot
}

// Snapshots returns how the snapshot slots are used now.
func (p *Postgres) Snapshots() SnapshotStats {
	s := p.snapshots()
	return SnapshotStats{Limit: cap(s.free), InUse: len(s.free), Waiting: int(s.waiting.Load())}
}

// PoolStat is the connection pool's own count (connections acquired,
// idle, waited for).
func (p *Postgres) PoolStat() *pgxpool.Stat { return p.pool.Stat() }
