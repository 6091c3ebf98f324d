package store

import (
	"runtime"
	"sync"
	"testing"
)

// The record of what the next hop accepted goes before writes that
// queued earlier; each kind keeps its order.
func TestGateLetsUrgentWritesFirst(t *testing.T) {
	var g gate
	g.lock(false)
	var mu sync.Mutex
	var order []string
	var wg sync.WaitGroup
	queued := func(n int) bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		return len(g.urgent)+len(g.normal) == n
	}
	for i, w := range []struct {
		name   string
		urgent bool
	}{{"n1", false}, {"n2", false}, {"u1", true}, {"u2", true}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g.lock(w.urgent)
			mu.Lock()
			order = append(order, w.name)
			mu.Unlock()
			g.unlock()
		}()
		for !queued(i + 1) { // each waiter queues before the next starts
			runtime.Gosched()
		}
	}
	g.unlock()
	wg.Wait()
	if got := order; len(got) != 4 || got[0] != "u1" || got[1] != "u2" || got[2] != "n1" || got[3] != "n2" {
		t.Fatalf("order %v, want [u1 u2 n1 n2]", got)
	}
	if g.busy {
		t.Fatal("the gate stayed closed")
	}
}
