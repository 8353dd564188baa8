package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/experiment"
	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	"github.com/tauro-exec/tauro-exec/internal/engine/store"
)

// testMLflow_AMirrorsCursorAndRunsSurviveAReopen: a tracked run is claimed
// by one replica at a time, its cursor only moves forward, it warns once,
// the first MLflow run recorded for an attempt stays, and GetRun shows
// them; all of it is still there after a reopen.
func testMLflow_AMirrorsCursorAndRunsSurviveAReopen(t *testing.T, f Factory) {
	ctx := context.Background()
	s, key := f.open(t)
	Create(t, s, NewRun("r1", "p", "train"))
	AppendOK(t, s, "r1", RunState(run.Running, ""), NodeState("train", run.NodeRunning, 1),
		run.Event{Kind: run.NodeMetric, Node: "train", MetricName: "loss", MetricValue: 0.5, MetricStep: 7},
		run.Event{Kind: run.RunMessage, Level: "warning", Message: "MLflow does not answer"})
	evs, err := s.Events(ctx, "r1", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := evs[3]; got.MetricStep != 7 {
		t.Errorf("metric step = %d; want 7", got.MetricStep)
	}
	if got := evs[4]; got.Kind != run.RunMessage || got.Level != "warning" || got.Message != "MLflow does not answer" {
		t.Errorf("run message = %+v", got)
	}
	if _, err := s.Append(ctx, "r1", run.Event{Kind: run.RunMessage, Node: "train", Message: "x"}); !errors.Is(err, store.ErrInvalidEvent) {
		t.Errorf("a run message naming a node: %v; want ErrInvalidEvent", err)
	}

	if err := s.TrackMLflow(ctx, "r1", []byte(`{"a":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.TrackMLflow(ctx, "r1", []byte(`{"a":2}`)); err != nil {
		t.Fatal(err)
	}
	got, err := s.ClaimMLflow(ctx, "one", time.Hour)
	if err != nil || len(got) != 1 || got[0].ID != "r1" || string(got[0].Spec) != `{"a":1}` || got[0].Sent != 0 {
		t.Fatalf("ClaimMLflow(one) = %+v, %v; want r1 with its first spec", got, err)
	}
	if other, err := s.ClaimMLflow(ctx, "two", time.Hour); err != nil || len(other) != 0 {
		t.Errorf("ClaimMLflow(two) while one holds it = %+v, %v; want none", other, err)
	}
	if err := s.AdvanceMLflow(ctx, "r1", 4, false); err != nil {
		t.Fatal(err)
	}
	if err := s.AdvanceMLflow(ctx, "r1", 2, false); err != nil {
		t.Fatal(err)
	}
	for i, want := range []bool{true, false} {
		if first, err := s.WarnMLflow(ctx, "r1"); err != nil || first != want {
			t.Errorf("WarnMLflow #%d = %v, %v; want %v", i+1, first, err, want)
		}
	}
	m := run.MLflowRun{TrackingURI: "http://m:5000", ExperimentID: "3", RunID: "abc"}
	if kept, err := s.PutMLflowRun(ctx, "r1", "", 0, run.MLflowRun{TrackingURI: "http://m:5000", ExperimentID: "3", RunID: "parent"}); err != nil || kept.RunID != "parent" {
		t.Fatalf("PutMLflowRun(parent) = %+v, %v", kept, err)
	}
	if kept, err := s.PutMLflowRun(ctx, "r1", "train", 1, m); err != nil || kept != m {
		t.Fatalf("PutMLflowRun = %+v, %v", kept, err)
	}
	if kept, err := s.PutMLflowRun(ctx, "r1", "train", 1, run.MLflowRun{RunID: "other"}); err != nil || kept != m {
		t.Errorf("a second PutMLflowRun = %+v, %v; want the first kept", kept, err)
	}

	s2, err := f.reopen(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	r := Get(t, s2, "r1")
	if r.MLflow == nil || r.MLflow.RunID != "parent" {
		t.Errorf("run's MLflow = %+v; want the parent", r.MLflow)
	}
	if a := r.Nodes[0].Attempts[0]; a.MLflow == nil || *a.MLflow != m {
		t.Errorf("attempt's MLflow = %+v; want %+v", a.MLflow, m)
	}
	if u := m.URL(); u != "http://m:5000/#/experiments/3/runs/abc" {
		t.Errorf("URL = %s", u)
	}
	got, err = s2.ClaimMLflow(ctx, "one", time.Hour)
	if err != nil || len(got) != 1 || got[0].Sent != 4 || !got[0].Warned {
		t.Fatalf("after a reopen ClaimMLflow = %+v, %v; want sent 4, warned", got, err)
	}
	if err := s2.AdvanceMLflow(ctx, "r1", 5, true); err != nil {
		t.Fatal(err)
	}
	if got, err := s2.ClaimMLflow(ctx, "one", time.Hour); err != nil || len(got) != 0 {
		t.Errorf("ClaimMLflow of a run wholly sent = %+v, %v; want none", got, err)
	}
	if err := s2.TrackMLflow(ctx, "r1", []byte(`{"a":3}`)); err != nil {
		t.Fatal(err)
	}
	if got, err := s2.ClaimMLflow(ctx, "one", time.Hour); err != nil || len(got) != 1 || got[0].Sent != 5 || string(got[0].Spec) != `{"a":1}` {
		t.Errorf("ClaimMLflow of a run tracked again (a repair) = %+v, %v; want it where it was", got, err)
	}
}

// testMLflow_AnExperimentIsTrackedAsARunIs: an experiment's mirror is
// claimed and advanced as a run's, its parent run's first record stays,
// and GetExperiment shows it with each trial's run's.
func testMLflow_AnExperimentIsTrackedAsARunIs(t *testing.T, f Factory) {
	ctx := context.Background()
	s, _ := f.open(t)
	if _, _, err := s.CreateExperiment(ctx, NewExperiment("x")); err != nil {
		t.Fatal(err)
	}
	Create(t, s, NewRun("run-1", "train", "fit"))
	StartExperiment(t, s, "x")
	if _, err := s.AppendExperiment(ctx, "x", trial(1, experiment.TrialRunning, 0)); err != nil {
		t.Fatal(err)
	}
	if err := s.TrackMLflowExperiment(ctx, "x", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	got, err := s.ClaimMLflowExperiments(ctx, "one", time.Hour)
	if err != nil || len(got) != 1 || got[0].ID != "x" {
		t.Fatalf("ClaimMLflowExperiments = %+v, %v", got, err)
	}
	if other, err := s.ClaimMLflowExperiments(ctx, "two", time.Hour); err != nil || len(other) != 0 {
		t.Errorf("a second replica's claim = %+v, %v; want none", other, err)
	}
	if x, _ := s.GetExperiment(ctx, "x"); x.MLflow != nil {
		t.Errorf("MLflow before any was made: %+v", x.MLflow)
	}
	m := run.MLflowRun{TrackingURI: "http://m:5000", ExperimentID: "2", RunID: "exp"}
	if kept, err := s.PutMLflowExperimentRun(ctx, "x", m); err != nil || kept != m {
		t.Fatalf("PutMLflowExperimentRun = %+v, %v", kept, err)
	}
	if kept, err := s.PutMLflowExperimentRun(ctx, "x", run.MLflowRun{RunID: "other"}); err != nil || kept != m {
		t.Errorf("a second PutMLflowExperimentRun = %+v, %v; want the first kept", kept, err)
	}
	trialRun := run.MLflowRun{TrackingURI: "http://m:5000", ExperimentID: "2", RunID: "trial-1"}
	if _, err := s.PutMLflowRun(ctx, "run-1", "", 0, trialRun); err != nil {
		t.Fatal(err)
	}
	x, err := s.GetExperiment(ctx, "x")
	if err != nil || x.MLflow == nil || *x.MLflow != m || x.Trials[0].MLflow == nil || *x.Trials[0].MLflow != trialRun {
		t.Errorf("GetExperiment = %+v (trials %+v), %v", x.MLflow, x.Trials, err)
	}
	if err := s.AdvanceMLflowExperiment(ctx, "x", 3, true); err != nil {
		t.Fatal(err)
	}
	if got, err := s.ClaimMLflowExperiments(ctx, "one", time.Hour); err != nil || len(got) != 0 {
		t.Errorf("after it was wholly sent: %+v, %v; want none", got, err)
	}
}
