// Package observe is how metrics and traces follow the engine without the
// engine knowing about either. The engine calls an Observer at the steps of
// a run it already records (queued, started, each node attempt, ended), and
// a backend notes the Spark operations an attempt sends through the
// attempt's context. internal/telemetry implements the Observer with
// Prometheus and OpenTelemetry; the engine and the backends import only
// this package.
package observe

import (
	"context"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/run"
)

// Run names one execution of a run: a first execution, a repair, or a run
// a previous execd left queued.
type Run struct {
	ID       string
	Project  string
	Pipeline string
	Env      string
	// Repair is set for an execution that repairs an ended run.
	Repair bool
	// Recovered is set for a run a previous execd left queued, or left
	// running and this one took up: nothing of the request that queued it
	// (its trace context) survived the restart.
	Recovered bool
}

// End is how an execution ended.
type End struct {
	// State is terminal, or QUEUED for a run this execd leaves queued as
	// it stops (the next execd queues it again, as a Recovered run).
	State   run.State
	Message string
	// Tripped reports that the run's circuit breaker stopped it.
	Tripped bool
}

// Attempt names one attempt of a node within an execution.
type Attempt struct {
	Run     Run
	Node    string
	Kind    string // the plan's node kind: sql, python or passthrough
	Attempt int    // from 1; numbering goes on across repairs
}

// AttemptEnd is how an attempt ended, as the scheduler recorded it.
type AttemptEnd struct {
	// State is SUCCEEDED, RETRYING (it failed and another attempt
	// follows), FAILED, TIMED_OUT or CANCELLED.
	State    run.NodeState
	Duration time.Duration
	Error    *run.Error // nil when it succeeded
}

// Observer is told what the engine does. Calls are synchronous, some under
// the engine's lock: an Observer returns quickly and never calls the
// engine back. Every execution that RunQueued saw gets one RunEnded, and
// every attempt that AttemptStarted saw gets one AttemptEnded, with a
// context that descends from the one the start returned.
type Observer interface {
	// RunQueued is called when an execution is recorded QUEUED; ctx is the
	// request's (the caller's trace context). The context returned is the
	// one the execution runs under: the engine keeps its values, drops its
	// cancellation, and passes it (or a descendant) to every later call
	// about the execution and to the backend. It should carry nothing of
	// the request but what the execution needs.
	RunQueued(ctx context.Context, r Run) context.Context
	// RunStarted is called when the execution is admitted and RUNNING.
	RunStarted(ctx context.Context, r Run)
	// RunEnded is called once the execution's end is recorded.
	RunEnded(ctx context.Context, r Run, end End)
	// AttemptStarted is called as a node attempt begins; the context
	// returned, which must descend from ctx (the attempt's: it is cancelled
	// when the attempt times out or the run stops), is the one the backend
	// runs the attempt with.
	AttemptStarted(ctx context.Context, a Attempt) context.Context
	// AttemptEnded is called once the attempt's end is recorded.
	AttemptEnded(ctx context.Context, a Attempt, end AttemptEnd)
}

// Nop observes nothing.
type Nop struct{}

func (Nop) RunQueued(context.Context, Run) context.Context                { return context.Background() }
func (Nop) RunStarted(context.Context, Run)                               {}
func (Nop) RunEnded(context.Context, Run, End)                            {}
func (Nop) AttemptStarted(ctx context.Context, _ Attempt) context.Context { return ctx }
func (Nop) AttemptEnded(context.Context, Attempt, AttemptEnd)             {}

var _ Observer = Nop{}

type sparkOpsKey struct{}

// WithSparkOperations returns ctx carrying note, which SparkOperation calls
// with the id of each Spark Connect operation sent under ctx. note may be
// called from several goroutines at once.
func WithSparkOperations(ctx context.Context, note func(id string)) context.Context {
	return context.WithValue(ctx, sparkOpsKey{}, note)
}

// SparkOperation tells whoever asked through WithSparkOperations that an
// operation with this id was sent under ctx. A backend calls it as it sends
// each ExecutePlan; without a listener it does nothing.
func SparkOperation(ctx context.Context, id string) {
	if id == "" {
		return
	}
	if note, ok := ctx.Value(sparkOpsKey{}).(func(string)); ok {
		note(id)
	}
}
