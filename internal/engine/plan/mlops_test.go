package plan

import (
	"testing"

	"github.com/tauro-exec/tauro-exec/internal/engine/problem"
)

const mlopsNodes = `
pipelines:
  p: {nodes: [prep, train, score, plain], requires_dates: false}
nodes:
  prep: {function: m.f}
  train: {function: m.f, hyperparams: {lr: 0.1}}
  score: {function: m.f, ml: {model: m}}
  plain: {function: m.f, hyperparams: {k: 1}, mlops_enabled: false}
`

func TestMLOps_MLNodesFollowTauro(t *testing.T) {
	pl := mustResolve(t, project(t, `
global_settings:
  mlops: {tracking_uri: "http://mlflow:5000", experiment: {name: churn, description: d}, required: true}
`+mlopsNodes), Request{Pipeline: "p"})
	want := map[string]bool{"prep": false, "train": true, "score": true, "plain": false}
	for _, n := range pl.Nodes {
		if n.ML != want[n.Name] {
			t.Errorf("node %s: ML = %v; want %v", n.Name, n.ML, want[n.Name])
		}
	}
	m := pl.Settings.MLOps
	if !m.Enabled || m.TrackingURI != "http://mlflow:5000" || m.Experiment != "churn" || m.Description != "d" || !m.Required || !m.Tracks(pl) {
		t.Errorf("mlops = %+v; want it on with the block's values", m)
	}
}

func TestMLOps_AnMLPipelineMakesEveryNodeML(t *testing.T) {
	pl := mustResolve(t, project(t, `
global_settings:
  mlops: {tracking_uri: "http://mlflow:5000"}
pipelines:
  p: {type: ml, nodes: [a, b], requires_dates: false}
nodes:
  a: {function: m.f}
  b: {function: m.f, mlops_enabled: false}
`), Request{Pipeline: "p"})
	if !pl.Nodes[0].ML || pl.Nodes[1].ML {
		t.Errorf("ML = %v, %v; want true, false", pl.Nodes[0].ML, pl.Nodes[1].ML)
	}
	if got := pl.Settings.MLOps.ExperimentFor("p"); got != "p" {
		t.Errorf("experiment = %q; want the pipeline's name", got)
	}
}

func TestMLOps_OffWithoutBlockOrWhenDisabled(t *testing.T) {
	for _, global := range []string{"", "global_settings:\n  mlops: {enabled: false}\n"} {
		pl := mustResolve(t, project(t, global+mlopsNodes), Request{Pipeline: "p"})
		if pl.Settings.MLOps.Tracks(pl) {
			t.Errorf("%q: tracks; want off", global)
		}
	}
}

func TestMLOps_RefusesWhatExecdDoesNotSupport(t *testing.T) {
	cases := []struct {
		block, code, field, text string
	}{
		{`{tracking_uri: "http://m:5000", backend_type: local}`, problem.CodeInvalidValue,
			"global_settings.mlops.backend_type", "backend_type: not supported by execd"},
		{`{tracking_uri: "http://m:5000", storage_path: /tmp/x}`, problem.CodeInvalidValue,
			"global_settings.mlops.storage_path", "not supported by execd"},
		{`{tracking_uri: "http://m:5000", colour: red}`, problem.CodeInvalidValue,
			"global_settings.mlops.colour", "unknown mlops setting"},
		{`{tracking_uri: ./mlruns}`, problem.CodeInvalidValue,
			"global_settings.mlops.tracking_uri", "mlflow server"},
		{`{tracking_uri: "file:///tmp/mlruns"}`, problem.CodeInvalidValue,
			"global_settings.mlops.tracking_uri", "local folder"},
		{`{tracking_uri: databricks}`, problem.CodeInvalidValue,
			"global_settings.mlops.tracking_uri", "local folder"},
		{`{tracking_uri: "sqlite:///x.db"}`, problem.CodeInvalidValue,
			"global_settings.mlops.tracking_uri", "not the http(s) URL"},
		{`{enabled: true}`, problem.CodeRequired,
			"global_settings.mlops.tracking_uri", "tracking_uri is required"},
		{`{tracking_uri: "http://m:5000", required: maybe}`, problem.CodeInvalidType,
			"global_settings.mlops.required", "true or false"},
		{`{tracking_uri: "http://m:5000", experiment: {name: x, owner: y}}`, problem.CodeInvalidValue,
			"global_settings.mlops.experiment.owner", "use name and description"},
	}
	for _, c := range cases {
		_, err := Resolve(project(t, "global_settings:\n  mlops: "+c.block+"\n"+mlopsNodes), Request{Pipeline: "p"})
		wantProblem(t, problems(t, err), c.code, c.field, c.text)
	}
}

func TestMLOps_NodeFlagMustBeABoolean(t *testing.T) {
	_, err := Resolve(project(t, `
pipelines:
  p: {nodes: [a], requires_dates: false}
nodes:
  a: {function: m.f, mlops_enabled: sometimes}
`), Request{Pipeline: "p"})
	wantProblem(t, problems(t, err), problem.CodeInvalidType, "nodes.a.mlops_enabled", "true or false")
}
