package mirror

import (
	"context"
	"fmt"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/plan"
	"github.com/tauro-exec/tauro-exec/internal/engine/pycall"
	"github.com/tauro-exec/tauro-exec/internal/engine/store"
)

// Attempt gives a Python ML node attempt its child run before the call,
// so the node's tracker can log to it: nil when the attempt is not
// tracked. A tracking server that does not answer in time leaves the
// run id empty (the node's metrics still reach MLflow through the
// mirror), unless the mlops block is required: then the attempt fails.
func (m *Mirror) Attempt(ctx context.Context, runID string, p *plan.Pipeline, n *plan.Node, attempt int) (*pycall.MLflow, error) {
	if !n.ML {
		return nil, nil
	}
	s, err := m.spec(ctx, p)
	if err != nil {
		// The store, not the tracking server: the node runs untracked.
		m.log.Warn("mlflow mirror: reading what the run is tracked with", "run", runID, "err", err)
		return nil, nil
	}
	if s == nil {
		return nil, nil
	}
	out := &pycall.MLflow{TrackingURI: s.TrackingURI, Required: s.Required}
	c, err := m.client(s.TrackingURI)
	if err != nil {
		return nil, err
	}
	callCtx, cancel := context.WithTimeout(ctx, m.opt.AttemptTimeout)
	defer cancel()
	unlock := m.lock(runID)
	defer unlock()
	now := time.Now()
	parent, err := m.parent(callCtx, c, runID, s, now)
	if err == nil {
		child, cerr := m.child(callCtx, c, runID, s, n.Name, attempt, now)
		out.ExperimentID, out.ParentRunID, out.RunID, err = parent.ExperimentID, parent.RunID, child.RunID, cerr
	}
	if err != nil {
		if s.Required {
			return nil, fmt.Errorf("the MLflow tracking server at %s, which the mlops block requires, did not make the run of node %q attempt %d: %w", s.TrackingURI, n.Name, attempt, err)
		}
		m.log.Info("mlflow mirror: the node runs without its MLflow run; its metrics follow when the server answers", "run", runID, "node", n.Name, "attempt", attempt)
		// The run is live here, so its events can say so (once); the loop
		// may not try the server again before the run has ended.
		m.unanswered(ctx, store.MLflowTrack{ID: runID}, s, err)
		out.RunID = ""
	}
	return out, nil
}
