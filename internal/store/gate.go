package store

import "sync"

// gate lets this process's writes in one at a time, the records of what
// the next hop just accepted first: the time from its 250 to the commit
// of that record is the window a crash can fall into, so those writes do
// not queue behind the scheduler's bookkeeping.
type gate struct {
	mu             sync.Mutex
	busy           bool
	urgent, normal []chan struct{}
}

func (g *gate) lock(urgent bool) {
	g.mu.Lock()
	if !g.busy {
		g.busy = true
		g.mu.Unlock()
		return
	}
	ch := make(chan struct{})
	if urgent {
		g.urgent = append(g.urgent, ch)
	} else {
		g.normal = append(g.normal, ch)
	}
	g.mu.Unlock()
	<-ch // the unlocking writer hands the gate over
}

func (g *gate) unlock() {
	g.mu.Lock()
	var next chan struct{}
	switch {
	case len(g.urgent) > 0:
		next, g.urgent = g.urgent[0], g.urgent[1:]
	case len(g.normal) > 0:
		next, g.normal = g.normal[0], g.normal[1:]
	default:
		g.busy = false
	}
	g.mu.Unlock()
	if next != nil {
		close(next)
	}
}
