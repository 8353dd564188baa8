package pyworker

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/experiment"
)

// A worker's optimiser proposes in the space, Integer values whole, the
// same proposal for the same seed, number and trials.
func TestPool_SuggestProposesInTheSpaceRepeatably(t *testing.T) {
	p, _ := startPool(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	prop := experiment.Proposal{
		Space: []experiment.Dimension{
			{Name: "depth", Kind: experiment.Integer, Low: 2, High: 8, Prior: experiment.Uniform},
			{Name: "lr", Kind: experiment.Real, Low: 1e-4, High: 1e-1, Prior: experiment.LogUniform},
			{Name: "kind", Kind: experiment.Categorical, Categories: []any{"gini", "entropy", int64(3)}},
		},
		Trials: []experiment.Observation{
			{Params: map[string]any{"depth": int64(3), "lr": 0.01, "kind": "gini"}, State: experiment.TrialSucceeded, Value: 0.5},
			{Params: map[string]any{"depth": float64(5), "lr": 0.001, "kind": "entropy"}, State: experiment.TrialFailed},
			{Params: map[string]any{"depth": int64(7), "lr": 0.05, "kind": int64(3)}, State: experiment.TrialRunning},
		},
		Number: 3, Seed: 11, NTrials: 10, Direction: experiment.Minimize, Sampler: experiment.TPE,
	}
	got, err := p.Suggest(ctx, prop)
	if err != nil {
		t.Fatal(err)
	}
	depth, ok := got["depth"].(int64)
	if !ok || depth < 2 || depth > 8 {
		t.Errorf("depth %#v; want a whole number from 2 to 8", got["depth"])
	}
	if lr, ok := got["lr"].(float64); !ok || lr < 1e-4 || lr > 1e-1 {
		t.Errorf("lr %#v; want a float from 1e-4 to 0.1", got["lr"])
	}
	switch got["kind"] {
	case "gini", "entropy", int64(3):
	default:
		t.Errorf("kind %#v; want one of the categories", got["kind"])
	}
	again, err := p.Suggest(ctx, prop)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, again) {
		t.Errorf("the same proposal twice gave %v and %v", got, again)
	}
}
