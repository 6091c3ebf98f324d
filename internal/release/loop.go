package release

import (
	"context"
	"log/slog"
	"time"
)

// Loop runs once until ctx ends: again when woken, when once says more
// is due, and at least every poll (so that changes another process made
// in the store are seen). A failing pass waits a whole poll, so a
// failing store or next hop is not tried in a tight loop. The release
// and the hold schedulers both run this way.
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

// Backoff is the wait after a failed try: 30 s, doubling per failed try,
// at most 30 minutes.
func Backoff(attempts int) time.Duration {
	d := 30 * time.Second
	for i := 0; i < attempts && d < 30*time.Minute; i++ {
		d *= 2
	}
	return min(d, 30*time.Minute)
}
