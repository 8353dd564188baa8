package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/mlops/mlflow"
	"github.com/tauro-exec/tauro-exec/internal/mlops/mlflowtest"
	"github.com/tauro-exec/tauro-exec/internal/spark/server/sparktest"
)

// A model a node logs and registers through its ml_context is a version of
// a registered model made from that node attempt's own MLflow run, and it
// loads back through MLflow; a node written for tauro's mlops layer does
// the same unchanged.
func TestMLOps_AModelANodeRegistersComesFromItsOwnRunAndLoadsBack(t *testing.T) {
	uri := mlflowtest.URI(t)
	py, err := sparktest.Python()
	if err != nil {
		t.Skip(err)
	}
	ctx := testCtx(t, 5*time.Minute)
	experiment := uniqueName(t)
	skName, tauroName := experiment+"-sk", experiment+"-tauro"
	project := trackedProject(t, uri, experiment)
	appendConfig(t, project, "nodes.yaml", fmt.Sprintf(`
sk_train: {module: pyproj_nodes.tracked, function: sk_train, hyperparams: {model_name: %q}, output: [test.mlops.sk]}
tauro_train: {module: pyproj_nodes.tracked, function: tauro_train, hyperparams: {model_name: %q}, output: [test.mlops.tauro]}
`, skName, tauroName))
	appendConfig(t, project, "output.yaml", `
test.mlops.sk: {format: parquet, write_mode: overwrite}
test.mlops.tauro: {format: parquet, write_mode: overwrite}
`)
	appendConfig(t, project, "pipelines.yaml", "tracked_models: {type: ml, nodes: [sk_train, tauro_train]}\n")
	_, c, runID := runTracked(ctx, t, project, uri, "tracked_models")
	_, kids := mlflowRuns(ctx, t, c, experiment, runID, mlflow.StatusFinished, 2)
	for name, node := range map[string]string{skName: "sk_train #1", tauroName: "tauro_train #1"} {
		v, err := c.GetModelVersion(ctx, name, "1")
		if err != nil {
			t.Errorf("model %s: %v", name, err)
			continue
		}
		if want := kids[node].Info.RunID; v.RunID != want || want == "" {
			t.Errorf("model %s version 1 comes from run %q; want %s's %q", name, v.RunID, node, want)
		}
		if v.Status != "READY" {
			t.Errorf("model %s version 1 is %s", name, v.Status)
		}
	}
	if v, _ := c.GetModelVersion(ctx, skName, "1"); !strings.Contains(fmt.Sprint(v.Aliases), "candidate") || !strings.Contains(fmt.Sprint(v.Tags), "linear") {
		t.Errorf("%s version 1: aliases %v, tags %v; want candidate and kind=linear", skName, v.Aliases, v.Tags)
	}
	h, err := c.MetricHistory(ctx, kids["tauro_train #1"].Info.RunID, "train_loss")
	if err != nil || len(h) != 2 {
		t.Errorf("tauro_train's train_loss %+v, %v; want its two epochs", h, err)
	}

	// Loaded back through MLflow, by alias, the model predicts as trained
	// (y = 2x + 1 at x = 3).
	load := exec.CommandContext(ctx, py, "-c", fmt.Sprintf(
		"import mlflow.sklearn; print(round(float(mlflow.sklearn.load_model('models:/%s@candidate').predict([[3.0]])[0]), 3))", skName))
	load.Dir = t.TempDir()
	load.Env = append(os.Environ(), "MLFLOW_TRACKING_URI="+uri, "MLFLOW_REGISTRY_URI="+uri)
	out, err := load.CombinedOutput()
	if err != nil || !strings.HasSuffix(strings.TrimSpace(string(out)), "7.0") {
		t.Errorf("loading %s@candidate: %v\n%s", skName, err, out)
	}
}
