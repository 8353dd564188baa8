package schedule

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/breaker"
	"github.com/tauro-exec/tauro-exec/internal/engine/clock"
	"github.com/tauro-exec/tauro-exec/internal/engine/retry"
	"github.com/tauro-exec/tauro-exec/internal/engine/run"
)

// node is a task's place in the walk. Only the walk's loop reads or writes
// it; attempt goroutines carry the pointer back untouched.
type node struct {
	*Task
	index      int // declaration order, which breaks ties between ready nodes
	state      run.NodeState
	waiting    int // dependencies that have not SUCCEEDED yet
	dependents []*node

	attempt int       // the current or last attempt, from 1
	started time.Time // when the current attempt started
	// ctx is the current attempt's. The walk cancels it with the reason
	// the attempt must end (timeout, stop), which outcome reads back.
	ctx    context.Context
	cancel context.CancelCauseFunc

	due      time.Time // see deadlines
	dueIndex int       // position in deadlines, -1 when none
}

// completion is an attempt's report to the loop.
type completion struct {
	node *node
	err  error
	end  time.Time
}

// walk is one run's state, owned by the goroutine that calls run.
type walk struct {
	ctx        context.Context // the run's: its cancellation is CancelRun
	recordCtx  context.Context // ctx without its cancellation, to record how a cancelled run ended
	runner     Runner
	recorder   Recorder
	clock      Clock
	rand       func() float64
	maxWorkers int
	failFast   bool
	breaker    *breaker.Breaker

	nodes     []*node
	ready     readyQueue
	deadlines deadlines
	timer     Timer // armed for deadlines.next(); nil when none
	timerAt   time.Time
	done      chan completion
	attempts  sync.WaitGroup

	running    int // attempts started and not yet finished
	unfinished int // nodes not yet in a final state
	// stopping means nothing more starts; see stop.
	stopping  bool
	reason    string
	tripped   bool
	cancelled bool
	recordErr error
}

func newWalk(ctx context.Context, nodes []*node, r Runner, rec Recorder, opt Options) *walk {
	w := &walk{
		ctx:        ctx,
		recordCtx:  context.WithoutCancel(ctx),
		runner:     r,
		recorder:   rec,
		clock:      opt.Clock,
		rand:       opt.Rand,
		maxWorkers: max(opt.MaxWorkers, 1),
		failFast:   opt.FailFast,
		breaker:    breaker.New(opt.Breaker),
		nodes:      nodes,
	}
	if w.clock == nil {
		w.clock = clock.Real{}
	}
	// At most maxWorkers attempts report at once, so with this buffer an
	// attempt never waits for the loop to take its report.
	w.done = make(chan completion, min(w.maxWorkers, len(nodes)))
	for _, n := range nodes {
		switch {
		case n.Done:
			// Succeeded in an earlier execution: already recorded, so
			// only release its dependents.
			n.state = run.NodeSucceeded
			for _, d := range n.dependents {
				d.waiting--
			}
		case n.Ended != "":
			n.state = n.Ended // recorded before the restart
		case n.Resume:
			n.state = run.NodeRunning // taken up by run, before anything else
			w.unfinished++
		default:
			w.unfinished++
		}
	}
	return w
}

// takeUp starts what the walk begins with: the attempts a killed process
// left under way, then the ready nodes. Pending nodes downstream of one
// that ended without succeeding before the restart are skipped, in case the
// process died before recording it.
func (w *walk) takeUp() {
	now := w.clock.Now()
	for _, n := range w.nodes {
		if n.Ended != "" && n.Ended != run.NodeSkipped {
			w.skipDownstream(n, now)
		}
	}
	for _, n := range w.nodes {
		if n.Resume && n.state == run.NodeRunning {
			w.resume(n)
		}
	}
	for _, n := range w.nodes {
		if n.state == run.NodePending && n.waiting == 0 {
			w.ready.push(n)
		}
	}
}

// run is the walk: start what is ready, wait for something to happen, act on
// it, until every node has reached a final state. Then it waits for every
// attempt goroutine, so none outlives Run.
func (w *walk) run() (Result, error) {
	w.takeUp()
	for w.unfinished > 0 {
		w.halt()
		w.wake()
		w.launch()
		if w.unfinished == 0 {
			break
		}
		fire := w.timerC()
		select {
		case c := <-w.done:
			w.finish(c)
		case <-fire:
			w.timer = nil // consumed; wake acts on what is due
		case <-w.cancellation():
			// halt acts on it.
		}
	}
	w.stopTimer()
	w.attempts.Wait()
	return w.result(), w.recordErr
}

// halt stops the run if the caller cancelled it or the Recorder failed.
func (w *walk) halt() {
	switch {
	case w.stopping:
	case w.recordErr != nil:
		w.stop(w.recordErr.Error(), &stopError{w.recordErr.Error()})
	case w.ctx.Err() != nil:
		w.cancelled = true
		reason := "run cancelled"
		if cause := context.Cause(w.ctx); cause != nil && !errors.Is(cause, context.Canceled) {
			reason += ": " + cause.Error()
		}
		w.stop(reason, context.Cause(w.ctx))
	}
}

// wake acts on every deadline that has passed: a timed-out attempt is
// cancelled, and ends when its runner returns; a node whose backoff is over
// queues for a worker again.
func (w *walk) wake() {
	if w.deadlines.Len() == 0 {
		return
	}
	now := w.clock.Now()
	for n := w.deadlines.next(); n != nil && !n.due.After(now); n = w.deadlines.next() {
		w.deadlines.clear(n)
		switch n.state {
		case run.NodeRunning:
			n.cancel(&timeoutError{node: n.Name, after: n.Timeout})
		case run.NodeRetrying:
			w.ready.push(n)
		}
	}
}

// launch starts ready nodes, lowest declaration index first, while workers
// are free.
func (w *walk) launch() {
	for !w.stopping && w.running < w.maxWorkers && w.ready.Len() > 0 {
		w.start(w.ready.pop())
	}
}

// start records n's next attempt as RUNNING and only then runs it, so that a
// Recorder failure leaves no unrecorded work behind.
func (w *walk) start(n *node) {
	now := w.clock.Now()
	a := Attempt{Node: n.Name, Attempt: n.attempt + 1}
	if w.record(Transition{Node: n.Name, State: run.NodeRunning, Attempt: a.Attempt, At: now}) != nil {
		w.halt() // n has not started: it is cancelled with the rest
		return
	}
	w.begin(n, a, now)
}

// resume continues n's attempt that a killed process started: its RUNNING
// is on record, so nothing is recorded; its timeout counts from when it
// started.
func (w *walk) resume(n *node) {
	started := n.Started
	if started.IsZero() {
		started = w.clock.Now()
	}
	w.begin(n, Attempt{Node: n.Name, Attempt: n.attempt + 1}, started)
}

// begin runs attempt a of n, started at started, on its own goroutine.
func (w *walk) begin(n *node, a Attempt, started time.Time) {
	n.state, n.attempt, n.started = run.NodeRunning, a.Attempt, started
	n.ctx, n.cancel = context.WithCancelCause(w.ctx)
	if n.Timeout > 0 {
		w.deadlines.set(n, started.Add(n.Timeout))
	}
	w.running++
	ctx := n.ctx
	w.attempts.Go(func() {
		err := errGoexit // kept only if the runner ends its goroutine with runtime.Goexit
		defer func() { w.done <- completion{node: n, err: err, end: w.clock.Now()} }()
		err = w.call(ctx, a)
	})
}

// call runs one attempt. A panic becomes a permanent failure of the node
// rather than of the daemon; the stack goes in the traceback.
func (w *walk) call(ctx context.Context, a Attempt) (err error) {
	defer func() {
		if v := recover(); v != nil {
			cause, _ := v.(error)
			err = retry.Permanent(&retry.Failure{
				Err: run.Error{
					Type:      "panic",
					Message:   fmt.Sprintf("node %q panicked: %v", a.Node, v),
					Traceback: string(debug.Stack()),
				},
				Cause: cause,
			})
		}
	}()
	return w.runner.Run(ctx, a)
}

// finish moves a node on after an attempt: to SUCCEEDED, releasing its
// dependents; to RETRYING, with a backoff deadline; or to a final failure.
func (w *walk) finish(c completion) {
	n := c.node
	w.running--
	w.deadlines.clear(n)
	t := Transition{Node: n.Name, Attempt: n.attempt, Duration: c.end.Sub(n.started), At: w.clock.Now()}
	if c.err == nil {
		// Success stands even if a timeout or stop raced with it: the
		// work is done, and saying otherwise would make a repair redo it.
		n.cancel(nil)
		t.State = run.NodeSucceeded
		w.set(n, t)
		w.breaker.Success()
		w.release(n)
		return
	}
	class, err := outcome(n.ctx, c.err)
	n.cancel(nil)
	t.Err = describe(class, err)
	if tries := n.attempt - n.PriorAttempts; class.Retryable() && tries < n.Retry.Attempts() && !w.stopping {
		t.State, t.RetryIn = run.NodeRetrying, n.Retry.Delay(tries, w.rand)
		w.set(n, t)
		w.deadlines.set(n, t.At.Add(t.RetryIn))
		return
	}
	t.State = class.State()
	w.set(n, t)
	w.failed(n, t.At)
}

// outcome says what a failed attempt's error means. When the walk or the
// caller cancelled the attempt, their reason is the truth, whatever error the
// interrupted runner happened to return.
func outcome(ctx context.Context, err error) (retry.Class, error) {
	if ctx.Err() == nil {
		return retry.Classify(err), err
	}
	cause := context.Cause(ctx)
	if _, ok := errors.AsType[*timeoutError](cause); ok {
		return retry.ClassTimedOut, cause
	}
	return retry.ClassCancelled, cause
}

// release counts n's success against each dependent; one whose last
// dependency this was is ready now.
func (w *walk) release(n *node) {
	for _, d := range n.dependents {
		d.waiting--
		if d.waiting == 0 && d.state == run.NodePending && !w.stopping {
			w.ready.push(d)
		}
	}
}

// failed handles a node that ended without succeeding: nothing downstream of
// it can run, and the breaker or FailFast may stop the run.
func (w *walk) failed(n *node, at time.Time) {
	w.skipDownstream(n, at)
	if w.stopping {
		return
	}
	if n.state != run.NodeCancelled && w.breaker.Failure(n.Name) {
		w.tripped = true
		reason := w.breaker.Reason()
		w.stop(reason, &stopError{reason})
		return
	}
	if w.failFast {
		reason := fmt.Sprintf("fail_fast: node %q ended %s", n.Name, n.state)
		w.stop(reason, &stopError{reason})
	}
}

// skipDownstream marks every pending node downstream of root SKIPPED, naming
// root, in declaration order. Independent branches are untouched.
func (w *walk) skipDownstream(root *node, at time.Time) {
	var skipped []*node
	stack := []*node{root}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, d := range n.dependents {
			if d.state == run.NodePending {
				d.state = run.NodeSkipped // visited; recorded below
				skipped = append(skipped, d)
				stack = append(stack, d)
			}
		}
	}
	slices.SortFunc(skipped, func(a, b *node) int { return a.index - b.index })
	msg := fmt.Sprintf("upstream node %q ended %s", root.Name, root.state)
	for _, d := range skipped {
		w.set(d, Transition{State: run.NodeSkipped, Err: &run.Error{Type: "upstream_failed", Message: msg}, At: at})
	}
}

// stop ends the run early: nothing more starts, nodes waiting to start or to
// retry end CANCELLED now, and running attempts are cancelled with cause; they
// end when their runners return.
func (w *walk) stop(reason string, cause error) {
	if w.stopping {
		return
	}
	w.stopping, w.reason = true, reason
	w.ready = w.ready[:0]
	now := w.clock.Now()
	for _, n := range w.nodes {
		switch n.state {
		case run.NodeRunning:
			w.deadlines.clear(n)
			n.cancel(cause)
		case run.NodePending, run.NodeRetrying:
			w.deadlines.clear(n)
			w.set(n, Transition{
				State:   run.NodeCancelled,
				Attempt: n.attempt,
				Err:     &run.Error{Type: retry.ClassCancelled.String(), Message: reason},
				At:      now,
			})
		}
	}
}

// set is where every state change other than the start of an attempt
// happens: in memory, then in the Recorder.
func (w *walk) set(n *node, t Transition) {
	t.Node = n.Name
	n.state = t.State
	if t.State.Terminal() {
		w.unfinished--
	}
	w.record(t)
}

// record hands t to the Recorder. After the first failure it records nothing
// more and returns that failure; the loop's next halt stops the run.
func (w *walk) record(t Transition) error {
	if w.recordErr != nil {
		return w.recordErr
	}
	if err := w.recorder.Record(w.recordCtx, t); err != nil {
		w.recordErr = fmt.Errorf("schedule: recording node %q %s: %w", t.Node, t.State, err)
	}
	return w.recordErr
}

// timerC arms the timer for the earliest deadline and returns its channel;
// nil, which blocks forever in a select, when there is no deadline.
func (w *walk) timerC() <-chan time.Time {
	next := w.deadlines.next()
	if next == nil {
		w.stopTimer()
		return nil
	}
	if w.timer == nil || !w.timerAt.Equal(next.due) {
		w.stopTimer()
		w.timer, w.timerAt = w.clock.NewTimer(next.due.Sub(w.clock.Now())), next.due
	}
	return w.timer.C()
}

func (w *walk) stopTimer() {
	if w.timer != nil {
		w.timer.Stop()
		w.timer = nil
	}
}

// cancellation is the run's Done channel until the run stops; after that the
// loop only waits for running attempts.
func (w *walk) cancellation() <-chan struct{} {
	if w.stopping {
		return nil
	}
	return w.ctx.Done()
}

func (w *walk) result() Result {
	r := Result{
		States:    make(map[string]run.NodeState, len(w.nodes)),
		Attempts:  make(map[string]int, len(w.nodes)),
		Tripped:   w.tripped,
		Cancelled: w.cancelled,
		Reason:    w.reason,
	}
	for _, n := range w.nodes {
		r.States[n.Name] = n.state
		r.Attempts[n.Name] = n.attempt
	}
	return r
}

// describe turns an attempt's error into its record, keeping what a runner
// reported through a retry.Failure (type, traceback).
func describe(class retry.Class, err error) *run.Error {
	var carrier interface{ RunError() run.Error }
	if errors.As(err, &carrier) {
		e := carrier.RunError()
		if e.Message == "" {
			e.Message = err.Error()
		}
		e.Retryable = class.Retryable()
		return &e
	}
	return &run.Error{Type: class.String(), Message: err.Error(), Retryable: class.Retryable()}
}

// timeoutError is the cause an attempt's context is cancelled with when its
// Timeout passes. It wraps context.DeadlineExceeded, so a runner reading
// context.Cause(ctx) sees a deadline, as it would with a real one.
type timeoutError struct {
	node  string
	after time.Duration
}

func (e *timeoutError) Error() string {
	return fmt.Sprintf("node %q timed out after %s", e.node, e.after)
}

func (e *timeoutError) Unwrap() error { return context.DeadlineExceeded }

// stopError is the cause running attempts are cancelled with when the run
// stops early (breaker, FailFast, Recorder failure).
type stopError struct{ reason string }

func (e *stopError) Error() string { return e.reason }
func (e *stopError) Unwrap() error { return context.Canceled }

var errGoexit = retry.Permanent(errors.New("runner ended its goroutine (runtime.Goexit) instead of returning"))
