package backend

import (
	"context"
	"math"
	"sync"

	"github.com/tauro-exec/tauro-exec/internal/engine/observe"

	"github.com/tauro-exec/tauro-exec/internal/engine/plan"
	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	sparkconnect "github.com/tauro-exec/tauro-exec/internal/spark/connect"
)

// streamExpectations reads a streaming node's expectations from each
// micro-batch's progress, where the query's observations report them, and
// reports them as the batch's NodeExpectations. The first batch that breaks
// a fail expectation or an error check stops the query (after that batch,
// which is written: a micro-batch commits whole), and the node fails.
type streamExpectations struct {
	ctx  context.Context // the attempt's, for the observer
	n    *plan.Node
	emit func(run.Event)
	// stop closes when the run stops or a batch broke an error.
	stop chan struct{}

	mu      sync.Mutex
	failure error
	stopped bool
}

// followExpectations wraps emit for n's query; the returned channel is
// the query's Stop (runStop, or a broken expectation), and done ends
// the goroutine that watches runStop.
func followExpectations(ctx context.Context, n *plan.Node, emit func(run.Event), runStop <-chan struct{}) (*streamExpectations, func()) {
	x := &streamExpectations{ctx: ctx, n: n, emit: emit, stop: make(chan struct{})}
	done := make(chan struct{})
	go func() {
		select {
		case <-runStop:
			x.halt()
		case <-done:
		}
	}()
	return x, func() { close(done) }
}

func (x *streamExpectations) halt() {
	x.mu.Lock()
	defer x.mu.Unlock()
	if !x.stopped {
		x.stopped = true
		close(x.stop)
	}
}

// Emit passes ev on, and after a batch's progress its expectations.
func (x *streamExpectations) Emit(ev run.Event) {
	x.emit(ev)
	p := ev.Progress
	if ev.Kind != run.NodeProgress || p == nil {
		return
	}
	after, ok := p.Observed[sparkconnect.StreamObservation]
	if !ok {
		return
	}
	seen := integers(after)
	results := expectationResults(x.n, seen, nil)
	batch := p.BatchID
	x.emit(run.Event{Kind: run.NodeExpectations, Expectations: &run.Expectations{BatchID: &batch, Results: results}})
	observe.ExpectationsCounted(x.ctx, results)
	if err := expectationFailure(x.n.Name, results); err != nil {
		x.mu.Lock()
		if x.failure == nil {
			x.failure = err
		}
		x.mu.Unlock()
		x.halt()
	}
}

// Failure is the failure of the first batch that broke an error, if any.
func (x *streamExpectations) Failure() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.failure
}

// integers reads an observed row's whole numbers. Spark Connect writes
// the row as {"schema": {"fields": [{"name": ...}...]}, "values": [...]};
// classic Spark as {"name": value}. JSON numbers are float64.
func integers(row map[string]any) map[string]int64 {
	out := map[string]int64{}
	put := func(k string, v any) {
		if f, ok := v.(float64); ok && f == math.Trunc(f) {
			out[k] = int64(f)
		}
	}
	schema, _ := row["schema"].(map[string]any)
	fields, _ := schema["fields"].([]any)
	values, _ := row["values"].([]any)
	if fields == nil || values == nil {
		for k, v := range row {
			put(k, v)
		}
		return out
	}
	for i, f := range fields {
		field, _ := f.(map[string]any)
		name, _ := field["name"].(string)
		if i < len(values) && name != "" {
			put(name, values[i])
		}
	}
	return out
}
