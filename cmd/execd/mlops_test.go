package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	execv1 "github.com/tauro-exec/tauro-exec/gen/tauro/exec/v1"
	"github.com/tauro-exec/tauro-exec/internal/mlops/mlflow"
	"github.com/tauro-exec/tauro-exec/internal/mlops/mlflowtest"
	"github.com/tauro-exec/tauro-exec/internal/spark/server/sparktest"
)

// trackedProject is pyproj with an mlops block sending to uri's
// experiment, and two pipelines: "tracked" (fit, an ML node logging a
// loss curve; flaky_fit, an ML node that fails its first attempt; plain,
// a node with hyperparameters left out with mlops_enabled: false) and
// "tracked_fail" (an ML node that fails).
func trackedProject(t *testing.T, uri, experiment string) string {
	t.Helper()
	project := copyProject(t, "pyproj")
	appendConfig(t, project, "global_settings.yaml", fmt.Sprintf("mlops: {tracking_uri: %q, experiment: {name: %q, description: tracked by execd}}\n", uri, experiment))
	appendConfig(t, project, "nodes.yaml", `
fit: {module: pyproj_nodes.tracked, function: fit, hyperparams: {lr: 0.5}, output: [test.mlops.fit]}
flaky_fit: {module: pyproj_nodes.tracked, function: flaky_fit, ml: {model: m}, max_retries: 1, retry_delay: 0.1, output: [test.mlops.flaky]}
plain: {module: pyproj_nodes.tracked, function: fit, hyperparams: {lr: 0.1}, mlops_enabled: false, output: [test.mlops.plain]}
broken_fit: {module: pyproj_nodes.tracked, function: broken_fit, hyperparams: {lr: 0.5}, output: [test.mlops.broken]}
`)
	appendConfig(t, project, "output.yaml", `
test.mlops.fit: {format: parquet, write_mode: overwrite}
test.mlops.flaky: {format: parquet, write_mode: overwrite}
test.mlops.plain: {format: parquet, write_mode: overwrite}
test.mlops.broken: {format: parquet, write_mode: overwrite}
`)
	appendConfig(t, project, "pipelines.yaml", `
tracked: {type: batch, nodes: [fit, flaky_fit, plain]}
tracked_fail: {type: batch, nodes: [broken_fit]}
`)
	err := os.WriteFile(filepath.Join(project, "src", "pyproj_nodes", "tracked.py"), []byte(`"""ML nodes whose runs execd records in MLflow."""

from tauro_exec import Retryable


def fit(*, start_date, end_date, ml_context):
    for step, loss in enumerate((0.9, 0.5, 0.3)):
        ml_context["log_metric"]("loss", loss, step=step)
    return ml_context["spark"].createDataFrame([{"ok": 1}])


def sk_train(*, start_date, end_date, ml_context):
    """Logs a scikit-learn model in its own run and registers it."""
    from sklearn.linear_model import LinearRegression

    tracker, registry = ml_context["tracker"], ml_context["registry"]
    model = LinearRegression().fit([[0.0], [1.0], [2.0]], [1.0, 3.0, 5.0])
    tracker.log_param("features", 1)
    tracker.log_model(model, "model")
    registry.register_model(ml_context["hyperparams"]["model_name"], tags={"kind": "linear"}, alias="candidate")
    return ml_context["spark"].createDataFrame([{"ok": 1}])


def tauro_train(*, start_date, end_date, ml_context=None):
    """A node written for tauro's mlops layer: its run id, its integration
    object and the tracker and registry behind it."""
    import os
    import pickle
    import tempfile

    from sklearn.linear_model import LinearRegression

    mlops_integration = ml_context.get("mlops_integration")
    mlops_run_id = ml_context.get("mlops_run_id")
    tracker = mlops_integration.mlops_context.experiment_tracker
    tracker.log_parameter(mlops_run_id, "fit_intercept", True)
    for epoch in range(2):
        tracker.log_metric(mlops_run_id, "train_loss", 0.5 - epoch * 0.1, step=epoch)
    path = os.path.join(tempfile.mkdtemp(), "model.pkl")
    with open(path, "wb") as f:
        pickle.dump(LinearRegression().fit([[0.0], [1.0]], [0.0, 2.0]), f)
    logged = mlops_integration.log_artifact(run_id=mlops_run_id, artifact_path=path, artifact_type="model")
    mlops_integration.register_model_from_run(
        run_id=mlops_run_id, model_name=ml_context["hyperparams"]["model_name"], artifact_path=logged,
        artifact_type="sklearn", framework="sklearn", description="trained the tauro way",
        hyperparams={"fit_intercept": True}, metrics={"r2": 1.0}, tags={"stage": "Staging"},
    )
    return ml_context["spark"].createDataFrame([{"ok": 1}])


def flaky_fit(*, start_date, end_date, ml_context):
    attempt = ml_context["execution_metadata"]["attempt"]
    ml_context["log_metric"]("tries", attempt)
    if attempt == 1:
        raise Retryable("the first attempt fails")
    return ml_context["spark"].createDataFrame([{"attempt": attempt}])


def broken_fit(*, start_date, end_date, ml_context):
    raise ValueError("no convergence")
`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	return project
}

func uniqueName(t *testing.T) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return t.Name() + "-" + hex.EncodeToString(b[:])
}

// mlflowRuns waits until the server holds the parent of runID in state
// status with children, and returns the parent and the children by
// "node #attempt".
func mlflowRuns(ctx context.Context, t *testing.T, c *mlflow.Client, experiment, runID string, status mlflow.RunStatus, children int) (mlflow.Run, map[string]mlflow.Run) {
	t.Helper()
	exp, err := c.GetOrCreateExperiment(ctx, experiment, "")
	if err != nil {
		t.Fatal(err)
	}
	var last string
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		runs, err := c.SearchRuns(ctx, []string{exp.ID}, fmt.Sprintf("tags.`execd.run_id` = '%s'", runID))
		if err != nil {
			t.Fatal(err)
		}
		var parents []mlflow.Run
		kids := map[string]mlflow.Run{}
		for _, r := range runs {
			tags := tags(r.Data.Tags)
			if tags["execd.kind"] == "run" {
				parents = append(parents, r)
			} else {
				kids[tags["execd.node"]+" #"+tags["execd.attempt"]] = r
			}
		}
		last = fmt.Sprintf("%d parents, children %v", len(parents), keysOf(kids))
		if len(parents) == 1 && parents[0].Info.Status == status && len(kids) == children {
			return parents[0], kids
		}
	}
	t.Fatalf("MLflow never held the run %s as %s with %d children: %s", runID, status, children, last)
	return mlflow.Run{}, nil
}

func tags(ts []mlflow.Tag) map[string]string {
	m := map[string]string{}
	for _, t := range ts {
		m[t.Key] = t.Value
	}
	return m
}

func keysOf(m map[string]mlflow.Run) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// runTracked runs pipeline of project on a new execd with Python workers,
// waits for it to succeed, and returns a client of execd, one of the
// tracking server at uri, and the run's id.
func runTracked(ctx context.Context, t *testing.T, project, uri, pipeline string) (execv1.ExecServiceClient, *mlflow.Client, string) {
	t.Helper()
	py, err := sparktest.Python()
	if err != nil {
		t.Skip(err)
	}
	d := startDaemon(t, project, t.TempDir(), "--python", py, "--workers", "2")
	cl := d.client(t)
	c, err := mlflow.New(mlflow.Config{URI: uri})
	if err != nil {
		t.Fatal(err)
	}
	runID := startRun(ctx, t, cl, &execv1.ExecutePipelineRequest{Pipeline: pipeline})
	if r := waitRun(ctx, t, cl, runID); r.GetState() != execv1.RunState_RUN_STATE_SUCCEEDED {
		t.Fatalf("run %s: %v\n%s", r.GetState(), r, d.Logs())
	}
	return cl, c, runID
}

func TestMLOps_APipelineWithMLNodesIsOneParentAndAChildPerAttempt(t *testing.T) {
	uri := mlflowtest.URI(t)
	ctx := testCtx(t, 5*time.Minute)
	experiment := uniqueName(t)
	cl, c, runID := runTracked(ctx, t, trackedProject(t, uri, experiment), uri, "tracked")
	parent, kids := mlflowRuns(ctx, t, c, experiment, runID, mlflow.StatusFinished, 3)
	if parent.Info.RunName != "tracked "+runID {
		t.Errorf("parent name %q", parent.Info.RunName)
	}
	pp := map[string]string{}
	for _, p := range parent.Data.Params {
		pp[p.Key] = p.Value
	}
	// pyproj's default_hyperparams, window and default_model_version.
	if pp["alpha"] != "1" || pp["start_date"] != "2025-01-01" || pp["end_date"] != "2025-01-31" || pp["model_version"] != "v0" {
		t.Errorf("parent params %v", pp)
	}
	if _, ok := kids["plain #1"]; ok {
		t.Errorf("plain (mlops_enabled: false) has a child run")
	}
	want := map[string]mlflow.RunStatus{"fit #1": mlflow.StatusFinished, "flaky_fit #1": mlflow.StatusFailed, "flaky_fit #2": mlflow.StatusFinished}
	for k, st := range want {
		kid, ok := kids[k]
		if !ok || kid.Info.Status != st {
			t.Errorf("child %s: %v (%s); want %s", k, ok, kid.Info.Status, st)
			continue
		}
		if got := tags(kid.Data.Tags)["mlflow.parentRunId"]; got != parent.Info.RunID {
			t.Errorf("child %s's parent %q; want %q", k, got, parent.Info.RunID)
		}
	}
	if e := tags(kids["flaky_fit #1"].Data.Tags)["execd.error"]; !strings.Contains(e, "the first attempt fails") {
		t.Errorf("flaky_fit #1 error tag %q", e)
	}
	loss, err := c.MetricHistory(ctx, kids["fit #1"].Info.RunID, "loss")
	if err != nil {
		t.Fatal(err)
	}
	steps := map[int64]float64{}
	for _, m := range loss {
		steps[m.Step] = m.Value
	}
	if len(loss) != 3 || steps[0] != 0.9 || steps[1] != 0.5 || steps[2] != 0.3 {
		t.Errorf("fit #1 loss %v; want 0.9, 0.5 and 0.3 at steps 0, 1 and 2", loss)
	}
	for k, v := range map[string]float64{"flaky_fit #1": 1, "flaky_fit #2": 2} {
		h, err := c.MetricHistory(ctx, kids[k].Info.RunID, "tries")
		if err != nil || len(h) != 1 || h[0].Value != v {
			t.Errorf("%s tries %+v, %v; want %v once", k, h, err, v)
		}
	}
	var fitParams = map[string]string{}
	for _, p := range kids["fit #1"].Data.Params {
		fitParams[p.Key] = p.Value
	}
	if fitParams["lr"] != "0.5" || fitParams["alpha"] != "1" {
		t.Errorf("fit #1 params %v; want its effective hyperparameters", fitParams)
	}

	// GetRun shows the ids and pages.
	got, err := cl.GetRun(ctx, &execv1.GetRunRequest{RunId: runID})
	if err != nil {
		t.Fatal(err)
	}
	r := got.GetRun()
	if m := r.GetMlflow(); m.GetRunId() != parent.Info.RunID || m.GetUrl() != fmt.Sprintf("%s/#/experiments/%s/runs/%s", uri, parent.Info.ExperimentID, parent.Info.RunID) {
		t.Errorf("Run.mlflow %v", m)
	}
	for _, n := range r.GetNodes() {
		for _, a := range n.GetAttempts() {
			k := fmt.Sprintf("%s #%d", n.GetName(), a.GetAttempt())
			if kid, ok := kids[k]; ok != (a.GetMlflow() != nil) || (ok && a.GetMlflow().GetRunId() != kid.Info.RunID) {
				t.Errorf("attempt %s's mlflow %v; want %q", k, a.GetMlflow(), kid.Info.RunID)
			}
		}
	}

	// A node that fails: its child is FAILED with the error, as the run is.
	failID := startRun(ctx, t, cl, &execv1.ExecutePipelineRequest{Pipeline: "tracked_fail"})
	if r := waitRun(ctx, t, cl, failID); r.GetState() != execv1.RunState_RUN_STATE_FAILED {
		t.Fatalf("tracked_fail %s", r.GetState())
	}
	_, kids = mlflowRuns(ctx, t, c, experiment, failID, mlflow.StatusFailed, 1)
	if k := kids["broken_fit #1"]; k.Info.Status != mlflow.StatusFailed || !strings.Contains(tags(k.Data.Tags)["execd.error"], "no convergence") {
		t.Errorf("broken_fit #1: %s, tags %v", k.Info.Status, tags(k.Data.Tags))
	}
}

// An mlops block execd cannot honour is refused before anything runs,
// each problem naming its field and the fix.
func TestMLOps_AnUnsupportedBlockIsRefusedNamingTheField(t *testing.T) {
	project := copyProject(t, "tinyproj")
	appendConfig(t, project, "global_settings.yaml", "mlops: {tracking_uri: ./mlruns, backend_type: local}\n")
	d := startDaemon(t, project, t.TempDir())
	ctx := testCtx(t, time.Minute)
	_, err := d.client(t).ValidatePipeline(ctx, &execv1.ValidatePipelineRequest{Pipeline: "tiny"})
	got := map[string]string{}
	for _, v := range badRequest(t, err).GetFieldViolations() {
		got[v.GetField()] = v.GetDescription()
	}
	for field, want := range map[string]string{
		"global_settings.mlops.backend_type": "backend_type: not supported by execd",
		"global_settings.mlops.tracking_uri": "mlflow server",
	} {
		if !strings.Contains(got[field], want) {
			t.Errorf("%s: %q; want it to say %q (all: %v)", field, got[field], want, got)
		}
	}
}
