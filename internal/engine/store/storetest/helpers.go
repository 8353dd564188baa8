package storetest

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

// advance moves the clock on by d.
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Millisecond)
	return c.t
}

func NewRun(id, pipeline string, nodes ...string) run.Run {
	r := run.Run{ID: id, Params: run.Params{Pipeline: pipeline, Env: "dev"}}
	for _, n := range nodes {
		r.Nodes = append(r.Nodes, run.Node{Name: n})
	}
	return r
}

func Create(t testing.TB, s store.Store, r run.Run) run.Run {
	t.Helper()
	stored, created, err := s.CreateRun(context.Background(), r)
	if err != nil || !created {
		t.Fatalf("CreateRun(%s) = created %v, %v", r.ID, created, err)
	}
	return stored
}

func AppendOK(t testing.TB, s store.Store, runID string, evs ...run.Event) []run.Event {
	t.Helper()
	out, err := s.Append(context.Background(), runID, evs...)
	if err != nil {
		t.Fatalf("Append(%s): %v", runID, err)
	}
	return out
}

func Get(t testing.TB, s store.Store, id string) run.Run {
	t.Helper()
	r, err := s.GetRun(context.Background(), id)
	if err != nil {
		t.Fatalf("GetRun(%s): %v", id, err)
	}
	return r
}

func RunState(st run.State, msg string) run.Event {
	return run.Event{Kind: run.RunStateChanged, RunState: st, Message: msg}
}

func NodeState(node string, st run.NodeState, attempt int) run.Event {
	return run.Event{Kind: run.NodeStateChanged, Node: node, NodeState: st, Attempt: attempt}
}

func Message(node, text string) run.Event {
	return run.Event{Kind: run.NodeMessage, Node: node, Message: text, Level: "info"}
}

func Metric(node, name string, v float64) run.Event {
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
func CheckSequences(t testing.TB, evs []run.Event, from, to int64) {
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

// recoverAll interrupts every run a previous execd left PENDING or
// RUNNING, as an execd that cannot take runs up does at its start, and
// returns the ids of the runs it interrupted.
func recoverAll(s store.Store) ([]string, error) {
	ctx := context.Background()
	ids, err := s.Unfinished(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, id := range ids {
		ok, err := s.Interrupt(ctx, id)
		if err != nil {
			return out, err
		}
		if ok {
			out = append(out, id)
		}
	}
	return out, nil
}

// Claim claims the run for replica and returns its lease.
func Claim(t testing.TB, s store.Store, runID, replica string) store.Lease {
	t.Helper()
	l, err := s.Claim(context.Background(), runID, replica)
	if err != nil {
		t.Fatalf("Claim(%s, %s): %v", runID, replica, err)
	}
	return l
}
