package main

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	execv1 "github.com/tauro-exec/tauro-exec/gen/tauro/exec/v1"
	"github.com/tauro-exec/tauro-exec/internal/mlops/mlflow"
	"github.com/tauro-exec/tauro-exec/internal/mlops/mlflowtest"
)

// An experiment of 6 trials on a pipeline with mlops on: one MLflow
// parent, a child per trial with its params and objective, the shared
// run linked as a child too, and the best trial tagged.
func TestMLOps_AnExperimentIsOneParentWithAChildPerTrialAndTheBestTagged(t *testing.T) {
	uri := mlflowtest.URI(t)
	project := copyProject(t, "expproj")
	name := uniqueName(t)
	appendConfig(t, project, "global_settings.yaml", fmt.Sprintf("mlops: {tracking_uri: %q, experiment: %q}\n", uri, name))
	d := startExpDaemon(t, project, t.TempDir())
	cl := d.client(t)
	ctx := testCtx(t, 4*time.Minute)
	c, err := mlflow.New(mlflow.Config{URI: uri})
	if err != nil {
		t.Fatal(err)
	}

	seed := int64(5)
	resp, err := cl.RunExperiment(ctx, &execv1.RunExperimentRequest{Experiment: "quadratic", Seed: &seed, NTrials: 6, MaxParallelTrials: 2})
	if err != nil {
		t.Fatal(err)
	}
	id := resp.GetExperiment().GetExperimentId()
	watchExperiment(ctx, t, cl, id, 0)
	exp, err := c.GetOrCreateExperiment(ctx, name, "")
	if err != nil {
		t.Fatal(err)
	}
	var (
		parent mlflow.Run
		kids   map[string]mlflow.Run
		last   string
	)
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		parents, err := c.SearchRuns(ctx, []string{exp.ID}, fmt.Sprintf("tags.`execd.experiment_id` = '%s' AND tags.`execd.kind` = 'experiment'", id))
		if err != nil {
			t.Fatal(err)
		}
		kids = map[string]mlflow.Run{}
		if len(parents) == 1 {
			parent = parents[0]
			children, err := c.SearchRuns(ctx, []string{exp.ID}, fmt.Sprintf("tags.`mlflow.parentRunId` = '%s'", parent.Info.RunID))
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range children {
				kids[tags(k.Data.Tags)["execd.trial"]] = k
			}
		}
		last = fmt.Sprintf("%d parents, status %s, children %v", len(parents), parent.Info.Status, keysOf(kids))
		if len(parents) == 1 && parent.Info.Status == mlflow.StatusFinished && len(kids) == 7 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("MLflow never held the experiment with 6 trials and the shared run: %s\n%s", last, d.Logs())
		}
	}

	got, err := cl.GetExperiment(ctx, &execv1.GetExperimentRequest{ExperimentId: id})
	if err != nil {
		t.Fatal(err)
	}
	x := got.GetExperiment()
	if x.GetMlflow().GetRunId() != parent.Info.RunID {
		t.Errorf("Experiment.mlflow %v; want %s", x.GetMlflow(), parent.Info.RunID)
	}
	if _, ok := kids["shared"]; !ok || tags(parent.Data.Tags)["execd.shared_run_id"] != x.GetSharedRunId() {
		t.Errorf("the shared run: child %v, parent's tag %q; want %s", ok, tags(parent.Data.Tags)["execd.shared_run_id"], x.GetSharedRunId())
	}
	best := 0
	for _, tr := range x.GetTrials() {
		k, ok := kids[strconv.Itoa(int(tr.GetNumber()))]
		if !ok || tr.GetMlflow().GetRunId() != k.Info.RunID {
			t.Errorf("trial %d: child %v, Trial.mlflow %v", tr.GetNumber(), ok, tr.GetMlflow())
			continue
		}
		ps := map[string]string{}
		for _, p := range k.Data.Params {
			ps[p.Key] = p.Value
		}
		for _, dim := range []string{"x", "y"} {
			if want := fmt.Sprint(tr.GetParams().AsMap()[dim]); ps[dim] == "" || ps[dim] != strconv.FormatFloat(tr.GetParams().AsMap()[dim].(float64), 'g', -1, 64) {
				t.Errorf("trial %d param %s = %q; want %s", tr.GetNumber(), dim, ps[dim], want)
			}
		}
		loss, err := c.MetricHistory(ctx, k.Info.RunID, "loss")
		if err != nil {
			t.Fatal(err)
		}
		var objective bool
		for _, m := range loss {
			objective = objective || m.Value == tr.GetValue()
		}
		if !objective {
			t.Errorf("trial %d: loss %+v lacks its objective %v", tr.GetNumber(), loss, tr.GetValue())
		}
		if tags(k.Data.Tags)["execd.best"] == "true" {
			best++
			if tr.GetNumber() != x.GetBest().GetNumber() {
				t.Errorf("trial %d is tagged best; the best is %d", tr.GetNumber(), x.GetBest().GetNumber())
			}
		}
	}
	if best != 1 || tags(parent.Data.Tags)["execd.best_trial"] != strconv.Itoa(int(x.GetBest().GetNumber())) {
		t.Errorf("%d trials tagged best, parent's best_trial %q; want one, %d", best, tags(parent.Data.Tags)["execd.best_trial"], x.GetBest().GetNumber())
	}
}
