package schedule

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/clock"
	"github.com/tauro-exec/tauro-exec/internal/engine/run"
)

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// guard bounds how long a test waits for something that must happen. It
// turns a scheduler that hangs into a failure; it never measures timing.
const guard = 10 * time.Second

// transitionLog is a Recorder that keeps every transition and lets a test
// wait for one.
type transitionLog struct {
	mu      sync.Mutex
	ts      []Transition
	changed chan struct{}
}

func newLog() *transitionLog { return &transitionLog{changed: make(chan struct{})} }

func (l *transitionLog) Record(_ context.Context, t Transition) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ts = append(l.ts, t)
	close(l.changed)
	l.changed = make(chan struct{})
	return nil
}

func (l *transitionLog) all() []Transition {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.ts)
}

// has reports whether a transition for node with state and attempt was recorded.
func (l *transitionLog) has(node string, state run.NodeState, attempt int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.ContainsFunc(l.ts, func(t Transition) bool {
		return t.Node == node && t.State == state && t.Attempt == attempt
	})
}

// waitFor returns the first recorded transition for node with state and
// attempt, waiting for it if need be.
func (l *transitionLog) waitFor(t *testing.T, node string, state run.NodeState, attempt int) Transition {
	t.Helper()
	deadline := time.After(guard)
	for {
		l.mu.Lock()
		i := slices.IndexFunc(l.ts, func(tr Transition) bool {
			return tr.Node == node && tr.State == state && tr.Attempt == attempt
		})
		changed := l.changed
		var found Transition
		if i >= 0 {
			found = l.ts[i]
		}
		l.mu.Unlock()
		if i >= 0 {
			return found
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("%s %s (attempt %d) was never recorded; got %v", node, state, attempt, l.all())
		}
	}
}

// of returns node's transitions, in order.
func (l *transitionLog) of(node string) []Transition {
	var out []Transition
	for _, t := range l.all() {
		if t.Node == node {
			out = append(out, t)
		}
	}
	return out
}

// script is a Runner whose behaviour is set per node; nodes not in it succeed.
type script map[string]func(ctx context.Context, a Attempt) error

func (s script) Run(ctx context.Context, a Attempt) error {
	if f := s[a.Node]; f != nil {
		return f(ctx, a)
	}
	return nil
}

// untilCancelled is a runner that honours ctx and nothing else.
func untilCancelled(ctx context.Context, _ Attempt) error {
	<-ctx.Done()
	return ctx.Err()
}

// callLog is a Runner wrapper that remembers which attempts ran, in order.
type callLog struct {
	mu    sync.Mutex
	calls []Attempt
	next  Runner
}

func (c *callLog) Run(ctx context.Context, a Attempt) error {
	c.mu.Lock()
	c.calls = append(c.calls, a)
	c.mu.Unlock()
	if c.next == nil {
		return nil
	}
	return c.next.Run(ctx, a)
}

func (c *callLog) nodes() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, a := range c.calls {
		out = append(out, a.Node)
	}
	return out
}

type outcomeOf struct {
	res Result
	err error
}

// start runs the scheduler on its own goroutine.
func start(ctx context.Context, tasks []Task, r Runner, rec Recorder, opt Options) <-chan outcomeOf {
	ch := make(chan outcomeOf, 1)
	go func() {
		res, err := Run(ctx, tasks, r, rec, opt)
		ch <- outcomeOf{res, err}
	}()
	return ch
}

// await waits for a run started with start to return.
func await(t *testing.T, ch <-chan outcomeOf) (Result, error) {
	t.Helper()
	select {
	case o := <-ch:
		return o.res, o.err
	case <-time.After(guard):
		t.Fatal("Run did not return")
		return Result{}, nil
	}
}

// awaitSignal waits for ch to deliver or close.
func awaitSignal[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(guard):
		t.Fatalf("%s never happened", what)
		var zero T
		return zero
	}
}

func blockUntilTimers(t *testing.T, fake *clock.Fake, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	if err := fake.BlockUntil(ctx, n); err != nil {
		t.Fatalf("no scheduler timer was armed: %v", err)
	}
}

func wantStates(t *testing.T, got Result, want map[string]run.NodeState) {
	t.Helper()
	for name, s := range want {
		if got.States[name] != s {
			t.Errorf("%s ended %s, want %s", name, got.States[name], s)
		}
	}
	if len(got.States) != len(want) {
		t.Errorf("States has %d entries, want %d: %v", len(got.States), len(want), got.States)
	}
}

// checkTransitions asserts that ts is a valid history of tasks: each node
// moves PENDING → RUNNING(1) → [RETRYING(n) → RUNNING(n+1)]... → final, or
// straight from PENDING to SKIPPED/CANCELLED; a node starts only once all its
// dependencies' SUCCEEDED is recorded; times never go back; Done tasks are
// never recorded; every other task reaches a final state.
func checkTransitions(t *testing.T, tasks []Task, ts []Transition) {
	t.Helper()
	byName := map[string]Task{}
	for _, task := range tasks {
		byName[task.Name] = task
	}
	state := map[string]run.NodeState{}
	attempt := map[string]int{}
	succeeded := func(dep string) bool { return byName[dep].Done || state[dep] == run.NodeSucceeded }
	var last time.Time
	for i, tr := range ts {
		task, ok := byName[tr.Node]
		switch {
		case !ok:
			t.Fatalf("transition %d: unknown node %q", i, tr.Node)
		case task.Done:
			t.Fatalf("transition %d: Done task %q was recorded: %+v", i, tr.Node, tr)
		case tr.At.Before(last):
			t.Fatalf("transition %d: time went back: %+v", i, tr)
		}
		last = tr.At
		prev := state[tr.Node]
		valid := false
		switch tr.State {
		case run.NodeRunning:
			valid = (prev == "" && tr.Attempt == 1) || (prev == run.NodeRetrying && tr.Attempt == attempt[tr.Node]+1)
			for _, d := range task.Deps {
				if !succeeded(d) {
					t.Fatalf("transition %d: %s started before its dependency %s succeeded", i, tr.Node, d)
				}
			}
		case run.NodeSucceeded, run.NodeRetrying, run.NodeFailed, run.NodeTimedOut:
			valid = prev == run.NodeRunning && tr.Attempt == attempt[tr.Node]
		case run.NodeCancelled:
			valid = prev == "" || ((prev == run.NodeRunning || prev == run.NodeRetrying) && tr.Attempt == attempt[tr.Node])
		case run.NodeSkipped:
			valid = prev == ""
		}
		if !valid {
			t.Fatalf("transition %d: %s → %s (attempt %d) is not a valid move from %q (attempt %d)",
				i, tr.Node, tr.State, tr.Attempt, prev, attempt[tr.Node])
		}
		if tr.State != run.NodeRunning && tr.State != run.NodeSucceeded && tr.Err == nil {
			t.Fatalf("transition %d: %s %s has no Err", i, tr.Node, tr.State)
		}
		state[tr.Node], attempt[tr.Node] = tr.State, tr.Attempt
	}
	for _, task := range tasks {
		if !task.Done && !state[task.Name].Terminal() {
			t.Errorf("%s never reached a final state (last %q)", task.Name, state[task.Name])
		}
	}
}
