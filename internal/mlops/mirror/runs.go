package mirror

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	"github.com/tauro-exec/tauro-exec/internal/mlops/mlflow"
)

// Tags execd puts on the MLflow runs it makes: they find a run made before
// a crash that lost its id, so a resend never makes a second one.
const (
	TagRunID   = "execd.run_id"
	TagKind    = "execd.kind" // "run" or "attempt"
	TagNode    = "execd.node"
	TagAttempt = "execd.attempt"
	TagState   = "execd.state"
	TagError   = "execd.error"
)

// parent returns the run's parent run, made (or found) on first need.
func (m *Mirror) parent(ctx context.Context, c *mlflow.Client, runID string, s *Spec, start time.Time) (run.MLflowRun, error) {
	if got, err := m.store.MLflowRunOf(ctx, runID, "", 0); err != nil || got != nil {
		return deref(got), err
	}
	tags := []mlflow.Tag{{Key: TagRunID, Value: runID}, {Key: TagKind, Value: "run"},
		{Key: "execd.pipeline", Value: s.Pipeline}, {Key: "execd.env", Value: s.Env}, {Key: "execd.project", Value: s.Project}}
	spec := mlflow.RunSpec{Name: s.Pipeline + " " + runID, StartTime: start.UnixMilli(), Tags: tags}
	if s.ExperimentSpec != nil {
		// An experiment's run is one of its trials (or its shared run).
		ep, err := m.experimentParent(ctx, c, s.ExperimentID, s.ExperimentSpec)
		if err != nil {
			return run.MLflowRun{}, err
		}
		spec.ExperimentID, spec.ParentRunID = ep.ExperimentID, ep.RunID
		spec.Name = s.ExperimentSpec.Name + " trial " + s.Trial
		spec.Tags = append(spec.Tags, mlflow.Tag{Key: TagExperimentID, Value: s.ExperimentID}, mlflow.Tag{Key: TagTrial, Value: s.Trial})
	} else {
		exp, err := c.GetOrCreateExperiment(ctx, s.Experiment, s.Description)
		if err != nil {
			return run.MLflowRun{}, err
		}
		spec.ExperimentID = exp.ID
	}
	id, err := findOrCreate(ctx, c, spec.ExperimentID, fmt.Sprintf("tags.`%s` = '%s' AND tags.`%s` = 'run'", TagRunID, quote(runID), TagKind), spec)
	if err != nil {
		return run.MLflowRun{}, err
	}
	if err := m.tolerate(c.LogBatch(ctx, id, mlflow.Batch{Params: params(s.Params)}), runID, "the run's params"); err != nil {
		return run.MLflowRun{}, err
	}
	return m.store.PutMLflowRun(ctx, runID, "", 0, run.MLflowRun{TrackingURI: s.TrackingURI, ExperimentID: spec.ExperimentID, RunID: id})
}

// child returns the child run of one node attempt, made (or found) on
// first need, with the node's hyperparameters as its params.
func (m *Mirror) child(ctx context.Context, c *mlflow.Client, runID string, s *Spec, node string, attempt int, start time.Time) (run.MLflowRun, error) {
	if got, err := m.store.MLflowRunOf(ctx, runID, node, attempt); err != nil || got != nil {
		return deref(got), err
	}
	parent, err := m.parent(ctx, c, runID, s, start)
	if err != nil {
		return run.MLflowRun{}, err
	}
	a := strconv.Itoa(attempt)
	tags := []mlflow.Tag{{Key: TagRunID, Value: runID}, {Key: TagKind, Value: "attempt"},
		{Key: TagNode, Value: node}, {Key: TagAttempt, Value: a}}
	filter := fmt.Sprintf("tags.`%s` = '%s' AND tags.`%s` = 'attempt' AND tags.`%s` = '%s' AND tags.`%s` = '%s'",
		TagRunID, quote(runID), TagKind, TagNode, quote(node), TagAttempt, a)
	id, err := findOrCreate(ctx, c, parent.ExperimentID, filter, mlflow.RunSpec{ExperimentID: parent.ExperimentID,
		Name: node + " #" + a, StartTime: start.UnixMilli(), ParentRunID: parent.RunID, Tags: tags})
	if err != nil {
		return run.MLflowRun{}, err
	}
	if err := m.tolerate(c.LogBatch(ctx, id, mlflow.Batch{Params: params(s.Nodes[node])}), runID, "an attempt's params"); err != nil {
		return run.MLflowRun{}, err
	}
	return m.store.PutMLflowRun(ctx, runID, node, attempt, run.MLflowRun{TrackingURI: s.TrackingURI, ExperimentID: parent.ExperimentID, RunID: id})
}

// findOrCreate returns the run filter finds, else makes one.
func findOrCreate(ctx context.Context, c *mlflow.Client, experimentID, filter string, spec mlflow.RunSpec) (string, error) {
	found, err := c.SearchRuns(ctx, []string{experimentID}, filter)
	if err != nil {
		return "", err
	}
	if len(found) > 0 {
		// Oldest first: the one every later look-up agrees on.
		return found[len(found)-1].Info.RunID, nil
	}
	r, err := c.CreateRun(ctx, spec)
	return r.Info.RunID, err
}

// quote escapes a value for an MLflow search filter's single quotes.
func quote(s string) string {
	out := make([]rune, 0, len(s))
	for _, r := range s {
		if r == '\'' || r == '\\' {
			out = append(out, '\\')
		}
		out = append(out, r)
	}
	return string(out)
}

func deref(m *run.MLflowRun) run.MLflowRun {
	if m == nil {
		return run.MLflowRun{}
	}
	return *m
}
