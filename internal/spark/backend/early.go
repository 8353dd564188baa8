package backend

import (
	"context"
	"errors"
	"sync"

	"github.com/tauro-exec/tauro-exec/internal/engine/plan"
	"github.com/tauro-exec/tauro-exec/internal/engine/pycall"
	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	sparkconnect "github.com/tauro-exec/tauro-exec/internal/spark/connect"
)

// A batch Python node's function builds its result from the results it
// reads, and those are views as soon as its upstreams have computed them,
// before their outputs are written. So while the last upstream writes, the
// dependent's function is called on a free worker (an early call); when the
// upstream succeeds and the node runs, it goes straight to taking the
// result in and writing. The early call is the node's first attempt only
// if every result it read is still the one its upstream succeeded with;
// otherwise (an upstream failed or ran again, the session was lost) it is
// discarded with its events, and the function is called again when the
// node runs, if it does. A node's early_call: false, or
// global_settings.early_function_calls: false for every node, turns this
// off.
//
// A node whose result is cached (see cacheable) has it cached by its early
// call too, once the function has returned: the cache request is then off
// the critical path as well. A discarded call's cache is released before
// the function is called again.

// earlyCall is one early call of a node's function.
type earlyCall struct {
	sess *sparkconnect.Session
	// read is, per upstream, the generation of its result the call read.
	read   map[string]int
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	events []pycall.Event
	// Set before done is closed.
	nodeErr *run.Error
	err     error
	// cached is the result view the call cached, "" if none.
	cached string
	// calls counts the Spark Connect requests the call made, which the
	// attempt that takes it up counts as its own.
	calls *sparkconnect.Calls
	// replaced is the discarded call of the same node this one replaces,
	// whose cache it releases first.
	replaced *earlyCall
}

func (e *earlyCall) record(ev pycall.Event) {
	e.mu.Lock()
	e.events = append(e.events, ev)
	e.mu.Unlock()
}

// callsEarly reports whether n's function may be called before n runs: a
// batch Python node that is not an ML node (its attempt has an MLflow run
// and logs to it) and not an attempt a killed execd left under way.
func (r *runExec) callsEarly(n *plan.Node) bool {
	if !n.EarlyCall || n.Kind != plan.KindPython || n.Stream != nil || n.ML {
		return false
	}
	_, live := r.live[n.Name]
	return !live && r.b.pythonFor(r.rc.Pipeline.Project) != nil
}

// callEarly calls, in the background, the function of each dependent of
// upstream whose every result is now a view of session s.
func (r *runExec) callEarly(s *sparkconnect.Session, upstream string) {
	for _, d := range r.consumers[upstream] {
		if !r.callsEarly(d) {
			continue
		}
		r.mu.Lock()
		e := r.newEarly(s, d)
		r.mu.Unlock()
		if e != nil {
			go r.runEarly(s, d, e)
		}
	}
}

// newEarly registers an early call of d, or returns nil when there is to
// be none: not every result d reads is a view of s yet, or d has a call
// that is still good or still under way. r.mu is held.
func (r *runExec) newEarly(s *sparkconnect.Session, d *plan.Node) *earlyCall {
	if r.closing || r.sess != s {
		return nil
	}
	read := map[string]int{}
	for _, u := range d.Dependencies {
		read[u] = r.gen[u]
	}
	for _, in := range d.InputSpecs {
		if in.Producer != "" {
			read[in.Producer] = r.gen[in.Producer]
		}
	}
	for u := range read {
		if !r.ran[u] {
			return nil
		}
	}
	if old := r.early[d.Name]; old != nil {
		select {
		case <-old.done:
			if r.current(old) {
				return nil
			}
		default:
			return nil
		}
	}
	e := &earlyCall{sess: s, read: read, done: make(chan struct{}), replaced: r.early[d.Name]}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	r.early[d.Name] = e
	r.earlyRunning.Add(1)
	return e
}

// current reports whether every result e read is still its upstream's.
// r.mu is held.
func (r *runExec) current(e *earlyCall) bool {
	if r.sess != e.sess {
		return false
	}
	for u, g := range e.read {
		if !r.ran[u] || r.gen[u] != g {
			return false
		}
	}
	return true
}

// runEarly makes early call e of n's first attempt, on a worker that is
// free now; with none free there is no early call.
func (r *runExec) runEarly(s *sparkconnect.Session, n *plan.Node, e *earlyCall) {
	defer r.earlyRunning.Done()
	defer close(e.done)
	defer e.cancel()
	ctx, calls := sparkconnect.CountCalls(e.ctx)
	e.calls = calls
	if old := e.replaced; old != nil {
		e.replaced = nil
		if err := r.releaseEarly(ctx, old); err != nil {
			e.err = err
			return
		}
	}
	call, err := r.call(ctx, s, n, 1)
	if err != nil {
		e.err = err
		return
	}
	call.IfIdle = true
	// Close drops the view the worker makes, should the node never take it in.
	if r.keepOf(n) != "" {
		s.Own(s.UnfilteredView(n.Name))
	} else {
		s.Own(s.ResultView(n.Name))
	}
	e.nodeErr, e.err = r.b.pythonFor(r.rc.Pipeline.Project).Run(ctx, call, e.record)
	if e.nodeErr != nil || e.err != nil || r.keepOf(n) != "" || !r.cacheable(n) {
		return // a kept result's unfiltered rows are cached as the node runs
	}
	view := s.ResultView(n.Name)
	if e.err = s.Cache(ctx, view); e.err == nil {
		e.cached = view
	}
}

// releaseEarly releases what discarded call e cached, once it has ended: a
// result of the same plan cached later would otherwise be read from the
// rows e's inputs had.
func (r *runExec) releaseEarly(ctx context.Context, e *earlyCall) error {
	<-e.done
	if e.cached == "" {
		return nil
	}
	if err := e.sess.Uncache(ctx, e.cached); err != nil && !errors.Is(err, sparkconnect.ErrClosed) {
		return err
	}
	e.cached = ""
	return nil
}

// takeEarly takes up n's early call as attempt's function call: it reports
// whether there was a good one, after emitting its events, and whether it
// cached the node's result; err is the function's failure then. An early
// call that is not good for the attempt (not the first, an upstream's
// result changed, the call could not be made) is discarded.
func (r *runExec) takeEarly(ctx context.Context, n *plan.Node, attempt int, emit func(run.Event)) (called, cached bool, err error) {
	r.mu.Lock()
	e := r.early[n.Name]
	delete(r.early, n.Name)
	r.mu.Unlock()
	if e == nil {
		return false, false, nil
	}
	r.mu.Lock()
	good := attempt == 1 && r.current(e)
	r.mu.Unlock()
	if !good {
		e.cancel()
		return false, false, r.releaseEarly(ctx, e)
	}
	phase(ctx, "inputs") // made by the early call
	select {
	case <-e.done:
	case <-ctx.Done():
		// The attempt ends (its timeout, the run cancelled) once its
		// function has stopped, as a call made now would.
		e.cancel()
		release, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
		defer cancel()
		_ = r.releaseEarly(release, e) // what it cached, if anything; the session's close drops it otherwise
		return true, false, ctx.Err()
	}
	r.mu.Lock()
	good = r.current(e)
	r.mu.Unlock()
	if !good || e.err != nil {
		return false, false, r.releaseEarly(ctx, e)
	}
	countEarly(ctx, e.calls)
	on := pythonEvents(emit)
	for _, ev := range e.events {
		on(ev)
	}
	return true, e.cached != "", pythonFailure(e.nodeErr, nil)
}

// stopEarly cancels the early calls under way and waits for every one to
// end; none starts after it.
func (r *runExec) stopEarly() {
	r.mu.Lock()
	r.closing = true
	for _, e := range r.early {
		e.cancel()
	}
	r.mu.Unlock()
	r.earlyRunning.Wait()
}
