package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/zipgate/zipgate/internal/pgtest"
)

// BenchmarkDelivered is the crash window of a copy: the time from the
// next hop's 250 to the commit of its record (Delivered), on each store;
// and then Sync, which the gateway calls once before Postfix hears 250.
func BenchmarkDelivered(b *testing.B) {
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			s, _ := be.newStore(b)
			if be.name == "postgres" {
				// Durable, as PostgreSQL ships: the shared test cluster
				// does not sync.
				s = openPG(b, pgtest.Start(b).URL("postgres"), testKey(1))
			}
			ctx := context.Background()
			ms := make([]*Message, b.N)
			for i := range b.N {
				id := fmt.Sprintf("m%d", i)
				j := job(id)
				j.Key = []byte("k" + id)
				ms[i] = message(id, "k"+id, "a@x.example")
				if err := s.SaveMessage(ctx, ms[i], j); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			var window, sync time.Duration
			for i := range b.N {
				t0 := time.Now()
				if err := s.Delivered(ctx, ms[i], ms[i].Rcpts, ms[i].ID, t0.Add(time.Hour), t0); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				if err := s.Sync(ctx); err != nil {
					b.Fatal(err)
				}
				window += t1.Sub(t0)
				sync += time.Since(t1)
			}
			b.ReportMetric(float64(window.Microseconds())/float64(b.N)/1000, "record_ms")
			b.ReportMetric(float64(sync.Microseconds())/float64(b.N)/1000, "sync_ms")
		})
	}
}
