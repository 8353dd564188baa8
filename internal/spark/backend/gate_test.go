package backend

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/plan"
)

// queued waits until n reads wait at g.
func queued(t *testing.T, g *readGate, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		g.mu.Lock()
		got := len(g.waiting)
		g.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d reads wait, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// Reads waiting at the gate go through one at a time, lowest rank first
// and, within a rank, in the order they came; one whose context ends
// leaves the queue without holding up the rest.
func TestReadGate_OneAtATimeByRankAndCancelledReadsLeave(t *testing.T) {
	g := &readGate{}
	ctx := context.Background()
	first, err := g.acquire(ctx, 9)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu      sync.Mutex
		order   []string
		holding int
		wg      sync.WaitGroup
	)
	read := func(name string, rank int) {
		defer wg.Done()
		release, err := g.acquire(ctx, rank)
		if err != nil {
			t.Error(err)
			return
		}
		mu.Lock()
		holding++
		if holding > 1 {
			t.Errorf("%s holds the gate with another read", name)
		}
		order = append(order, name)
		mu.Unlock()
		time.Sleep(2 * time.Millisecond)
		mu.Lock()
		holding--
		mu.Unlock()
		release()
	}
	cctx, cancel := context.WithCancel(ctx)
	gone := make(chan error, 1)
	for i, w := range []struct {
		name string
		rank int
	}{{"c", 5}, {"a", 1}, {"gone", 2}, {"b1", 3}, {"b2", 3}} {
		if w.name == "gone" {
			go func() {
				_, err := g.acquire(cctx, w.rank)
				gone <- err
			}()
		} else {
			wg.Add(1)
			go read(w.name, w.rank)
		}
		queued(t, g, i+1)
	}
	cancel()
	if err := <-gone; !errors.Is(err, context.Canceled) {
		t.Fatalf("a read whose context ended got %v, want context.Canceled", err)
	}
	queued(t, g, 4)
	first()
	wg.Wait()
	if want := []string{"a", "b1", "b2", "c"}; !slices.Equal(order, want) {
		t.Errorf("reads went through in the order %v, want %v", order, want)
	}
	release, err := g.acquire(ctx, 0)
	if err != nil {
		t.Fatalf("the gate is not free once every read is done: %v", err)
	}
	release()
}

// The critical path's nodes come first, in its order; the rest as declared.
func TestReadRanks_CriticalPathFirstThenDeclared(t *testing.T) {
	p := &plan.Pipeline{Nodes: []*plan.Node{{Name: "x"}, {Name: "load_customers"}, {Name: "load_orders"}, {Name: "enrich"}}}
	p.Plan.CriticalPath = []string{"load_orders", "enrich"}
	got := readRanks(p)
	want := map[string]int{"load_orders": 0, "enrich": 1, "x": 2, "load_customers": 3}
	for name, r := range want {
		if got[name] != r {
			t.Errorf("rank of %s is %d, want %d (all: %v)", name, got[name], r, got)
		}
	}
}

// Until a read of the critical path's first node's source begins, reads
// of other sources wait, however early they come; after it, they go one
// at a time. With no such read coming, they wait no longer than the hold's
// grace; a read whose context ends while held gives up.
func TestReadGate_OtherSourcesWaitForTheCriticalPathsFirstRead(t *testing.T) {
	g := newReadGate(map[string]bool{"raw_orders": true})
	ctx := context.Background()
	var mu sync.Mutex
	var order []string
	note := func(name string) func() error {
		return func() error {
			mu.Lock()
			order = append(order, name)
			mu.Unlock()
			return nil
		}
	}
	early := make(chan error, 1)
	go func() { early <- g.read(ctx, "raw_customers", 4, note("raw_customers")) }()
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := g.read(cctx, "raw_other", 5, note("raw_other")); !errors.Is(err, context.Canceled) {
		t.Fatalf("a held read whose context ended got %v, want context.Canceled", err)
	}
	if err := g.read(ctx, "raw_orders", 0, note("raw_orders")); err != nil {
		t.Fatal(err)
	}
	if err := <-early; err != nil {
		t.Fatal(err)
	}
	if want := []string{"raw_orders", "raw_customers"}; !slices.Equal(order, want) {
		t.Errorf("reads went in the order %v, want %v: the critical path's source first", order, want)
	}

	lone := newReadGate(map[string]bool{"never_read": true})
	done := make(chan error, 1)
	go func() { done <- lone.read(ctx, "raw_customers", 1, func() error { return nil }) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("with the critical path's source never read, another read still waits after 10 s")
	}
}

// The sources of the critical path's first node hold the others back; a
// run whose first node reads none holds nothing.
func TestHeadSources_TheCriticalPathsFirstNodesSources(t *testing.T) {
	p := &plan.Pipeline{Nodes: []*plan.Node{
		{Name: "load_customers", InputSpecs: []plan.Input{{Key: "raw_customers", Read: plan.InputSpec{Key: "raw_customers"}}}},
		{Name: "load_orders", InputSpecs: []plan.Input{{Key: "raw_orders", Read: plan.InputSpec{Key: "raw_orders"}}}},
		{Name: "enrich", InputSpecs: []plan.Input{{Key: "o", Producer: "load_orders"}, {Key: "c", Producer: "load_customers"}}},
	}}
	p.Plan.CriticalPath = []string{"load_orders", "enrich"}
	if got := headSources(p); len(got) != 1 || !got["raw_orders"] {
		t.Errorf("head sources %v, want raw_orders alone", got)
	}
	p.Plan.CriticalPath = []string{"enrich"}
	if got := headSources(p); len(got) != 0 {
		t.Errorf("head sources %v of a critical path starting with a node reading no source, want none", got)
	}
}
