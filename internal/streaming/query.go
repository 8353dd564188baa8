// Package streaming owns the life of a streaming node's query: it starts
// the query, follows its progress into the run's events, tells a query
// that ended from one that failed, and stops it the way the run asks: at
// once when the run is cancelled, once the micro-batch under way has
// committed when the run is stopped or execd shuts down.
//
// Each micro-batch is reported as the session's listener bus sends its
// progress event (bus.go), the session's queries sharing one stream; the
// query's recent progress is polled only while that stream is not open
// (a server without the bus, a stream that dropped and is being opened
// again) and to recover the batches missed meanwhile.
//
// A query belongs to its Spark Connect session and dies with it, so the
// session must outlive the query: the caller keeps it open until Run
// returns, and Run does not return while the query runs.
package streaming

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine"
	"github.com/tauro-exec/tauro-exec/internal/engine/retry"
	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	sparkbackend "github.com/tauro-exec/tauro-exec/internal/spark/backend"
	sparkconnect "github.com/tauro-exec/tauro-exec/internal/spark/connect"
)

// Queries is what Run needs of a Spark Connect session.
type Queries interface {
	StartStream(ctx context.Context, q sparkconnect.StreamStart) (sparkconnect.QueryID, error)
	QueryStatus(ctx context.Context, q sparkconnect.QueryID) (sparkconnect.QueryStatus, error)
	QueryProgress(ctx context.Context, q sparkconnect.QueryID) ([]string, error)
	QueryLastProgress(ctx context.Context, q sparkconnect.QueryID) (string, error)
	QueryException(ctx context.Context, q sparkconnect.QueryID) (*sparkconnect.QueryError, error)
	StopQuery(ctx context.Context, q sparkconnect.QueryID) error
	// Owner names the session the query runs in, for the STREAMING event.
	Owner() (sessionID, user string)
	// The session's listener bus, which reports each micro-batch as it
	// commits; a session whose server has none is polled.
	Listener
}

// Options say how Run follows a query.
type Options struct {
	// Stop, when closed, ends the query once the micro-batch under way has
	// committed, and Run returns nil.
	Stop <-chan struct{}
	// Emit records the node's events (state, progress, messages).
	Emit func(run.Event)
	// Poll is how often the query is asked whether it still runs and, while
	// the session's listener bus is not open (a server without one, a
	// stream that dropped), about its progress; 0 means 200 ms. A graceful
	// stop asks five times as often.
	Poll time.Duration
	// PollOnly follows the query's progress by polling even where the
	// listener bus is open: to compare the two (BenchmarkProgressLatency).
	PollOnly bool
	// Grace bounds how long a graceful stop waits for the micro-batch under
	// way to commit before it interrupts the batch; 0 means two minutes.
	Grace time.Duration
	// Timeout, when set, stops the query that long after it started, as
	// Stop does (the pipeline's stream_timeout).
	Timeout time.Duration
	// Lag says when the query is lagging; the zero value never is.
	Lag Lag
	Log *slog.Logger
}

// Run starts q and follows it until it ends: nil when a finite trigger
// (once, available_now) has processed everything or Stop asked it to end;
// a retryable failure when the query failed, so the node's retry policy
// restarts it from its checkpoint; ctx's error when the run was cancelled
// or execd shuts down, once the query is confirmed stopped.
func Run(ctx context.Context, s Queries, q sparkconnect.StreamStart, opt Options) error {
	opt = withDefaults(opt)
	id, err := s.StartStream(ctx, q)
	if err != nil {
		return err
	}
	f := &follower{s: s, id: id, opt: opt, lastBatch: -1, lastNew: time.Now()}
	opt.Log.Info("streaming query started", "query", q.QueryName, "id", id.ID, "run_id", id.RunID, "checkpoint", q.Checkpoint)
	// The event says where the query runs, so that an execd restarted after
	// this one was killed can take it up (Adopt) or end it
	// (engine.Abandoner).
	session, user := s.Owner()
	opt.Emit(run.Event{Kind: run.NodeStateChanged, NodeState: run.NodeStreaming,
		Query: &run.QueryRef{Session: session, User: user, ID: id.ID, RunID: id.RunID}})
	return f.follow(ctx)
}

// Adopt follows a query that another process started and can no longer
// follow (an execd that was killed; its STREAMING event is on record), as
// Run follows the query it starts, in the session that process opened.
// lastBatch is the newest micro-batch whose progress was reported already:
// later ones are reported, earlier ones not again. A query the session no
// longer has is an error; one that ended meanwhile ends the node as Run
// would (nil after a finite trigger, a retryable failure after an error).
func Adopt(ctx context.Context, s Queries, id sparkconnect.QueryID, lastBatch int64, opt Options) error {
	opt = withDefaults(opt)
	if _, err := s.QueryStatus(ctx, id); err != nil {
		if ctx.Err() != nil {
			return err
		}
		return fmt.Errorf("%w: streaming query %s: %w", ErrQueryGone, id.ID, err)
	}
	opt.Log.Info("streaming query taken up", "id", id.ID, "run_id", id.RunID, "last_batch", lastBatch)
	f := &follower{s: s, id: id, opt: opt, lastBatch: lastBatch, lastNew: time.Now(), resumed: true}
	return f.follow(ctx)
}

// ErrQueryGone is returned by Adopt for a query its session does not have;
// it is the Spark backend's, which tells such an attempt from one that
// failed.
var ErrQueryGone = sparkbackend.ErrQueryGone

func withDefaults(opt Options) Options {
	if opt.Poll <= 0 {
		opt.Poll = 200 * time.Millisecond
	}
	if opt.Grace <= 0 {
		opt.Grace = 2 * time.Minute
	}
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	if opt.Emit == nil {
		opt.Emit = func(run.Event) {}
	}
	return opt
}

// follow reports the query's progress until it ends or the run ends it:
// each micro-batch as the listener bus reports it, or as polling finds it
// while the bus is not open.
func (f *follower) follow(ctx context.Context) error {
	s, id, opt := f.s, f.id, f.opt
	var (
		in    *inbox
		notes <-chan struct{} // nil, never ready, when polling only
	)
	if !opt.PollOnly {
		var release func()
		in, release = listen(s, id)
		defer release()
		notes = in.ready
	}
	tick := time.NewTicker(opt.Poll)
	defer tick.Stop()
	var timeout <-chan time.Time
	if opt.Timeout > 0 {
		t := time.NewTimer(opt.Timeout)
		defer t.Stop()
		timeout = t.C
	}
	for {
		select {
		case <-timeout:
			opt.Emit(run.Event{Kind: run.NodeMessage, Level: "info", Message: fmt.Sprintf("stream_timeout of %s reached; stopping the query after its current micro-batch", opt.Timeout)})
			if err := f.stop(ctx, true); err != nil {
				return err
			}
			f.progress(ctx)
			return nil
		case <-ctx.Done():
			if errors.Is(context.Cause(ctx), engine.ErrLeaseLost) {
				return ctx.Err() // the query is the replica's that took the run
			}
			graceful := errors.Is(context.Cause(ctx), engine.ErrShutdown)
			if err := f.stop(context.WithoutCancel(ctx), graceful); err != nil {
				return err
			}
			return ctx.Err()
		case <-opt.Stop:
			if err := f.stop(ctx, true); err != nil {
				return err
			}
			f.progress(ctx) // the last batches' figures
			return nil
		case <-notes:
			if f.onNotes(ctx, in.take()) {
				f.progress(ctx)
				return f.ended(ctx)
			}
			continue
		case <-tick.C:
		}
		if f.live {
			if f.resumed {
				f.idle()
			}
			if time.Since(f.statusAt) < liveStatusEvery {
				continue
			}
		} else {
			f.progress(ctx)
		}
		f.statusAt = time.Now()
		st, err := s.QueryStatus(ctx, id)
		if err != nil {
			if ctx.Err() != nil {
				continue // the loop's next turn stops the query
			}
			return err
		}
		if !st.Active {
			f.progress(ctx)
			return f.ended(ctx)
		}
	}
}

// follower turns one query's progress into events.
type follower struct {
	s         Queries
	id        sparkconnect.QueryID
	opt       Options
	lastBatch int64
	lastNew   time.Time // when the newest batch was first seen
	resumed   bool
	lagging   bool
	live      bool      // the listener bus is open: progress comes from its events
	statusAt  time.Time // when the query's status was last asked
}

// liveStatusEvery is how often the query's status is asked while the
// listener stream is open: its end comes as an event then, and a call
// under way when an event arrives delays that event's report.
const liveStatusEvery = 5 * time.Second

// progress polls the query's recent progress and reports the micro-batches
// not reported yet. Spark keeps the last hundred reports, far more than run
// between two polls or while a dropped listener stream is opened again.
func (f *follower) progress(ctx context.Context) {
	reports, err := f.s.QueryProgress(ctx, f.id)
	if err != nil || len(reports) == 0 {
		return
	}
	if f.report(reports) == 0 {
		f.idle()
	}
}

// report emits the micro-batches of reports (Spark's JSON, oldest first)
// not reported yet, in order, each once, and returns how many; the first
// report tells where the query resumed. A trigger that found nothing new
// ran no batch: Spark reports it under the id of the batch still to come,
// so it is not emitted, and that batch's own report is not mistaken for
// one already seen.
func (f *follower) report(reports []string) int {
	var fresh []run.Progress
	for _, js := range reports {
		r, err := parseReport(js)
		if err != nil {
			f.opt.Log.Warn("unreadable streaming progress", "err", err)
			continue
		}
		if !f.resumed {
			f.resumed = true
			if from := r.startOffsets(); from != "" {
				f.opt.Emit(run.Event{Kind: run.NodeMessage, Level: "info", Message: "resumed from the checkpoint at " + from})
			}
		}
		if !r.ranBatch() || r.BatchID <= f.lastBatch {
			continue
		}
		f.lastBatch = r.BatchID
		fresh = append(fresh, r.progress())
	}
	if len(fresh) == 0 {
		return 0
	}
	f.lastNew = time.Now()
	for _, p := range fresh {
		f.opt.Emit(run.Event{Kind: run.NodeProgress, Progress: &p})
		if f.opt.Lag.slow(p.BatchDuration) {
			f.lag(&p.BatchID, fmt.Sprintf("batch %d took %s, over max_batch_duration %s", p.BatchID, p.BatchDuration, f.opt.Lag.MaxBatchDuration))
		} else if f.lagging {
			f.lagging = false
			f.opt.Emit(run.Event{Kind: run.NodeLag, Lag: &run.Lag{State: run.CaughtUp, BatchID: &p.BatchID,
				Reason: fmt.Sprintf("batch %d took %s", p.BatchID, p.BatchDuration)}})
		}
	}
	return len(fresh)
}

// idle reports the query LAGGING when no micro-batch came for MaxIdle.
func (f *follower) idle() {
	if idle := time.Since(f.lastNew); f.opt.Lag.idle(idle) {
		f.lag(nil, fmt.Sprintf("no micro-batch for %s", idle.Round(time.Second)))
	}
}

// lag reports the query LAGGING, once until it catches up; batch is the
// one that showed it, nil when none came.
func (f *follower) lag(batch *int64, why string) {
	if f.lagging {
		return
	}
	f.lagging = true
	f.opt.Emit(run.Event{Kind: run.NodeLag, Lag: &run.Lag{State: run.Lagging, Reason: why, BatchID: batch}})
}

// Lag is a streaming node's lag rules.
type Lag struct {
	// MaxBatchDuration: a longer micro-batch is lagging.
	MaxBatchDuration time.Duration
	// MaxIdle: this long without a new micro-batch is lagging.
	MaxIdle time.Duration
}

func (l Lag) slow(batch time.Duration) bool {
	return l.MaxBatchDuration > 0 && batch > l.MaxBatchDuration
}

func (l Lag) idle(since time.Duration) bool { return l.MaxIdle > 0 && since > l.MaxIdle }

// ended says how a query that is no longer active ended.
func (f *follower) ended(ctx context.Context) error {
	ex, err := f.s.QueryException(ctx, f.id)
	if err != nil {
		return err
	}
	if ex == nil {
		return nil
	}
	typ := ex.Class
	if typ == "" {
		typ = "StreamingQueryException"
	}
	return &retry.Failure{Err: run.Error{Type: typ, Message: ex.Message, Traceback: ex.Stack, Retryable: true},
		Cause: fmt.Errorf("streaming query %s failed: %s", f.id.ID, firstLine(ex.Message))}
}

// stop ends the query, once the micro-batch under way has committed when
// graceful, and confirms that Spark no longer runs it.
func (f *follower) stop(ctx context.Context, graceful bool) error {
	if graceful && !f.awaitCommit(ctx) {
		f.opt.Emit(run.Event{Kind: run.NodeMessage, Level: "warning", Message: fmt.Sprintf(
			"the micro-batch under way did not commit within %s of the stop: the query was stopped during it, and its next start runs that batch again from the checkpoint", f.opt.Grace)})
	}
	if err := f.s.StopQuery(ctx, f.id); err != nil {
		return fmt.Errorf("stopping streaming query %s: %w", f.id.ID, err)
	}
	st, err := f.s.QueryStatus(ctx, f.id)
	if err == nil && st.Active {
		return fmt.Errorf("streaming query %s is still active after it was stopped", f.id.ID)
	}
	f.opt.Log.Info("streaming query stopped", "id", f.id.ID, "graceful", graceful)
	return nil
}

// awaitCommit waits until the trigger under way when it is called has
// ended; false when that takes longer than Grace.
//
// Spark cannot stop a query between two micro-batches: stop interrupts
// whatever runs, and when batches run back to back a moment with no
// trigger active hardly ever comes. But Spark reports a batch only after
// writing its commit to the checkpoint, so once the newest report is not
// the one seen at the request, the batch under way then has committed,
// and stopping at once is safe: what it interrupts is at most the batch
// that followed, whose offsets the checkpoint holds without a commit, so
// the query's next start runs that batch again over the same offsets, and
// the Delta and file sinks, which record the batches they wrote, write its
// rows once. Stopping a query whose trigger is not active interrupts
// nothing.
func (f *follower) awaitCommit(ctx context.Context) bool {
	seen, err := f.s.QueryLastProgress(ctx, f.id)
	if err != nil {
		return true // the stop that follows says what is wrong
	}
	seen = triggerOf(seen)
	deadline := time.Now().Add(f.opt.Grace)
	for {
		st, err := f.s.QueryStatus(ctx, f.id)
		if err != nil || !st.Active || !st.TriggerActive {
			return true
		}
		last, err := f.s.QueryLastProgress(ctx, f.id)
		if err != nil || triggerOf(last) != seen {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(f.opt.Poll / 5)
	}
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
