package store_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	"github.com/tauro-exec/tauro-exec/internal/engine/store"
)

// clock is a fake wall clock that moves one millisecond per reading, so
// every record gets a distinct, predictable time.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock {
	return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Millisecond)
	return c.t
}

// open opens a store in a fresh directory and closes it when the test ends.
func open(t testing.TB, opts ...store.Option) (*store.Store, string) {
	t.Helper()
	dir := t.TempDir()
	s, err := store.Open(context.Background(), dir, opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, dir
}

func newRun(id, pipeline string, nodes ...string) run.Run {
	r := run.Run{ID: id, Params: run.Params{Pipeline: pipeline, Env: "dev"}}
	for _, n := range nodes {
		r.Nodes = append(r.Nodes, run.Node{Name: n})
	}
	return r
}

func create(t testing.TB, s *store.Store, r run.Run) run.Run {
	t.Helper()
	stored, created, err := s.CreateRun(context.Background(), r)
	if err != nil || !created {
		t.Fatalf("CreateRun(%s) = created %v, %v", r.ID, created, err)
	}
	return stored
}

func appendOK(t testing.TB, s *store.Store, runID string, evs ...run.Event) []run.Event {
	t.Helper()
	out, err := s.Append(context.Background(), runID, evs...)
	if err != nil {
		t.Fatalf("Append(%s): %v", runID, err)
	}
	return out
}

func get(t testing.TB, s *store.Store, id string) run.Run {
	t.Helper()
	r, err := s.GetRun(context.Background(), id)
	if err != nil {
		t.Fatalf("GetRun(%s): %v", id, err)
	}
	return r
}

func runState(st run.State, msg string) run.Event {
	return run.Event{Kind: run.RunStateChanged, RunState: st, Message: msg}
}

func nodeState(node string, st run.NodeState, attempt int) run.Event {
	return run.Event{Kind: run.NodeStateChanged, Node: node, NodeState: st, Attempt: attempt}
}

func message(node, text string) run.Event {
	return run.Event{Kind: run.NodeMessage, Node: node, Message: text, Level: "info"}
}

func metric(node, name string, v float64) run.Event {
	return run.Event{Kind: run.NodeMetric, Node: node, MetricName: name, MetricValue: v}
}

// collect ranges over the watcher to its end.
func collect(w *store.Watcher) []run.Event {
	var evs []run.Event
	for ev := range w.Events() {
		evs = append(evs, ev)
	}
	return evs
}

// checkSequences fails unless evs are exactly the sequences from..to.
func checkSequences(t testing.TB, evs []run.Event, from, to int64) {
	t.Helper()
	if got, want := int64(len(evs)), to-from+1; got != want {
		t.Errorf("got %d events, want %d (sequences %d..%d)", got, want, from, to)
	}
	for i, ev := range evs {
		if want := from + int64(i); ev.Sequence != want {
			t.Fatalf("event %d has sequence %d, want %d", i, ev.Sequence, want)
		}
	}
}
