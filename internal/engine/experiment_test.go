package engine

import (
	"slices"
	"testing"

	"github.com/tauro-exec/tauro-exec/internal/engine/experiment"
	"github.com/tauro-exec/tauro-exec/internal/engine/plan"
)

// node builds a plan node: kind, dependencies, whether it writes an output,
// and its own hyperparams.
func node(name, kind string, stored bool, own map[string]any, deps ...string) *plan.Node {
	n := &plan.Node{Name: name, Kind: kind, Dependencies: deps, Config: map[string]any{}}
	if stored {
		n.OutputSpecs = []plan.OutputSpec{{Key: "s.t." + name, Path: "/out/" + name}}
	}
	if own != nil {
		n.Config["hyperparams"] = own
	}
	return n
}

func pipelineOf(nodes ...*plan.Node) *plan.Pipeline {
	p := &plan.Pipeline{Name: "p", Nodes: nodes}
	for _, n := range nodes {
		p.Plan.Order = append(p.Plan.Order, n.Name)
	}
	return p
}

func TestSplitNodes_RunsWhatTheSearchCannotChangeOnceAndTheRestInEveryTrial(t *testing.T) {
	cases := []struct {
		name          string
		p             *plan.Pipeline
		shared, trial []string
	}{
		{"a SQL source is shared, the Python model is tried",
			pipelineOf(node("load", plan.KindSQL, true, nil), node("train", plan.KindPython, true, nil, "load")),
			[]string{"load"}, []string{"train"}},
		{"what depends on a tried node is tried too",
			pipelineOf(node("load", plan.KindSQL, true, nil), node("train", plan.KindPython, true, nil, "load"), node("report", plan.KindSQL, true, nil, "train")),
			[]string{"load"}, []string{"train", "report"}},
		{"an unchanging node without outputs cannot be read back, so trials run it",
			pipelineOf(node("load", plan.KindSQL, true, nil), node("clean", plan.KindSQL, false, nil, "load"), node("train", plan.KindPython, true, nil, "clean")),
			[]string{"load"}, []string{"clean", "train"}},
		{"a Python node whose own hyperparams set every searched name is shared",
			pipelineOf(node("features", plan.KindPython, true, map[string]any{"lr": 1, "depth": 2}), node("train", plan.KindPython, true, nil, "features")),
			[]string{"features"}, []string{"train"}},
		{"nothing to share",
			pipelineOf(node("train", plan.KindPython, true, nil)),
			nil, []string{"train"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := splitNodes(c.p, []string{"lr", "depth"})
			if !slices.Equal(got.shared, c.shared) || !slices.Equal(got.trial, c.trial) {
				t.Errorf("shared %v trial %v; want %v and %v", got.shared, got.trial, c.shared, c.trial)
			}
		})
	}
}

func TestObjectiveNode_FindsTheNodeThatDeclaresTheMetricOrSaysHowToNameIt(t *testing.T) {
	train := node("train", plan.KindPython, true, nil)
	train.Config["metrics"] = []any{"rmse"}
	other := node("other", plan.KindPython, true, nil)
	p := pipelineOf(train, other)
	trial := []string{"train", "other"}
	if n, prob := objectiveNode(p, experiment.Objective{Metric: "rmse"}, trial); prob != nil || n != "train" {
		t.Errorf("got %q, %v", n, prob)
	}
	if _, prob := objectiveNode(p, experiment.Objective{Metric: "mae"}, trial); prob == nil || prob.Field != "objective.metric" {
		t.Errorf("an undeclared metric: %v", prob)
	}
	if _, prob := objectiveNode(p, experiment.Objective{Metric: "mae", Node: "train"}, trial); prob == nil || prob.Field != "objective.metric" {
		t.Errorf("a metric the named node does not declare: %v", prob)
	}
	if n, prob := objectiveNode(p, experiment.Objective{Metric: "mae", Node: "other"}, trial); prob != nil || n != "other" {
		t.Errorf("a named node that declares no metrics is taken at its word: %q %v", n, prob)
	}
	if _, prob := objectiveNode(p, experiment.Objective{Metric: "rmse", Node: "ghost"}, trial); prob == nil || prob.Field != "objective.node" {
		t.Errorf("an unknown node: %v", prob)
	}
}
