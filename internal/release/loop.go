package release

import (
	"context"
	"log/slog"
	"time"
)

// Loop runs once until ctx ends: again when woken, when once says more
// is due, and at least every poll (so that changes another process made
// in the store are seen). A failing pass waits a whole poll, so a
// failing store or next hop is not tried in a tight loop. The release,
// hold and links schedulers all run this way.
func Loop(ctx context.Context, name string, once func(context.Context) (time.Time, error), wake <-chan struct{},
	poll time.Duration, now func() time.Time, log *slog.Logger) {
	for {
		next, err := once(ctx)
		if err != nil && ctx.Err() == nil {
			log.Error(name, "error", err.Error())
		}
		wait := poll
		if !next.IsZero() {
			wait = min(wait, max(next.Sub(now()), 0))
		}
		if err != nil {
			wait = poll
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// Waker wakes a Loop. It keeps one wake that comes while the loop
// works, so what was done meanwhile (a new job, a cancel) is not missed.
type Waker chan struct{}

// NewWaker returns a Waker for one Loop.
func NewWaker() Waker { return make(Waker, 1) }

// Wake makes the Loop look at the store now.
func (w Waker) Wake() {
	select {
	case w <- struct{}{}:
	default:
	}
}

// Each works through the list one pass of a scheduler got: an item that
// fails does not stop the others, and the first failure is returned.
// When ctx ends it stops; the rest waits for the next start.
func Each[T any](ctx context.Context, list []T, work func(T) error) error {
	var first error
	for _, v := range list {
		if ctx.Err() != nil {
			break
		}
		if err := work(v); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Backoff is the wait after a failed try: 30 s, doubling per failed try,
// at most 30 minutes.
func Backoff(attempts int) time.Duration {
	d := 30 * time.Second
	for i := 0; i < attempts && d < 30*time.Minute; i++ {
		d *= 2
	}
	return min(d, 30*time.Minute)
}
