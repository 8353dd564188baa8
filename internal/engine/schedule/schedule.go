// Package schedule runs a run's nodes in dependency order.
//
// A node starts the moment its last dependency has SUCCEEDED and a worker
// slot is free; there are no waves. One goroutine owns all of the run's state
// and makes every decision, so launch order is deterministic (declaration
// order among ready nodes), MaxWorkers is a plain counter, and every state
// change passes through one place where it is recorded before anything
// depends on it. Runners only run: each attempt executes on its own goroutine
// and reports back on a channel.
//
// The package knows nothing of Spark, gRPC or storage; those arrive as a
// Runner and a Recorder.
package schedule

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/breaker"
	"github.com/tauro-exec/tauro-exec/internal/engine/clock"
	"github.com/tauro-exec/tauro-exec/internal/engine/retry"
	"github.com/tauro-exec/tauro-exec/internal/engine/run"
)

// Task is one node to run.
type Task struct {
	Name string
	// Deps name the tasks that must succeed first.
	Deps  []string
	Retry retry.Policy
	// Timeout bounds each attempt; 0 means none.
	Timeout time.Duration
	// Done marks a node that already succeeded in an earlier execution of
	// the run (repair): it is not run, not recorded, and counts as
	// SUCCEEDED from the start, whatever its own dependencies do.
	Done bool
	// PriorAttempts is how many attempts earlier executions of the run
	// made (repair): numbering continues after them, so no attempt record
	// is overwritten, while the retry policy counts this execution's only.
	PriorAttempts int
	// Ended marks a node that already ended without succeeding in this
	// execution before a restart of the process (FAILED, TIMED_OUT,
	// CANCELLED, SKIPPED): it is not run and not recorded again, and
	// counts with that state; pending nodes downstream of it are skipped.
	Ended run.NodeState
	// Resume marks a node whose attempt PriorAttempts+1 is under way
	// already, started by a process that was killed (its RUNNING is on
	// record): the walk takes it up first, without recording RUNNING
	// again, and counts it as started at Started.
	Resume  bool
	Started time.Time
}

// Attempt identifies one try at running a node.
type Attempt struct {
	Node    string
	Attempt int // from 1
}

// Runner runs one attempt of a node.
//
// Run must return soon after ctx is done: the scheduler cancels ctx when the
// attempt times out or the run stops, and it waits for every attempt to
// return before Run returns, so that no work outlives the run that started
// it. A runner that ignores ctx therefore holds the whole run open for as
// long as it keeps going. (Abandoning it instead would leave Spark work
// running with nobody to record how it ended.)
//
// The returned error decides what happens next (see retry.Classify); wrap
// user-code and analysis errors in retry.Permanent so they fail at once, and
// use retry.Failure to report a type and traceback. A panic is recovered into
// a permanent failure carrying the stack.
type Runner interface {
	Run(ctx context.Context, a Attempt) error
}

// RunnerFunc adapts a function to Runner.
type RunnerFunc func(ctx context.Context, a Attempt) error

// Run calls f.
func (f RunnerFunc) Run(ctx context.Context, a Attempt) error { return f(ctx, a) }

// Transition is one change of a node's state.
type Transition struct {
	Node  string
	State run.NodeState
	// Attempt is the attempt the transition concerns: the one starting or
	// ending, or the last one for a node cancelled while backing off; 0 for
	// a node that never ran.
	Attempt int
	// Err says why, on every transition but RUNNING and SUCCEEDED.
	Err *run.Error
	// RetryIn is the backoff before the next attempt (RETRYING only).
	RetryIn time.Duration
	// Duration is how long the attempt ran (on transitions that end one).
	Duration time.Duration
	At       time.Time
}

// Recorder keeps transitions, typically by storing them as run events.
//
// Record is called synchronously from the scheduler's loop, in order, and
// before anything that depends on the transition happens: a node's RUNNING is
// recorded before its runner is called, a node's SUCCEEDED before any
// dependent starts. PENDING is never recorded; the caller records the
// initial states. The ctx passed is not cancelled by the run's cancellation,
// so a cancelled run can still record how it ended.
//
// An error from Record stops the run as if it were cancelled; Record is not
// called again for that run, since a log with holes is worse than one that
// ends early, and Run returns the error.
type Recorder interface {
	Record(ctx context.Context, t Transition) error
}

// RecorderFunc adapts a function to Recorder.
type RecorderFunc func(ctx context.Context, t Transition) error

// Record calls f.
func (f RecorderFunc) Record(ctx context.Context, t Transition) error { return f(ctx, t) }

// Clock is the time source for timeouts, backoff and timestamps.
type Clock = clock.Clock

// Timer is a Clock's timer.
type Timer = clock.Timer

// Options tune a run.
type Options struct {
	// MaxWorkers bounds how many attempts run at once; below 1 means 1.
	MaxWorkers int
	// FailFast stops the run at the first node that ends FAILED, TIMED_OUT
	// or CANCELLED: nothing more starts and running attempts are cancelled.
	// Without it, only the failed node's downstream is skipped and
	// independent branches go on.
	FailFast bool
	// Breaker stops the run after a number of consecutive node failures.
	Breaker breaker.Policy
	// Clock defaults to the system clock.
	Clock Clock
	// Rand returns values in [0, 1) for retry jitter; nil uses math/rand/v2.
	Rand func() float64
}

// Result is how a run ended.
type Result struct {
	// States holds every task's final state: SUCCEEDED, FAILED, TIMED_OUT,
	// CANCELLED or SKIPPED.
	States map[string]run.NodeState
	// Attempts holds how many attempts each task made in this execution
	// (0 for Done tasks and for tasks that never started).
	Attempts map[string]int
	// Tripped reports that the circuit breaker stopped the run.
	Tripped bool
	// Cancelled reports that ctx was cancelled before the run ended.
	Cancelled bool
	// Reason says why the run stopped early; empty if every node got its
	// chance to run.
	Reason string
}

// State is the run state the result amounts to: CANCELLED if the run was
// cancelled, SUCCEEDED if every node succeeded, FAILED otherwise.
func (r Result) State() run.State {
	if r.Cancelled {
		return run.Cancelled
	}
	for _, s := range r.States {
		if s != run.NodeSucceeded {
			return run.Failed
		}
	}
	return run.Succeeded
}

// Run runs tasks, declared in order, and returns when every task has reached
// a final state and every attempt it started has returned.
//
// Run returns an error, before running anything, if the tasks do not form a
// DAG (an empty or repeated name, an unknown dependency, a cycle); and, with
// the result so far, if the Recorder fails. Node failures and cancellation
// are not errors of Run: they are in the Result.
func Run(ctx context.Context, tasks []Task, r Runner, rec Recorder, opt Options) (Result, error) {
	if r == nil {
		return Result{}, errors.New("schedule: nil Runner")
	}
	if rec == nil {
		rec = RecorderFunc(func(context.Context, Transition) error { return nil })
	}
	nodes, err := build(tasks)
	if err != nil {
		return Result{}, err
	}
	return newWalk(ctx, nodes, r, rec, opt).run()
}

// build turns tasks into linked nodes, rejecting anything that is not a DAG,
// since a cycle would leave the walk waiting forever.
func build(tasks []Task) ([]*node, error) {
	nodes := make([]*node, len(tasks))
	byName := make(map[string]*node, len(tasks))
	for i := range tasks {
		t := &tasks[i]
		if t.Name == "" {
			return nil, fmt.Errorf("schedule: task %d has no name", i)
		}
		if _, dup := byName[t.Name]; dup {
			return nil, fmt.Errorf("schedule: task %q is declared twice", t.Name)
		}
		n := &node{Task: t, index: i, state: run.NodePending, dueIndex: -1, attempt: t.PriorAttempts}
		nodes[i], byName[t.Name] = n, n
	}
	for _, n := range nodes {
		for _, dep := range n.Deps {
			d, ok := byName[dep]
			if !ok {
				return nil, fmt.Errorf("schedule: task %q depends on unknown task %q", n.Name, dep)
			}
			d.dependents = append(d.dependents, n)
			n.waiting++
		}
	}
	if cyclic := inCycles(nodes); len(cyclic) > 0 {
		return nil, fmt.Errorf("schedule: dependency cycle among tasks %s", strings.Join(cyclic, ", "))
	}
	return nodes, nil
}

// inCycles returns the names of the nodes that never become ready when nodes
// are released in dependency order: those on a cycle or behind one.
func inCycles(nodes []*node) []string {
	waiting := make([]int, len(nodes))
	var ready []*node
	for i, n := range nodes {
		waiting[i] = n.waiting
		if n.waiting == 0 {
			ready = append(ready, n)
		}
	}
	for len(ready) > 0 {
		n := ready[len(ready)-1]
		ready = ready[:len(ready)-1]
		for _, d := range n.dependents {
			if waiting[d.index]--; waiting[d.index] == 0 {
				ready = append(ready, d)
			}
		}
	}
	var names []string
	for i, n := range nodes {
		if waiting[i] > 0 {
			names = append(names, n.Name)
		}
	}
	return slices.Clip(names)
}
