package engine

import (
	"context"
	"errors"
	"fmt"

	"github.com/tauro-exec/tauro-exec/internal/engine/observe"
	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	"github.com/tauro-exec/tauro-exec/internal/engine/store"
)

// Starting runs and stopping them: a run is recorded, then driven in the
// background by a goroutine the Engine owns until the run's end is recorded.

// Execute validates the request, records a run and queues it; it starts
// at once when admission allows. A request with a request id already used
// returns that run instead. With noWait, a run that cannot start at once is
// refused (ErrFailedPrecondition) and nothing is recorded.
func (e *Engine) Execute(ctx context.Context, requestID string, params run.Params, noWait bool) (run.Run, error) {
	pr, err := e.project(params.Project)
	if err != nil {
		return run.Run{}, err
	}
	params.Project = pr.Name
	if requestID != "" {
		if r, err := e.opt.Store.RunByRequestID(ctx, pr.Name, requestID); err == nil {
			return r, nil
		} else if !errors.Is(err, store.ErrNotFound) {
			return run.Run{}, err
		}
	}
	p, err := e.plan(params)
	if err != nil {
		return run.Run{}, err
	}
	if probs, err := e.checkFunctions(ctx, p); err != nil || len(probs) > 0 {
		return run.Run{}, errors.Join(err, probs.Err())
	}
	if err := e.opt.Backend.Ready(); err != nil {
		return run.Run{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	rec := run.Run{
		ID:        newRunID(),
		RequestID: requestID,
		Params:    decided(params, p),
		State:     run.Pending,
		Owner:     e.opt.Replica,
	}
	for _, n := range p.Nodes {
		rec.Nodes = append(rec.Nodes, run.Node{Name: n.Name, State: run.NodePending})
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	// Taken under the lock that queues the run, create times order runs as
	// the queue does.
	rec.CreateTime = e.opt.Now()
	if e.closing {
		return run.Run{}, fmt.Errorf("%w: %v", ErrUnavailable, ErrShutdown)
	}
	if why := e.clearConflictLocked(p); why != "" {
		return run.Run{}, fmt.Errorf("%w: full_refresh or reset_checkpoint cannot clear now: %s; wait for it to end (or stop it) and try again", ErrFailedPrecondition, why)
	}
	t := e.newTicket(rec.ID, p, rec.Params, nil)
	if noWait {
		if why := e.blockerLocked(t); why != "" {
			return run.Run{}, fmt.Errorf("%w: the run cannot start now (%s) and no_wait was asked; try later or let it queue", ErrFailedPrecondition, why)
		}
	}
	stored, created, err := e.opt.Store.CreateRun(ctx, rec)
	if err != nil {
		return run.Run{}, err
	}
	if !created {
		return stored, nil
	}
	t.lease = store.Lease{RunID: stored.ID, Owner: stored.Owner, Epoch: stored.Epoch}
	t.created = stored.CreateTime
	if err := e.enqueueLocked(ctx, t, true); err != nil {
		return run.Run{}, err
	}
	return e.Get(ctx, stored.ID)
}

// startLocked runs an admitted run in the background. e.mu is held.
func (e *Engine) startLocked(t *ticket) {
	ctx, cancel := context.WithCancelCause(t.ctx)
	if t.stop == nil {
		t.stop = make(chan struct{})
	}
	t.cancel = cancel
	a := &activeRun{ticket: t, key: pipelineKey(t.p), writes: t.writes, cancel: cancel, done: make(chan struct{}), stop: t.stop}
	e.active[t.id] = a
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		defer close(a.done)
		release := func() {}
		defer func() {
			e.mu.Lock()
			if e.active[t.id] == a {
				delete(e.active, t.id)
			}
			e.admitLocked()
			e.mu.Unlock()
			// A succeeded run's cleanup comes after its end is recorded
			// and after the next run is admitted: it writes nothing.
			release()
			cancel(nil)
		}()
		release = e.execute(ctx, t)
	}()
}

// execute drives one run from RUNNING to its terminal state. Records are
// written with a context that outlives cancellation, so a cancelled run
// still records how it ended. A run taken up after a restart is RUNNING
// already. It returns what is left to release of a run that succeeded (see
// drive); any other run is released before its end is recorded.
func (e *Engine) execute(ctx context.Context, t *ticket) (release func()) {
	recCtx := context.WithoutCancel(ctx)
	runID, p, obs := t.id, t.p, t.observed()
	log := e.log.With("run_id", runID, "pipeline", p.Name)
	rc := RunContext{RunID: runID, Pipeline: p, Stop: t.stop, Journal: e.journal(t.lease)}
	if t.resume == nil {
		if rc.Journal != nil {
			if err := e.opt.Store.JournalClear(recCtx, t.lease); err != nil {
				log.Warn("clearing the run's journal", "err", err)
			}
		}
		// Admission (StartRun) recorded the run RUNNING.
	}
	e.skipDoneClears(recCtx, t.lease, p, log)
	e.opt.Observer.RunStarted(ctx, obs)
	var end observe.End
	if _, err := e.project(p.Project); err != nil {
		// Removed from the projects, or broken, since the run was queued:
		// its workers are gone, so it does not start.
		end, release = observe.End{State: run.Failed, Message: "the run's project is not served now: " + err.Error()}, func() {}
	} else {
		end, release = e.drive(ctx, rc, t, obs, log)
	}
	if errors.Is(context.Cause(ctx), ErrLeaseLost) {
		// Another replica has the run: it records the rest, and its Spark
		// work is that replica's to take up, not this one's to release.
		log.Warn("the run's lease passed to another replica; this replica stops executing it", "err", context.Cause(ctx))
		release = func() {}
		e.opt.Observer.RunEnded(recCtx, obs, end)
		return release
	}
	if end.State != run.Succeeded {
		release()
		release = func() {}
	}
	// From its end on the run writes nothing (a succeeded run's release
	// only drops caches), so a run clearing what it wrote is accepted as
	// soon as a watcher sees the end, not only after this goroutine returns.
	e.mu.Lock()
	if a := e.active[runID]; a != nil {
		a.writes = nil
	}
	e.mu.Unlock()
	if _, err := e.opt.Store.AppendAs(recCtx, t.lease, run.Event{Kind: run.RunStateChanged, RunState: end.State, Message: end.Message}); err != nil {
		log.Error("recording run end", "err", err)
	}
	if rc.Journal != nil {
		if err := e.opt.Store.JournalClear(recCtx, t.lease); err != nil {
			log.Warn("clearing the run's journal", "err", err)
		}
	}
	e.opt.Observer.RunEnded(recCtx, obs, end)
	log.Info("run ended", "state", end.State, "message", end.Message)
	return release
}

// Cancel stops a run: an executing run's nodes are interrupted, a queued
// run ends without starting. Cancelling a run that has ended fails with
// ErrFailedPrecondition.
func (e *Engine) Cancel(ctx context.Context, id, reason string) (run.Run, error) {
	if reason == "" {
		reason = "cancelled by request"
	}
	a, err := e.activeRun(ctx, id, reason)
	if errors.Is(err, errElsewhere) {
		return e.forward(ctx, id, store.ControlCancel, reason)
	}
	if err != nil || a == nil {
		return e.ended(ctx, id, err)
	}
	a.cancel(cancelCause{reason: reason})
	return e.awaitEnd(ctx, id, a)
}

// Stop ends an executing run's streaming queries gracefully, each after its
// current micro-batch, and waits for the run to end; batch nodes run on. A
// queued run ends without starting.
func (e *Engine) Stop(ctx context.Context, id, reason string) (run.Run, error) {
	if reason == "" {
		reason = "stopped by request"
	}
	a, err := e.activeRun(ctx, id, reason)
	if errors.Is(err, errElsewhere) {
		return e.forward(ctx, id, store.ControlStop, reason)
	}
	if err != nil || a == nil {
		return e.ended(ctx, id, err)
	}
	e.log.Info("stopping a run's streams", "run_id", id, "reason", reason)
	a.stopOnce.Do(func() { close(a.stop) })
	return e.awaitEnd(ctx, id, a)
}

// activeRun returns the run id names if it executes here. A queued run is
// taken out of the queue and recorded CANCELLED with reason (nil, nil). A
// run another replica owns is errElsewhere.
func (e *Engine) activeRun(ctx context.Context, id, reason string) (*activeRun, error) {
	r, err := e.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if t := e.dequeueLocked(id); t != nil {
		end := observe.End{State: run.Cancelled, Message: reason + " (before it started)"}
		_, err := e.opt.Store.AppendAs(context.WithoutCancel(ctx), t.lease, run.Event{Kind: run.RunStateChanged, RunState: end.State, Message: end.Message})
		e.opt.Observer.RunEnded(t.ctx, t.observed(), end)
		return nil, err
	}
	a := e.active[id]
	if a == nil && !r.State.Terminal() {
		// The record was read before the lock: a run that ended since
		// then recorded its end before it left e.active.
		if r, err = e.Get(ctx, id); err != nil {
			return nil, err
		}
	}
	if a == nil && !r.State.Terminal() && r.Owner != e.opt.Replica {
		return nil, errElsewhere
	}
	if a == nil || r.State.Terminal() {
		return nil, fmt.Errorf("run %s is %s, not running: %w", id, r.State, ErrFailedPrecondition)
	}
	return a, nil
}

// ended returns the run after a call that found it queued, or err.
func (e *Engine) ended(ctx context.Context, id string, err error) (run.Run, error) {
	if err != nil {
		return run.Run{}, err
	}
	return e.Get(ctx, id)
}

// awaitEnd waits for an active run to record its end and returns it.
func (e *Engine) awaitEnd(ctx context.Context, id string, a *activeRun) (run.Run, error) {
	select {
	case <-a.done:
	case <-ctx.Done():
		return run.Run{}, ctx.Err()
	}
	return e.Get(ctx, id)
}
