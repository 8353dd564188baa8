package mirror

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/tauro-exec/tauro-exec/internal/engine/experiment"
	"github.com/tauro-exec/tauro-exec/internal/engine/plan"
	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	"github.com/tauro-exec/tauro-exec/internal/engine/store"
	"github.com/tauro-exec/tauro-exec/internal/mlops/mlflow"
)

// Tags of an experiment's runs.
const (
	TagExperimentID = "execd.experiment_id"
	TagTrial        = "execd.trial" // a trial's number, or "shared"
	TagBest         = "execd.best"
)

// ExperimentSpec is what an experiment is sent with: its parent run, in
// the pipeline's MLflow experiment, carries the search as params.
type ExperimentSpec struct {
	TrackingURI string            `json:"tracking_uri"`
	Experiment  string            `json:"experiment"`
	Description string            `json:"description,omitempty"`
	Name        string            `json:"name"`
	Objective   string            `json:"objective"`
	Params      map[string]string `json:"params,omitempty"`
}

// experimentSpecOf is the spec of experiment x of pipeline p, nil when
// p's runs are not tracked.
func experimentSpecOf(x experiment.Record, p *plan.Pipeline) *ExperimentSpec {
	m := p.Settings.MLOps
	if !m.Tracks(p) {
		return nil
	}
	name := x.Spec.Name
	if name == "" {
		name = x.ID
	}
	ps := paramValues(x.Spec.Hyperparams)
	space, _ := json.Marshal(x.Spec.Space)
	for k, v := range map[string]string{
		"n_trials":            strconv.Itoa(x.Spec.NTrials),
		"max_parallel_trials": strconv.Itoa(x.Spec.MaxParallel),
		"seed":                strconv.FormatInt(x.Spec.Seed, 10),
		"sampler":             string(x.Spec.Sampler),
		"objective":           x.Spec.Objective.Metric,
		"objective_node":      x.Spec.Objective.Node,
		"direction":           string(x.Spec.Objective.Direction),
		"space":               string(space),
		"start_date":          x.Spec.StartDate,
		"end_date":            x.Spec.EndDate,
	} {
		if _, taken := ps[k]; v != "" && !taken {
			ps[k] = v
		}
	}
	return &ExperimentSpec{TrackingURI: m.TrackingURI, Experiment: m.ExperimentFor(p.Name), Description: m.Description,
		Name: name, Objective: x.Spec.Objective.Metric, Params: ps}
}

// TrackExperiment records that experiment x of pipeline p is sent to
// MLflow, when p's runs are tracked. The engine calls it when it creates
// the experiment, before its first trial.
func (m *Mirror) TrackExperiment(ctx context.Context, x experiment.Record, p *plan.Pipeline) error {
	s := experimentSpecOf(x, p)
	if s == nil {
		return nil
	}
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("mlflow mirror: encoding the spec of experiment %s: %w", x.ID, err)
	}
	if err := m.store.TrackMLflowExperiment(ctx, x.ID, b); err != nil {
		return err
	}
	m.poke()
	return nil
}

// experimentParent returns the experiment's parent run, made (or found)
// on first need: by the experiment's own mirror or by its first trial's.
func (m *Mirror) experimentParent(ctx context.Context, c *mlflow.Client, id string, s *ExperimentSpec) (run.MLflowRun, error) {
	// Trials starting together must not each make one.
	defer m.lock("experiment " + id)()
	x, err := m.store.GetExperiment(ctx, id)
	if err != nil || x.MLflow != nil {
		return deref(x.MLflow), err
	}
	exp, err := c.GetOrCreateExperiment(ctx, s.Experiment, s.Description)
	if err != nil {
		return run.MLflowRun{}, err
	}
	tags := []mlflow.Tag{{Key: TagExperimentID, Value: id}, {Key: TagKind, Value: "experiment"}}
	runID, err := findOrCreate(ctx, c, exp.ID, fmt.Sprintf("tags.`%s` = '%s' AND tags.`%s` = 'experiment'", TagExperimentID, quote(id), TagKind),
		mlflow.RunSpec{ExperimentID: exp.ID, Name: s.Name, StartTime: x.CreateTime.UnixMilli(), Tags: tags})
	if err != nil {
		return run.MLflowRun{}, err
	}
	if err := m.tolerate(c.LogBatch(ctx, runID, mlflow.Batch{Params: params(s.Params)}), id, "the experiment's params"); err != nil {
		return run.MLflowRun{}, err
	}
	return m.store.PutMLflowExperimentRun(ctx, id, run.MLflowRun{TrackingURI: s.TrackingURI, ExperimentID: exp.ID, RunID: runID})
}

// errTrialPending is a trial whose run has not reached MLflow yet: its
// experiment's events wait for it.
var errTrialPending = errors.New("a trial's run has not reached MLflow yet")

// sendExperiment sends the experiment's events after its cursor: each
// trial's objective on its run, the shared run's link, and at the end
// the best trial's tag and the parent's status.
func (m *Mirror) sendExperiment(ctx context.Context, t store.MLflowTrack, s *ExperimentSpec) error {
	c, err := m.client(s.TrackingURI)
	if err != nil {
		return err
	}
	after := t.Sent
	for {
		evs, _, _, err := m.store.ExperimentEvents(ctx, t.ID, after, pageSize)
		if err != nil || len(evs) == 0 {
			return err
		}
		for _, ev := range evs {
			if err := m.experimentEvent(ctx, c, t.ID, s, ev); err != nil {
				return err
			}
			if err := m.store.AdvanceMLflowExperiment(ctx, t.ID, ev.Sequence, ev.Terminal()); err != nil {
				return err
			}
		}
		after = evs[len(evs)-1].Sequence
		if evs[len(evs)-1].Terminal() {
			m.forget("experiment " + t.ID)
			return nil
		}
	}
}

func (m *Mirror) experimentEvent(ctx context.Context, c *mlflow.Client, id string, s *ExperimentSpec, ev experiment.Event) error {
	parent, err := m.experimentParent(ctx, c, id, s)
	if err != nil {
		return err
	}
	switch ev.Kind {
	case experiment.SharedRunChanged:
		return m.tolerate(c.LogBatch(ctx, parent.RunID, mlflow.Batch{Tags: []mlflow.Tag{{Key: "execd.shared_run_id", Value: ev.RunID}}}), id, "the shared run")
	case experiment.TrialChanged:
		tr := ev.Trial
		if tr == nil || !tr.State.Ended() || tr.RunID == "" {
			return nil
		}
		got, err := m.store.MLflowRunOf(ctx, tr.RunID, "", 0)
		if err != nil {
			return err
		}
		if got == nil {
			if tr.State == experiment.TrialSucceeded {
				return fmt.Errorf("%w: trial %d (run %s)", errTrialPending, tr.Number, tr.RunID)
			}
			return nil // a trial that failed before its run was tracked
		}
		b := mlflow.Batch{Tags: []mlflow.Tag{{Key: "execd.trial_state", Value: string(tr.State)}}}
		if tr.Value != nil {
			b.Metrics = []mlflow.Metric{{Key: s.Objective, Value: *tr.Value, Timestamp: ev.Time.UnixMilli()}}
		}
		return m.tolerate(c.LogBatch(ctx, got.RunID, b), id, "a trial's objective")
	case experiment.StateChanged:
		if !ev.State.Terminal() {
			return nil
		}
		return m.endExperiment(ctx, c, id, parent, ev)
	}
	return nil
}

// endExperiment tags the best trial and ends the parent as the experiment
// ended.
func (m *Mirror) endExperiment(ctx context.Context, c *mlflow.Client, id string, parent run.MLflowRun, ev experiment.Event) error {
	x, err := m.store.GetExperiment(ctx, id)
	if err != nil {
		return err
	}
	tags := []mlflow.Tag{{Key: TagState, Value: string(ev.State)}}
	if best := x.Best(); best != nil {
		if best.MLflow == nil {
			return fmt.Errorf("%w: the best trial, %d", errTrialPending, best.Number)
		}
		if err := m.tolerate(c.LogBatch(ctx, best.MLflow.RunID, mlflow.Batch{Tags: []mlflow.Tag{{Key: TagBest, Value: "true"}}}), id, "the best trial"); err != nil {
			return err
		}
		tags = append(tags, mlflow.Tag{Key: "execd.best_trial", Value: strconv.Itoa(best.Number)},
			mlflow.Tag{Key: "execd.best_run_id", Value: best.MLflow.RunID})
	}
	if err := m.tolerate(c.LogBatch(ctx, parent.RunID, mlflow.Batch{Tags: tags}), id, "the experiment's end"); err != nil {
		return err
	}
	status := mlflow.StatusFinished
	switch ev.State {
	case experiment.Failed:
		status = mlflow.StatusFailed
	case experiment.Cancelled:
		status = mlflow.StatusKilled
	}
	_, err = c.UpdateRun(ctx, parent.RunID, status, ev.Time.UnixMilli())
	return m.tolerate(err, id, "the experiment's status")
}
