package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	execv1 "github.com/tauro-exec/tauro-exec/gen/tauro/exec/v1"
	"github.com/tauro-exec/tauro-exec/internal/mlops/mlflow"
	"github.com/tauro-exec/tauro-exec/internal/mlops/mlflowtest"
	"github.com/tauro-exec/tauro-exec/internal/spark/server/sparktest"
)

// The tracking server stops in the middle of a run: the run succeeds and
// says so once; execd stops with sends pending, and once the server and
// a new execd are back every param and metric arrives once.
func TestMLOps_AServerDownInTheMiddleOfARunWarnsOnceAndARestartedExecdSendsTheRestOnce(t *testing.T) {
	py, err := sparktest.Python()
	if err != nil {
		t.Skip(err)
	}
	mdir, state := t.TempDir(), t.TempDir()
	srv := mlflowtest.Own(t, mdir, 0)
	uri, port := srv.URI(), srv.Port()
	experiment := uniqueName(t)
	project := trackedProject(t, uri, experiment)
	// gate waits for a file the test makes once the server is down.
	appendConfig(t, project, "nodes.yaml", `
gate: {module: pyproj_nodes.gate, function: gate, dependencies: [fit], output: [test.mlops.gate]}
fit_after: {module: pyproj_nodes.tracked, function: fit, hyperparams: {lr: 0.25}, dependencies: [gate], output: [test.mlops.after]}
`)
	appendConfig(t, project, "output.yaml", `
test.mlops.gate: {format: parquet, write_mode: overwrite}
test.mlops.after: {format: parquet, write_mode: overwrite}
`)
	appendConfig(t, project, "pipelines.yaml", "interrupted: {type: batch, nodes: [fit, gate, fit_after]}\n")
	gateFile := filepath.Join(project, "gate-open")
	err = os.WriteFile(filepath.Join(project, "src", "pyproj_nodes", "gate.py"), []byte(`import os
import time


def gate(*, start_date, end_date, ml_context):
    deadline = time.time() + 120
    while not os.path.exists(`+"\""+gateFile+"\""+`) and time.time() < deadline:
        time.sleep(0.1)
    return ml_context["spark"].createDataFrame([{"open": 1}])
`), 0o644)
	if err != nil {
		t.Fatal(err)
	}

	ctx := testCtx(t, 6*time.Minute)
	d := startDaemon(t, project, state, "--python", py, "--workers", "1")
	cl := d.client(t)
	c, err := mlflow.New(mlflow.Config{URI: uri, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	runID := startRun(ctx, t, cl, &execv1.ExecutePipelineRequest{Pipeline: "interrupted"})
	// fit's child has reached the server, ended, before it goes away.
	for {
		_, kids := mlflowRuns(ctx, t, c, experiment, runID, mlflow.StatusRunning, 1)
		if kids["fit #1"].Info.Status == mlflow.StatusFinished {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := srv.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(gateFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	evs := collect(ctx, t, cl, runID, 0)
	var warnings []*execv1.RunMessage
	for _, ev := range evs {
		if m := ev.GetRunMessage(); m != nil {
			warnings = append(warnings, m)
		}
	}
	r, err := cl.GetRun(ctx, &execv1.GetRunRequest{RunId: runID})
	if err != nil {
		t.Fatal(err)
	}
	if r.GetRun().GetState() != execv1.RunState_RUN_STATE_SUCCEEDED {
		t.Fatalf("run %s with the tracking server down; want SUCCEEDED\n%s", r.GetRun().GetState(), d.Logs())
	}
	if len(warnings) != 1 || warnings[0].GetLevel() != "warning" {
		t.Fatalf("run messages %v; want one warning", warnings)
	}
	t.Logf("the warning: %s", warnings[0].GetText())

	// execd stops with the rest unsent; the server and a new execd come
	// back.
	d.Stop()
	mlflowtest.Own(t, mdir, port)
	startDaemon(t, project, state, "--python", py, "--workers", "1")
	parent, kids := mlflowRuns(ctx, t, c, experiment, runID, mlflow.StatusFinished, 2)
	for _, k := range []string{"fit #1", "fit_after #1"} {
		if kids[k].Info.Status != mlflow.StatusFinished {
			t.Errorf("%s: %s; want FINISHED", k, kids[k].Info.Status)
		}
		loss, err := c.MetricHistory(ctx, kids[k].Info.RunID, "loss")
		if err != nil || len(loss) != 3 {
			t.Errorf("%s loss %+v, %v; want 3 values, each once", k, loss, err)
		}
		dur, err := c.MetricHistory(ctx, kids[k].Info.RunID, "duration_seconds")
		if err != nil || len(dur) != 1 {
			t.Errorf("%s duration %+v, %v; want one", k, dur, err)
		}
	}
	ps := map[string]string{}
	for _, p := range kids["fit_after #1"].Data.Params {
		ps[p.Key] = p.Value
	}
	if ps["lr"] != "0.25" || len(parent.Data.Params) == 0 {
		t.Errorf("fit_after #1 params %v, parent params %v", ps, parent.Data.Params)
	}
}
