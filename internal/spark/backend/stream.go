package backend

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine"
	"github.com/tauro-exec/tauro-exec/internal/engine/plan"
	"github.com/tauro-exec/tauro-exec/internal/engine/pycall"
	"github.com/tauro-exec/tauro-exec/internal/engine/retry"
	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	sparkconnect "github.com/tauro-exec/tauro-exec/internal/spark/connect"
)

// Streams follows a streaming node's query in its run's session, from its
// start to its end, into the run's events: internal/streaming's Follower,
// which execd hands the backend (SetStreams), so that the backend does not
// depend on the package that follows what it starts.
type Streams interface {
	// Run starts q and follows it until it ends: nil when a finite trigger
	// has processed everything or opt.Stop asked it to end; a retryable
	// failure when the query failed; ctx's error once the query is stopped
	// after a cancel.
	Run(ctx context.Context, s *sparkconnect.Session, q sparkconnect.StreamStart, opt StreamOptions) error
	// Adopt follows a query a killed execd started, from the batch after
	// lastBatch; an error wrapping ErrQueryGone when the session has it no
	// more.
	Adopt(ctx context.Context, s *sparkconnect.Session, id sparkconnect.QueryID, lastBatch int64, opt StreamOptions) error
}

// StreamOptions say how a streaming node's query is followed.
type StreamOptions struct {
	// Stop, when closed, ends the query once the micro-batch under way has
	// committed.
	Stop <-chan struct{}
	// Emit records the node's events.
	Emit func(run.Event)
	// Timeout, when set, stops the query that long after it started.
	Timeout time.Duration
	// MaxBatchDuration and MaxIdle say when the query is lagging: a batch
	// longer than the first, or no batch for longer than the second (0:
	// never).
	MaxBatchDuration, MaxIdle time.Duration
	Log                       *slog.Logger
}

// ErrQueryGone is what Streams.Adopt wraps for a query its session no
// longer has.
var ErrQueryGone = errors.New("the streaming query is no longer in its session")

// SetStreams gives the backend what follows its streaming queries; without
// it, a streaming node fails saying so.
func (b *Backend) SetStreams(s Streams) { b.streams = s }

// runStream runs a streaming node: its streams and tables become views of
// the run's session, its transform (SQL, a Python function, or none) a view
// over them, and a query writes that view to the sink until the query ends
// or the run stops it. The session stays open while the query runs: a
// query dies with its session.
func (r *runExec) runStream(ctx context.Context, s *sparkconnect.Session, n *plan.Node, attempt int, emit func(run.Event)) error {
	if r.b.streams == nil {
		return &retry.Failure{Err: run.Error{Type: "UnsupportedNode",
			Message: fmt.Sprintf("streaming node %q cannot run: this execd's Spark backend has nothing to follow streaming queries with", n.Name)}}
	}
	if a, ok := r.takenUp(n.Name, attempt); ok && a.Query != nil {
		return r.adoptStream(ctx, s, n, a, emit)
	}
	if err := r.upstream(ctx, s, n); err != nil {
		return err
	}
	spec := n.Stream
	sources, err := r.clearStream(n, emit)
	if err != nil {
		return err
	}
	for _, src := range sources {
		if err := r.registerSource(ctx, s, src); err != nil {
			return err
		}
	}
	view, err := r.streamView(ctx, s, n, attempt, emit)
	if err != nil {
		return err
	}
	start := sparkconnect.StreamStart{
		View:        view,
		Format:      spec.Sink.Format,
		Path:        spec.Sink.Path,
		Table:       spec.Sink.Table,
		Options:     spec.Sink.Options,
		PartitionBy: spec.Sink.PartitionBy,
		Trigger:     spec.Trigger.Type,
		Interval:    spec.Trigger.Interval,
		OutputMode:  spec.OutputMode,
		QueryName:   spec.QueryName,
		Checkpoint:  spec.Checkpoint,
	}
	if len(n.Expectations)+len(n.Checks) > 0 {
		start.Observe = observeFor(n)
	}
	if n.Quarantine != nil {
		// The query's sink becomes the split: it writes the sink's path
		// and the quarantine, filtering each micro-batch itself.
		start.Format, start.Path, start.Options, start.PartitionBy = "", "", nil, nil
		start.Observe.Unfiltered = true
	}
	if start.ForeachBatch, err = r.batchFunction(ctx, n); err != nil {
		return err
	}
	if start.ForeachBatch != nil {
		start.Path, start.Table = "", "" // the function writes the sink itself
	}
	return r.followStream(ctx, n, r.streamOptions(n, emit, r.rc.Pipeline.StreamTimeout), func(opt StreamOptions) error {
		return r.b.streams.Run(ctx, s, start, opt)
	})
}

// followStream follows n's query with opt: when n has expectations, each
// batch's are reported and a batch that breaks an error stops the query
// and fails the node (see streamExpectations).
func (r *runExec) followStream(ctx context.Context, n *plan.Node, opt StreamOptions, follow func(StreamOptions) error) error {
	if len(n.Expectations)+len(n.Checks) == 0 {
		return follow(opt)
	}
	x, done := followExpectations(ctx, n, opt.Emit, opt.Stop)
	defer done()
	opt.Emit, opt.Stop = x.Emit, x.stop
	if err := follow(opt); err != nil {
		return err
	}
	return x.Failure()
}

// streamOptions say how a streaming node's query is followed.
func (r *runExec) streamOptions(n *plan.Node, emit func(run.Event), timeout time.Duration) StreamOptions {
	spec := n.Stream
	opt := StreamOptions{Stop: r.rc.Stop, Emit: emit, Timeout: timeout, MaxBatchDuration: spec.Health.MaxBatchDuration, Log: r.log.With("node", n.Name)}
	if spec.Health.MaxIdleTriggers > 0 && spec.Trigger.Type == plan.TriggerProcessingTime {
		opt.MaxIdle = time.Duration(spec.Health.MaxIdleTriggers) * spec.Trigger.Interval
	}
	return opt
}

// adoptStream follows the query a killed execd started for the attempt
// taken up; the stream_timeout counts from when the attempt started.
func (r *runExec) adoptStream(ctx context.Context, s *sparkconnect.Session, n *plan.Node, a run.LiveAttempt, emit func(run.Event)) error {
	timeout := r.rc.Pipeline.StreamTimeout
	if timeout > 0 {
		timeout = max(timeout-time.Since(a.Started), time.Millisecond)
	}
	// The query observes n's expectations as it was started to.
	err := r.followStream(ctx, n, r.streamOptions(n, emit, timeout), func(opt StreamOptions) error {
		return r.b.streams.Adopt(ctx, s, sparkconnect.QueryID{ID: a.Query.ID, RunID: a.Query.RunID}, a.LastBatch, opt)
	})
	if err != nil && ctx.Err() == nil && errors.Is(err, ErrQueryGone) {
		return fmt.Errorf("%w: %w", engine.ErrNotResumable, err)
	}
	return err
}

// registerSource makes one input of a streaming node a view of the session:
// a stream, or a table read as a batch input is.
func (r *runExec) registerSource(ctx context.Context, s *sparkconnect.Session, src plan.StreamSource) error {
	if src.Static {
		if src.Producer != "" {
			return nil // an upstream result, a view by now (upstream read it back if need be)
		}
		return r.registerInput(ctx, s, src.Read)
	}
	return s.RegisterStream(ctx, sparkconnect.StreamInput{
		Name:            src.Key,
		Format:          src.Format,
		Path:            src.Path,
		Options:         src.Options,
		Schema:          src.Schema,
		JSONSchema:      src.JSONSchema,
		WatermarkColumn: src.WatermarkColumn,
		WatermarkDelay:  src.WatermarkDelay,
	})
}

// streamView is the view a streaming node's query writes: its SQL over its
// sources, its one source unchanged, or what its Python function returned.
func (r *runExec) streamView(ctx context.Context, s *sparkconnect.Session, n *plan.Node, attempt int, emit func(run.Event)) (string, error) {
	switch n.Kind {
	case plan.KindSQL:
		name := n.Name + "__stream"
		return name, s.DefineView(ctx, name, n.SQL, r.params())
	case plan.KindPassthrough:
		return n.Stream.Sources[0].Key, nil
	case plan.KindPython:
		py := r.b.pythonFor(r.rc.Pipeline.Project)
		if py == nil {
			break
		}
		views, err := r.sharedSources(ctx, s, n)
		if err != nil {
			return "", err
		}
		nodeErr, err := py.Run(ctx, r.pythonCall(s, n, attempt, views), pythonEvents(emit))
		if err := pythonFailure(nodeErr, err); err != nil {
			return "", err
		}
		return s.AdoptResult(ctx, n.Name, r.aliasesOf(n.Name), false)
	}
	return "", &retry.Failure{Err: run.Error{Type: "UnsupportedNode",
		Message: fmt.Sprintf("streaming node %q is a %s node, which this execd cannot run", n.Name, n.Kind)}}
}

// batchFunction is the function a streaming node's sink calls with each
// micro-batch, pickled by the project's Python worker (see sinkFunction);
// nil for sinks Spark writes itself. A function the worker refuses fails
// the node for good: it would be refused again until the code changes.
func (r *runExec) batchFunction(ctx context.Context, n *plan.Node) (*sparkconnect.PythonFunction, error) {
	fn, what, ok := r.sinkFunction(n)
	if !ok {
		return nil, nil
	}
	py := r.b.pythonFor(r.rc.Pipeline.Project)
	if py == nil {
		return nil, &retry.Failure{Err: run.Error{Type: "UnsupportedNode",
			Message: fmt.Sprintf("streaming node %q writes with %s, a function run per micro-batch, which needs this project's Python workers, and this execd runs none for it", n.Name, what)}}
	}
	pickled, err := py.PickleBatchFunction(ctx, fn, r.rc.Pipeline.Settings.AllowedModulePrefixes)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		typ, refused := "InvalidFunction", errors.Is(err, pycall.ErrRefused)
		if !refused {
			typ = "PythonWorkerUnavailable"
		}
		return nil, &retry.Failure{Err: run.Error{Type: typ, Retryable: !refused,
			Message: fmt.Sprintf("node %q: %s: %v", n.Name, what, err)}, Cause: err}
	}
	return &sparkconnect.PythonFunction{Command: pickled.Command, PythonVer: pickled.PythonVer}, nil
}

// quarantineSplit is the foreachBatch sink of streaming node n with a
// quarantine. Spark Connect writes one query to one sink, and a second
// query over the same source would see other micro-batches than the
// first, so that their counts would not add up batch by batch; one query
// whose foreachBatch appends each batch's kept rows to the sink and the
// rest to the quarantine is counted, by its observation, exactly as
// written.
//
// The delta writes are idempotent per batch id within the run: a retried
// attempt replays the batch it failed in, and Delta skips what it wrote.
// The key names the run too, because a later run may start the
// checkpoint anew (full refresh, reset_checkpoint) and number its batches
// from 0 again, which Delta would skip as written.
func (r *runExec) quarantineSplit(n *plan.Node) *pycall.QuarantineSplit {
	sink, q, app := n.Stream.Sink, n.Quarantine, n.Stream.Checkpoint+"#"+r.rc.RunID
	return &pycall.QuarantineSplit{
		Keep:       plan.KeepCondition(n.Expectations),
		Sink:       pycall.BatchWrite{Format: sink.Format, Path: sink.Path, Options: sink.Options, PartitionBy: sink.PartitionBy, TxnAppID: app},
		Quarantine: pycall.BatchWrite{Format: q.Format, Path: q.Path, Options: q.Options, PartitionBy: q.PartitionBy, TxnAppID: app},
	}
}

// sinkFunction is the function n's sink calls per micro-batch and what it
// is, for messages: the worker's split for a node with a quarantine, the
// sink's batch_function, or execd's change data capture of a Delta sink
// with cdc; false when Spark writes the sink itself.
func (r *runExec) sinkFunction(n *plan.Node) (pycall.Function, string, bool) {
	fn := pycall.Function{Node: n.Name, BatchFunction: true}
	switch sink := n.Stream.Sink; {
	case n.Quarantine != nil:
		fn.Split = r.quarantineSplit(n)
		return fn, "the split of its sink and quarantine", true
	case sink.BatchFunction != nil:
		bf := sink.BatchFunction
		fn.Module, fn.Function = bf.Module, bf.Function
		return fn, fmt.Sprintf("%s (%s.%s)", bf.Field, bf.Module, bf.Function), true
	case sink.CDC != nil:
		fn.CDC = sink.CDC
		return fn, sink.CDC.Field, true
	}
	return pycall.Function{}, "", false
}

// Abandon implements engine.Abandoner: it stops a streaming query a killed
// execd left running, and releases the Spark Connect session it ran in.
func (b *Backend) Abandon(ctx context.Context, q run.QueryRef) error {
	return sparkconnect.StopAbandoned(ctx, b.remote(), q.Session, q.User, sparkconnect.QueryID{ID: q.ID, RunID: q.RunID})
}
