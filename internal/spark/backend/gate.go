package backend

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/plan"
)

// A batch run reads its sources one at a time (unless its settings say
// parallel_source_reads: true). Reading a CSV or JSON source without a
// schema has Spark scan it to infer one, on the cores the run's writes
// use: two at once split them, and the source on the critical path is
// read no sooner than the others. One at a time, the critical path's
// first, is how a hand-written job reads them before its nodes start.
// Nodes still start when they are ready; only the reads wait.

// readGate lets one read through at a time; of those waiting, the one of
// the lowest rank goes next. The critical path's first node starts with
// the others ready at the run's start, and whichever reaches the gate
// first would take it: so until a read of one of that node's sources
// begins (or holdGrace passes, should it be slow to come: no worker slot,
// say), reads of other sources wait.
type readGate struct {
	mu      sync.Mutex
	busy    bool
	waiting []*gateWaiter // by rank, then arrival

	headKeys map[string]bool // the critical path's first node's sources
	held     chan struct{}   // closed once reads of other sources may go
	openOnce sync.Once
}

// holdGrace bounds how long reads of other sources wait for the critical
// path's first one to begin.
const holdGrace = 250 * time.Millisecond

// newReadGate is the gate of a run whose critical path starts with a node
// reading the sources headKeys (none: no read waits for another).
func newReadGate(headKeys map[string]bool) *readGate {
	g := &readGate{headKeys: headKeys, held: make(chan struct{})}
	if len(headKeys) == 0 {
		g.open()
	} else {
		time.AfterFunc(holdGrace, g.open) // a no-op once a head read opened it
	}
	return g
}

// open lets reads of every source through (one at a time).
func (g *readGate) open() {
	g.openOnce.Do(func() { close(g.held) })
}

// read waits for the gate to read source key, then reads it.
func (g *readGate) read(ctx context.Context, key string, rank int, read func() error) error {
	head := g.headKeys[key]
	if !head {
		select {
		case <-g.held:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	release, err := g.acquire(ctx, rank)
	if head {
		g.open() // the others queue behind it
	}
	if err != nil {
		return err
	}
	defer release()
	return read()
}

type gateWaiter struct {
	rank  int
	ready chan struct{}
}

// acquire waits for the gate or for ctx to end. The gate is the caller's
// until it calls the release returned.
func (g *readGate) acquire(ctx context.Context, rank int) (release func(), err error) {
	g.mu.Lock()
	if !g.busy {
		g.busy = true
		g.mu.Unlock()
		return g.release, nil
	}
	w := &gateWaiter{rank: rank, ready: make(chan struct{})}
	i, _ := slices.BinarySearchFunc(g.waiting, rank, func(x *gateWaiter, r int) int {
		if x.rank <= r {
			return -1 // after those of its rank that came first
		}
		return 1
	})
	g.waiting = slices.Insert(g.waiting, i, w)
	g.mu.Unlock()
	select {
	case <-w.ready:
		return g.release, nil
	case <-ctx.Done():
		g.mu.Lock()
		if i := slices.Index(g.waiting, w); i >= 0 {
			g.waiting = slices.Delete(g.waiting, i, i+1)
			g.mu.Unlock()
			return nil, ctx.Err()
		}
		g.mu.Unlock()
		g.release() // handed over as ctx ended: pass it on
		return nil, ctx.Err()
	}
}

// release hands the gate to the next waiter, or frees it.
func (g *readGate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.waiting) == 0 {
		g.busy = false
		return
	}
	w := g.waiting[0]
	g.waiting = g.waiting[1:]
	close(w.ready)
}

// readRanks orders p's nodes for the gate: the critical path's in its
// order, then the others as declared.
func readRanks(p *plan.Pipeline) map[string]int {
	rank := make(map[string]int, len(p.Nodes))
	for _, name := range p.Plan.CriticalPath {
		if _, ok := rank[name]; !ok {
			rank[name] = len(rank)
		}
	}
	for _, n := range p.Nodes {
		if _, ok := rank[n.Name]; !ok {
			rank[n.Name] = len(rank)
		}
	}
	return rank
}

// headSources are the sources the critical path's first node reads in a
// batch run.
func headSources(p *plan.Pipeline) map[string]bool {
	keys := map[string]bool{}
	if len(p.Plan.CriticalPath) == 0 {
		return keys
	}
	for _, n := range p.Nodes {
		if n.Name != p.Plan.CriticalPath[0] || n.Stream != nil {
			continue
		}
		for _, in := range n.InputSpecs {
			if in.Producer == "" {
				keys[in.Key], keys[in.Read.Key] = true, true // the share's key, the view's
			}
		}
	}
	return keys
}

// readSource runs read, node n's read of source key, through the run's
// gate when it has one.
func (r *runExec) readSource(ctx context.Context, n *plan.Node, key string, read func() error) error {
	if r.reads == nil {
		return read()
	}
	return r.reads.read(ctx, key, r.readRank[n.Name], read)
}
