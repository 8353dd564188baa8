package engine

import (
	"context"
	"errors"
	"fmt"

	"github.com/tauro-exec/tauro-exec/internal/engine/plan"
	"github.com/tauro-exec/tauro-exec/internal/engine/problem"
	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	"github.com/tauro-exec/tauro-exec/internal/engine/store"
)

// repairState is what a repair carries over from earlier executions.
type repairState struct {
	kept  map[string]bool          // succeeded nodes that are not run again
	ended map[string]run.NodeState // nodes that ended otherwise and are not run again (a run taken up)
	made  map[string]int           // attempts made so far, per node
}

func (r *repairState) done(node string) bool { return r != nil && r.kept[node] }

func (r *repairState) endedAs(node string) run.NodeState {
	if r == nil {
		return ""
	}
	return r.ended[node]
}

func (r *repairState) attempts(node string) int {
	if r == nil {
		return 0
	}
	return r.made[node]
}

// Repair re-runs, in the same record, every node that did not succeed and
// everything downstream of it. Succeeded nodes upstream are kept.
// A repeated call with the same requestID returns the run instead of
// repairing it again.
func (e *Engine) Repair(ctx context.Context, id, requestID string) (run.Run, error) {
	r, err := e.Get(ctx, id)
	if err != nil {
		return run.Run{}, err
	}
	if requestID != "" {
		owner, err := e.opt.Store.RepairRequest(ctx, r.Params.Project, requestID)
		switch {
		case err == nil && owner == id:
			return r, nil
		case err == nil:
			return run.Run{}, problem.List{{Field: "request_id", Code: problem.CodeInvalidValue,
				Message: fmt.Sprintf("request_id %q was already used to repair run %s; use a new one", requestID, owner)}}
		case !errors.Is(err, store.ErrNotFound):
			return run.Run{}, err
		}
	}
	if err := checkRepairable(r); err != nil {
		return run.Run{}, err
	}
	p, err := e.plan(r.Params)
	if err != nil {
		return run.Run{}, err
	}
	if err := e.opt.Backend.Ready(); err != nil {
		return run.Run{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	// One repair at a time: the record is read again under the lock, so two
	// concurrent calls cannot both reopen the run.
	e.mu.Lock()
	defer e.mu.Unlock()
	if r, err = e.Get(ctx, id); err != nil {
		return run.Run{}, err
	}
	if _, isActive := e.active[id]; isActive {
		return run.Run{}, fmt.Errorf("run %s is %s; only ended runs can be repaired: %w", id, r.State, ErrFailedPrecondition)
	}
	if err := checkRepairable(r); err != nil {
		return run.Run{}, err
	}
	prior := priorOf(p, r)
	var names []string
	for _, n := range p.Nodes {
		if !prior.kept[n.Name] {
			names = append(names, n.Name)
		}
	}
	stored, repeated, err := e.opt.Store.PrepareRepair(ctx, id, names, requestID, e.opt.Replica)
	if err != nil {
		return run.Run{}, err
	}
	if repeated { // a concurrent call with the same request id won
		return stored, nil
	}
	t := e.newTicket(id, p, stored.Params, prior)
	t.lease = store.Lease{RunID: id, Owner: stored.Owner, Epoch: stored.Epoch}
	t.created = stored.CreateTime
	if err := e.enqueueLocked(ctx, t, true); err != nil {
		return run.Run{}, err
	}
	return e.Get(ctx, id)
}

func checkRepairable(r run.Run) error {
	switch {
	case !r.State.Terminal():
		return fmt.Errorf("run %s is %s; only ended runs can be repaired: %w", r.ID, r.State, ErrFailedPrecondition)
	case r.State == run.Succeeded:
		return fmt.Errorf("run %s succeeded; there is nothing to repair: %w", r.ID, ErrFailedPrecondition)
	}
	return nil
}

// priorOf is what a repair of r keeps: the nodes outside RepairSet, and
// every node's attempts so far.
func priorOf(p *plan.Pipeline, r run.Run) *repairState {
	reset := RepairSet(p, r)
	prior := &repairState{kept: map[string]bool{}, made: map[string]int{}}
	for _, n := range p.Nodes {
		if !reset[n.Name] {
			prior.kept[n.Name] = true
		}
	}
	for _, n := range r.Nodes {
		prior.made[n.Name] = n.Attempt
	}
	return prior
}

// RepairSet is the nodes a repair runs again: those that did not succeed
// (or are missing from the record) and everything downstream of them. A
// succeeded node that one of those reads is kept only if it wrote an output
// to read its result back from; one without outputs runs again too.
func RepairSet(p *plan.Pipeline, r run.Run) map[string]bool {
	state := make(map[string]run.NodeState, len(r.Nodes))
	for _, n := range r.Nodes {
		state[n.Name] = n.State
	}
	reset := map[string]bool{}
	// Nodes are in declaration order, which may put a dependent before its
	// dependency, so walk in plan order.
	byName := make(map[string]*plan.Node, len(p.Nodes))
	for _, n := range p.Nodes {
		byName[n.Name] = n
	}
	for _, name := range p.Plan.Order {
		n, ok := byName[name]
		if !ok {
			continue
		}
		if state[name] != run.NodeSucceeded {
			reset[name] = true
			continue
		}
		for _, d := range n.Dependencies {
			if reset[d] {
				reset[name] = true
				break
			}
		}
	}
	for i := len(p.Plan.Order) - 1; i >= 0; i-- {
		n, ok := byName[p.Plan.Order[i]]
		if !ok || !reset[n.Name] {
			continue
		}
		for _, d := range n.Dependencies {
			if dn := byName[d]; dn != nil && !reset[d] && len(dn.Outputs) == 0 {
				reset[d] = true
			}
		}
	}
	return reset
}
