package engine

import (
	"context"
	"fmt"

	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	"github.com/tauro-exec/tauro-exec/internal/engine/store"
)

// Taking a run up after execd was killed. The run's record says which
// nodes succeeded, which ended otherwise and which attempts were under way;
// the backend's journal says where their Spark work is. The run goes on in
// the same record: no second RUNNING for the run or for an attempt taken
// up, each node's end recorded once.

// resumption is what a ticket of a run taken up carries.
type resumption struct {
	exec ResumedRun
	// live are the attempts that go on, by node.
	live map[string]run.LiveAttempt
}

// resume takes run id up if its backend can, and starts it. False means
// the run is to be interrupted.
func (e *Engine) resume(ctx context.Context, lease store.Lease) bool {
	res, ok := e.opt.Backend.(Resumer)
	if !ok {
		return false
	}
	id := lease.RunID
	log := e.log.With("run_id", id)
	r, err := e.Get(ctx, id)
	if err != nil || r.State != run.Running {
		return false
	}
	for _, n := range r.Nodes {
		if n.State == run.NodeCancelled {
			log.Info("the run was being stopped when execd was killed; it is not taken up")
			return false
		}
	}
	p, err := e.plan(r.Params)
	if err != nil {
		log.Warn("the run's pipeline no longer resolves, so the run is not taken up", "err", err)
		return false
	}
	live, err := e.opt.Store.LiveAttempts(ctx, id)
	if err != nil {
		log.Warn("reading the run's attempts under way", "err", err)
		return false
	}
	stop := make(chan struct{})
	rc := RunContext{RunID: id, Pipeline: p, Stop: stop, Journal: e.journal(lease), Live: live}
	exec, err := res.ResumeRun(ctx, rc)
	if err != nil {
		log.Warn("the run's Spark work cannot be taken up", "err", err)
		return false
	}
	t := e.newTicket(id, p, r.Params, resumedState(r))
	t.stop, t.recovered, t.lease = stop, true, lease
	t.resume = &resumption{exec: exec, live: map[string]run.LiveAttempt{}}
	var evs []run.Event
	for _, a := range live {
		if exec.Continues(ctx, a) {
			t.resume.live[a.Node] = a
			evs = append(evs, run.Event{Kind: run.NodeMessage, Node: a.Node, Level: "info",
				Message: fmt.Sprintf("execd restarted; attempt %d goes on where it was on Spark", a.Attempt)})
			continue
		}
		// The attempt's work died with execd (a Python node's function
		// runs in a worker that stops with it): the attempt ends, and the
		// node runs again as its next one.
		evs = append(evs, run.Event{Kind: run.NodeStateChanged, Node: a.Node, NodeState: run.NodeRetrying, Attempt: a.Attempt,
			Error: &run.Error{Type: store.InterruptedErrorType, Retryable: true,
				Message: "execd stopped while the attempt ran, and its work did not outlive it (a Python node's worker stops with execd); the node runs again"}})
	}
	if _, err := e.opt.Store.AppendAs(ctx, lease, evs...); err != nil {
		log.Warn("recording how the run is taken up", "err", err)
		_ = exec.Close(context.WithoutCancel(ctx))
		return false
	}
	log.Info("run taken up after a restart", "attempts_under_way", len(t.resume.live), "attempts_run_again", len(live)-len(t.resume.live))
	e.mu.Lock()
	defer e.mu.Unlock()
	e.startLocked(t) // it was executing: admission has nothing to say
	return true
}

// resumedState is what a run taken up keeps: every node that ended, with
// its state, and every node's attempts so far.
func resumedState(r run.Run) *repairState {
	prior := &repairState{kept: map[string]bool{}, ended: map[string]run.NodeState{}, made: map[string]int{}}
	for _, n := range r.Nodes {
		prior.made[n.Name] = n.Attempt
		switch {
		case n.State == run.NodeSucceeded:
			prior.kept[n.Name] = true
		case n.State.Terminal():
			prior.ended[n.Name] = n.State
		}
	}
	return prior
}

// journal is the run's journal in the store, written under its lease.
func (e *Engine) journal(lease store.Lease) Journal {
	if _, ok := e.opt.Backend.(Resumer); !ok {
		return nil
	}
	return runJournal{st: e.opt.Store, lease: lease}
}

type runJournal struct {
	st    store.Store
	lease store.Lease
}

func (j runJournal) Load(ctx context.Context, key string) ([]byte, error) {
	return j.st.JournalGet(ctx, j.lease.RunID, key)
}

func (j runJournal) Save(ctx context.Context, key string, value []byte) error {
	return j.st.JournalPut(ctx, j.lease, key, value)
}

func (j runJournal) List(ctx context.Context, prefix string) (map[string][]byte, error) {
	return j.st.JournalList(ctx, j.lease.RunID, prefix)
}
