package mirror

// Tests against a real tracking server (mlflowtest): the test run's, or
// one this test binary starts; the down-and-up test starts its own.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/plan"
	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	"github.com/tauro-exec/tauro-exec/internal/engine/store"
	"github.com/tauro-exec/tauro-exec/internal/mlops/mlflow"
	"github.com/tauro-exec/tauro-exec/internal/mlops/mlflowtest"
	"github.com/tauro-exec/tauro-exec/internal/store/sqlite"
)

func TestMain(m *testing.M) { os.Exit(mlflowtest.Main(m)) }

func unique(t *testing.T) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return t.Name() + "-" + hex.EncodeToString(b[:])
}

// pipeline has two ML nodes, train and score, and prep, which is not one.
func pipeline(uri, experiment string) *plan.Pipeline {
	p := &plan.Pipeline{Name: "churn", Env: "dev", Project: "proj",
		Hyperparams: map[string]any{"lr": 0.1},
		StartDate:   time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), EndDate: time.Date(2025, 1, 31, 0, 0, 0, 0, time.UTC),
		ModelVersion: "v3",
		Nodes: []*plan.Node{
			{Name: "prep"},
			{Name: "train", ML: true, Hyperparams: map[string]any{"lr": 0.1, "depth": float64(4)}},
			{Name: "score", ML: true, Hyperparams: map[string]any{"lr": 0.1}},
		}}
	p.Settings.MLOps = plan.MLOps{Enabled: true, TrackingURI: uri, Experiment: experiment, Description: "d"}
	return p
}

func openStore(t *testing.T, dir string) store.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func createRun(t *testing.T, s store.Store, id string) {
	t.Helper()
	r := run.Run{ID: id, Params: run.Params{Pipeline: "churn", Env: "dev"}}
	for _, n := range []string{"prep", "train", "score"} {
		r.Nodes = append(r.Nodes, run.Node{Name: n})
	}
	if _, _, err := s.CreateRun(context.Background(), r); err != nil {
		t.Fatal(err)
	}
}

func appendOK(t *testing.T, s store.Store, id string, evs ...run.Event) {
	t.Helper()
	if _, err := s.Append(context.Background(), id, evs...); err != nil {
		t.Fatal(err)
	}
}

func node(n string, st run.NodeState, a int) run.Event {
	return run.Event{Kind: run.NodeStateChanged, Node: n, NodeState: st, Attempt: a, Duration: 1500 * time.Millisecond}
}

func metric(n, name string, v float64, step int64) run.Event {
	return run.Event{Kind: run.NodeMetric, Node: n, MetricName: name, MetricValue: v, MetricStep: step}
}

// theRun is a run in which train fails once and then succeeds (logging a
// metric MLflow cannot take), score fails, prep (not ML) logs a metric,
// and the run fails.
func theRun() []run.Event {
	failed := node("train", run.NodeRetrying, 1)
	failed.Error = &run.Error{Type: "ValueError", Message: "bad batch", Retryable: true}
	scoreFailed := node("score", run.NodeFailed, 1)
	scoreFailed.Error = &run.Error{Type: "KeyError", Message: "no column 'y'"}
	return []run.Event{
		{Kind: run.RunStateChanged, RunState: run.Running},
		node("prep", run.NodeRunning, 1), metric("prep", "rows", 10, 0), node("prep", run.NodeSucceeded, 1),
		node("train", run.NodeRunning, 1), metric("train", "loss", 0.9, 0), failed,
		node("train", run.NodeRunning, 2),
		metric("train", "loss", 0.8, 0), metric("train", "loss", 0.5, 1), metric("train", "loss", 0.3, 2),
		metric("train", "execd.rows_written", 5, 0),
		// MLflow refuses this name, and would refuse the batch with it.
		metric("train", "bad{name}", 1, 0),
		node("train", run.NodeSucceeded, 2),
		node("score", run.NodeRunning, 1), metric("score", "auc", 0.75, 0), scoreFailed,
		{Kind: run.RunStateChanged, RunState: run.Failed, Message: "score failed"},
	}
}

// found is what the server holds of one execd run.
type found struct {
	parent   mlflow.Run
	children map[string]mlflow.Run // by "node #attempt"
}

func lookUp(t *testing.T, c *mlflow.Client, experiment, runID string) found {
	t.Helper()
	ctx := context.Background()
	exp, err := c.GetOrCreateExperiment(ctx, experiment, "")
	if err != nil {
		t.Fatal(err)
	}
	runs, err := c.SearchRuns(ctx, []string{exp.ID}, fmt.Sprintf("tags.`execd.run_id` = '%s'", runID))
	if err != nil {
		t.Fatal(err)
	}
	f := found{children: map[string]mlflow.Run{}}
	parents := 0
	for _, r := range runs {
		tags := tagMap(r.Data.Tags)
		if tags[TagKind] == "run" {
			f.parent = r
			parents++
			continue
		}
		f.children[tags[TagNode]+" #"+tags[TagAttempt]] = r
	}
	if parents != 1 {
		t.Fatalf("%d parent runs of %s; want 1", parents, runID)
	}
	for k, ch := range f.children {
		if got := tagMap(ch.Data.Tags)["mlflow.parentRunId"]; got != f.parent.Info.RunID {
			t.Errorf("child %s has parent %q; want %q", k, got, f.parent.Info.RunID)
		}
	}
	return f
}

func tagMap(tags []mlflow.Tag) map[string]string {
	m := map[string]string{}
	for _, t := range tags {
		m[t.Key] = t.Value
	}
	return m
}

func paramMap(ps []mlflow.Param) map[string]string {
	m := map[string]string{}
	for _, p := range ps {
		m[p.Key] = p.Value
	}
	return m
}

func history(t *testing.T, c *mlflow.Client, runID, key string) []mlflow.Metric {
	t.Helper()
	h, err := c.MetricHistory(context.Background(), runID, key)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// checkRun checks everything theRun should have left on the server.
func checkRun(t *testing.T, c *mlflow.Client, experiment, runID string) found {
	t.Helper()
	f := lookUp(t, c, experiment, runID)
	if got := f.parent.Info.Status; got != mlflow.StatusFailed {
		t.Errorf("parent status %s; want FAILED", got)
	}
	if got := f.parent.Info.RunName; got != "churn "+runID {
		t.Errorf("parent name %q", got)
	}
	want := map[string]string{"lr": "0.1", "start_date": "2025-01-01", "end_date": "2025-01-31", "model_version": "v3"}
	if got := paramMap(f.parent.Data.Params); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("parent params %v; want %v", got, want)
	}
	if tags := tagMap(f.parent.Data.Tags); tags[TagRunID] != runID || tags["execd.pipeline"] != "churn" || tags[TagState] != "FAILED" {
		t.Errorf("parent tags %v", tags)
	}
	if len(f.children) != 3 {
		t.Fatalf("children %v; want train #1, train #2 and score #1", keys(f.children))
	}
	statuses := map[string]mlflow.RunStatus{"train #1": mlflow.StatusFailed, "train #2": mlflow.StatusFinished, "score #1": mlflow.StatusFailed}
	for k, st := range statuses {
		if got := f.children[k].Info.Status; got != st {
			t.Errorf("%s status %s; want %s", k, got, st)
		}
	}
	if got := tagMap(f.children["score #1"].Data.Tags)[TagError]; got != "KeyError: no column 'y'" {
		t.Errorf("score #1 error tag %q", got)
	}
	if got := tagMap(f.children["train #1"].Data.Tags)[TagError]; got != "ValueError: bad batch" {
		t.Errorf("train #1 error tag %q", got)
	}
	if got := paramMap(f.children["train #2"].Data.Params); got["lr"] != "0.1" || got["depth"] != "4" {
		t.Errorf("train #2 params %v", got)
	}
	loss := history(t, c, f.children["train #2"].Info.RunID, "loss")
	if len(loss) != 3 {
		t.Fatalf("train #2 loss history %+v; want 3 values", loss)
	}
	for i, want := range []float64{0.8, 0.5, 0.3} {
		var hit bool
		for _, m := range loss {
			hit = hit || (m.Step == int64(i) && m.Value == want)
		}
		if !hit {
			t.Errorf("loss at step %d is not %v: %+v", i, want, loss)
		}
	}
	if h := history(t, c, f.children["train #1"].Info.RunID, "loss"); len(h) != 1 || h[0].Value != 0.9 {
		t.Errorf("train #1 loss %+v", h)
	}
	if h := history(t, c, f.children["train #2"].Info.RunID, "execd.rows_written"); len(h) != 0 {
		t.Errorf("execd's own metric was sent: %+v", h)
	}
	if h := history(t, c, f.children["score #1"].Info.RunID, "duration_seconds"); len(h) != 1 || h[0].Value != 1.5 {
		t.Errorf("score #1 duration %+v; want 1.5 s", h)
	}
	return f
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestMirror_OneParentAndAChildPerMLAttemptWithParamsMetricsAndStatuses(t *testing.T) {
	uri, ctx := mlflowtest.URI(t), context.Background()
	s := openStore(t, t.TempDir())
	m := New(Options{Store: s, Replica: "r"})
	id, experiment := "run-"+unique(t)[len(t.Name())+1:], unique(t)
	createRun(t, s, id)
	if err := m.Track(ctx, id, pipeline(uri, experiment)); err != nil {
		t.Fatal(err)
	}
	appendOK(t, s, id, theRun()...)
	m.round(ctx)
	c, _ := m.client(uri)
	f := checkRun(t, c, experiment, id)

	// The store has the ids GetRun shows.
	r, err := s.GetRun(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if r.MLflow == nil || r.MLflow.RunID != f.parent.Info.RunID || r.Nodes[1].Attempts[1].MLflow == nil ||
		r.Nodes[1].Attempts[1].MLflow.RunID != f.children["train #2"].Info.RunID || r.Nodes[0].Attempts[0].MLflow != nil {
		t.Errorf("stored MLflow runs: run %+v, train #2 %+v, prep #1 %+v", r.MLflow, r.Nodes[1].Attempts[1].MLflow, r.Nodes[0].Attempts[0].MLflow)
	}

	// A resend of the whole log, as after a crash between a send and the
	// cursor's update, changes nothing on the server.
	spec := SpecOf(pipeline(uri, experiment))
	if err := m.send(ctx, store.MLflowTrack{ID: id}, spec); err != nil {
		t.Fatal(err)
	}
	checkRun(t, c, experiment, id)
}

func TestMirror_ThePythonCallGetsTheAttemptsChildRunTheMirrorThenUses(t *testing.T) {
	uri, ctx := mlflowtest.URI(t), context.Background()
	s := openStore(t, t.TempDir())
	m := New(Options{Store: s, Replica: "r"})
	id, experiment := "run-"+unique(t)[len(t.Name())+1:], unique(t)
	createRun(t, s, id)
	p := pipeline(uri, experiment)
	if err := m.Track(ctx, id, p); err != nil {
		t.Fatal(err)
	}
	if got, err := m.Attempt(ctx, id, p, p.Nodes[0], 1); got != nil || err != nil {
		t.Errorf("Attempt of a node that is not ML = %+v, %v; want nil", got, err)
	}
	mc, err := m.Attempt(ctx, id, p, p.Nodes[1], 1)
	if err != nil || mc == nil || mc.RunID == "" || mc.ParentRunID == "" || mc.ExperimentID == "" || mc.TrackingURI != uri {
		t.Fatalf("Attempt = %+v, %v; want the child run", mc, err)
	}
	appendOK(t, s, id, theRun()...)
	m.round(ctx)
	c, _ := m.client(uri)
	f := checkRun(t, c, experiment, id)
	if got := f.children["train #1"].Info.RunID; got != mc.RunID {
		t.Errorf("train #1 is %s; want the run the call was given, %s", got, mc.RunID)
	}
}

// A tracking server that does not answer before a Python call leaves the
// attempt without its run, saying so once in the run's events, and fails
// it only when the block is required.
func TestMirror_AnUnreachableServerFailsTheAttemptOnlyWhenRequired(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	m := New(Options{Store: s, Replica: "r", AttemptTimeout: 2 * time.Second})
	// Nothing listens on port 1.
	p := pipeline("http://127.0.0.1:1", unique(t))
	createRun(t, s, "run-1")
	if err := m.Track(ctx, "run-1", p); err != nil {
		t.Fatal(err)
	}
	appendOK(t, s, "run-1", run.Event{Kind: run.RunStateChanged, RunState: run.Running}, node("train", run.NodeRunning, 1))
	for range 2 {
		got, err := m.Attempt(ctx, "run-1", p, p.Nodes[1], 1)
		if err != nil || got == nil || got.RunID != "" || got.TrackingURI != "http://127.0.0.1:1" {
			t.Errorf("not required: %+v, %v; want the context without a run id", got, err)
		}
	}
	evs, err := s.Events(ctx, "run-1", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if msgs := runMessages(t, evs); len(msgs) != 1 || !strings.Contains(msgs[0].Message, "does not answer") {
		t.Errorf("run messages %+v; want one warning", msgs)
	}
	p.Settings.MLOps.Required = true
	if got, err := m.Attempt(ctx, "run-1", p, p.Nodes[1], 1); err == nil || !strings.Contains(err.Error(), "requires") {
		t.Errorf("required: %+v, %v; want an error saying the block requires the server", got, err)
	}
}

// A repaired run is the same parent, back to RUNNING and then ended as
// the repair ends; the repair's attempts are children beside the first.
func TestMirror_ARepairReopensTheSameParent(t *testing.T) {
	uri, ctx := mlflowtest.URI(t), context.Background()
	s := openStore(t, t.TempDir())
	m := New(Options{Store: s, Replica: "r"})
	id, experiment := "run-"+unique(t)[len(t.Name())+1:], unique(t)
	createRun(t, s, id)
	p := pipeline(uri, experiment)
	if err := m.Track(ctx, id, p); err != nil {
		t.Fatal(err)
	}
	appendOK(t, s, id, theRun()...)
	m.round(ctx)
	c, _ := m.client(uri)
	checkRun(t, c, experiment, id)

	if _, _, err := s.PrepareRepair(ctx, id, []string{"score"}, "repair-1", ""); err != nil {
		t.Fatal(err)
	}
	if err := m.Track(ctx, id, p); err != nil {
		t.Fatal(err)
	}
	appendOK(t, s, id, run.Event{Kind: run.RunStateChanged, RunState: run.Running},
		node("score", run.NodeRunning, 2), metric("score", "auc", 0.9, 0), node("score", run.NodeSucceeded, 2),
		run.Event{Kind: run.RunStateChanged, RunState: run.Succeeded})
	m.round(ctx)
	f := lookUp(t, c, experiment, id)
	if f.parent.Info.Status != mlflow.StatusFinished || tagMap(f.parent.Data.Tags)[TagState] != "SUCCEEDED" {
		t.Errorf("parent after the repair: %s, tags %v; want FINISHED, SUCCEEDED", f.parent.Info.Status, tagMap(f.parent.Data.Tags))
	}
	if got := f.children["score #2"].Info.Status; got != mlflow.StatusFinished || len(f.children) != 4 {
		t.Errorf("score #2 %s among %v; want FINISHED beside the first three", got, keys(f.children))
	}
}
