package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	"github.com/tauro-exec/tauro-exec/internal/engine/store"
)

// Several replicas on one store
//
// Every execd is a replica with a name. It beats its heartbeat into the
// store every third of its lease TTL; while the beats come, the runs it
// owns are its own. A run's owner is the replica that created, repaired
// or claimed it, under a lease epoch that every write for the run carries
// (the store refuses a write under an epoch that is no longer the run's).
// A replica whose beats lapse loses its runs: another replica claims each
// (the next epoch), and takes it up as a restarted execd does (Recover):
// from the journal on a Spark that outlived it, else INTERRUPTED for any
// replica to repair; a queued run goes into the claimant's queue. The
// replica that lost a run finds out at its next write for it (ErrFenced)
// and stops executing it without recording anything more.
//
// A cancel or stop asked of a replica that does not own the run is left
// in the store for the owner, which takes it at its next poll.

// DefaultReplica names the one execd of a store nobody else shares.
const DefaultReplica = "local"

// DefaultLeaseTTL is how long a replica's runs stay its own after its last
// heartbeat.
const DefaultLeaseTTL = 15 * time.Second

// controlPoll is how often a replica looks for cancels and stops other
// replicas asked of its runs.
const controlPoll = 500 * time.Millisecond

// ErrLeaseLost is the cause of a run's context when another replica has
// claimed the run: this replica stops executing it and records nothing.
// Its Spark work is the other replica's to take up, so it is left running
// (the cause says Detached): a backend does not interrupt an operation or
// stop a streaming query for it.
var ErrLeaseLost = errors.New("the run's lease passed to another replica")

// leaseLost is ErrLeaseLost with what fenced the run.
type leaseLost struct{ err error }

func (l leaseLost) Error() string  { return ErrLeaseLost.Error() + ": " + l.err.Error() }
func (l leaseLost) Unwrap() error  { return ErrLeaseLost }
func (l leaseLost) Detached() bool { return true }

// replicaLoop is the background work of a replica: heartbeats, adopting
// runs whose owners lapsed, taking control requests.
type replicaLoop struct {
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
}

// fenced ends the ticket's execution when err says its lease is gone.
func (t *ticket) fenced(err error) {
	if errors.Is(err, store.ErrFenced) && t.cancel != nil {
		t.cancel(leaseLost{err})
	}
}

// serveReplica starts the replica's background work; Close stops it.
func (e *Engine) serveReplica() {
	e.replica.stop = make(chan struct{})
	e.replica.done = make(chan struct{})
	go func() {
		defer close(e.replica.done)
		e.replicaLoop()
	}()
}

func (e *Engine) stopReplica() {
	if e.replica.stop == nil {
		return
	}
	e.replica.stopOnce.Do(func() { close(e.replica.stop) })
	<-e.replica.done
}

func (e *Engine) replicaLoop() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-e.replica.stop
		cancel()
	}()
	// The heartbeat has a goroutine of its own: taking runs up (which may
	// wait on Spark) must not delay it past the lease.
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { e.beat(ctx) })
	adopt := time.NewTicker(e.opt.LeaseTTL / 2)
	defer adopt.Stop()
	control := time.NewTicker(controlPoll)
	defer control.Stop()
	admit := time.NewTicker(admitPoll)
	defer admit.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-adopt.C:
			e.adoptOrphans(ctx)
		case <-control.C:
			e.takeControlRequests(ctx)
		case <-admit.C:
			e.admit()
		}
	}
}

// beat records this replica's heartbeat every third of its lease until ctx
// ends.
func (e *Engine) beat(ctx context.Context) {
	t := time.NewTicker(e.opt.LeaseTTL / 3)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		lapsed, err := e.opt.Store.Heartbeat(ctx, e.opt.Replica, e.opt.Address, e.opt.LeaseTTL)
		switch {
		case err != nil && ctx.Err() == nil:
			e.log.Warn("recording this replica's heartbeat", "err", err, "since_last", time.Since(last).Round(time.Millisecond))
		case err == nil && lapsed:
			e.log.Warn("this replica's heartbeats had lapsed; it stops the runs another replica claimed meanwhile")
			e.dropLostRuns(ctx)
		}
		if err == nil {
			last = time.Now()
		}
	}
}

// dropLostRuns stops executing the active runs whose lease another replica
// holds now, without recording anything or ending their Spark work.
func (e *Engine) dropLostRuns(ctx context.Context) {
	e.mu.Lock()
	tickets := make([]*ticket, 0, len(e.active))
	for _, a := range e.active {
		tickets = append(tickets, a.ticket)
	}
	e.mu.Unlock()
	for _, t := range tickets {
		r, err := e.Get(ctx, t.id)
		if err != nil {
			continue
		}
		if r.Owner != t.lease.Owner || r.Epoch != t.lease.Epoch {
			t.fenced(fmt.Errorf("%w: run %s is %s's under epoch %d now", store.ErrFenced, t.id, r.Owner, r.Epoch))
		}
	}
}

// adoptOrphans claims the runs whose owners' heartbeats lapsed and takes
// each up as Recover does.
func (e *Engine) adoptOrphans(ctx context.Context) {
	e.mu.Lock()
	closing := e.closing
	e.mu.Unlock()
	if closing {
		return
	}
	ids, err := e.opt.Store.Orphans(ctx)
	if err != nil {
		if ctx.Err() == nil {
			e.log.Warn("looking for runs whose replica stopped", "err", err)
		}
		return
	}
	xs, err := e.opt.Store.OrphanExperiments(ctx)
	if err != nil && ctx.Err() == nil {
		e.log.Warn("looking for experiments whose replica stopped", "err", err)
	}
	for _, id := range xs {
		if err := e.resumeExperiment(ctx, id); err != nil && ctx.Err() == nil {
			e.log.Warn("taking up an experiment whose replica stopped", "experiment_id", id, "err", err)
		}
	}
	for _, id := range ids {
		r, err := e.Get(ctx, id)
		if err != nil {
			continue
		}
		e.log.Info("taking up a run whose replica stopped beating", "run_id", id, "owner", r.Owner, "state", r.State)
		if r.State == run.Queued {
			err = e.requeueRun(ctx, id)
		} else {
			err = e.recoverRun(ctx, id)
		}
		if err != nil && ctx.Err() == nil {
			e.log.Warn("taking up a run whose replica stopped", "run_id", id, "err", err)
		}
	}
}

// takeControlRequests carries out the cancels and stops other replicas
// asked of this replica's runs.
func (e *Engine) takeControlRequests(ctx context.Context) {
	reqs, err := e.opt.Store.TakeControlRequests(ctx, e.opt.Replica)
	if err != nil {
		if ctx.Err() == nil {
			e.log.Warn("reading cancels asked by other replicas", "err", err)
		}
		return
	}
	for _, c := range reqs {
		e.log.Info("carrying out a request another replica passed on", "run_id", c.RunID, "kind", c.Kind, "reason", c.Reason)
		a, err := e.activeRun(ctx, c.RunID, c.Reason)
		if err != nil || a == nil {
			continue
		}
		if c.Kind == store.ControlStop {
			a.stopOnce.Do(func() { close(a.stop) })
		} else {
			a.cancel(cancelCause{reason: c.Reason})
		}
	}
}

// errElsewhere: the run executes, or waits, on another replica.
var errElsewhere = errors.New("the run is another replica's")

// forward asks the replica that owns run id to cancel or stop it, and
// waits for the run to end.
func (e *Engine) forward(ctx context.Context, id string, kind store.Control, reason string) (run.Run, error) {
	if err := e.opt.Store.RequestControl(ctx, id, kind, reason); err != nil {
		if errors.Is(err, store.ErrRunEnded) {
			r, gerr := e.Get(ctx, id)
			if gerr != nil {
				return run.Run{}, gerr
			}
			return run.Run{}, fmt.Errorf("run %s is %s, not running: %w", id, r.State, ErrFailedPrecondition)
		}
		return run.Run{}, err
	}
	r, err := e.Get(ctx, id)
	if err != nil {
		return run.Run{}, err
	}
	w, err := e.opt.Store.Watch(ctx, id, r.LastSequence)
	if err != nil {
		return run.Run{}, err
	}
	for range w.Events() {
	}
	if err := w.Err(); err != nil {
		return run.Run{}, err
	}
	return e.Get(ctx, id)
}

// Replicas lists the replicas sharing the store, and the time by which
// to tell the live ones (Expires after it).
func (e *Engine) Replicas(ctx context.Context) ([]store.Replica, time.Time, error) {
	rs, err := e.opt.Store.ListReplicas(ctx)
	return rs, e.opt.Now(), err
}
