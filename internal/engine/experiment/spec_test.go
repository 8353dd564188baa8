package experiment

import (
	"reflect"
	"strings"
	"testing"

	"github.com/tauro-exec/tauro-exec/internal/engine/config"
	"github.com/tauro-exec/tauro-exec/internal/engine/problem"
)

func TestParseDimension_ReadsTaurosShapes(t *testing.T) {
	cases := []struct {
		in   any
		name string
		want Dimension
	}{
		{"Real(0.001, 0.1, prior='log-uniform', name='learning_rate')", "",
			Dimension{Name: "learning_rate", Kind: Real, Low: 0.001, High: 0.1, Prior: LogUniform}},
		{`skopt.space.Integer(3, 10, name="max_depth")`, "", Dimension{Name: "max_depth", Kind: Integer, Low: 3, High: 10}},
		{"Real(-5, 5, 'uniform')", "x", Dimension{Name: "x", Kind: Real, Low: -5, High: 5, Prior: Uniform}},
		{"Categorical(['gini', \"entropy\"], name='criterion')", "", Dimension{Name: "criterion", Kind: Categorical, Categories: []any{"gini", "entropy"}}},
		{[]any{int64(2), int64(8)}, "depth", Dimension{Name: "depth", Kind: Integer, Low: 2, High: 8}},
		{[]any{1e-4, 1e-1, "log-uniform"}, "lr", Dimension{Name: "lr", Kind: Real, Low: 1e-4, High: 1e-1, Prior: LogUniform}},
		{[]any{"a", "b", "c"}, "k", Dimension{Name: "k", Kind: Categorical, Categories: []any{"a", "b", "c"}}},
	}
	for _, c := range cases {
		var probs problem.List
		got := ParseDimension(c.in, c.name, "space[0]", &probs)
		if len(probs) > 0 {
			t.Errorf("%v: %v", c.in, probs)
			continue
		}
		if got.Name != c.want.Name || got.Kind != c.want.Kind || got.Low != c.want.Low || got.High != c.want.High ||
			got.Prior != c.want.Prior || len(got.Categories) != len(c.want.Categories) {
			t.Errorf("%v: got %+v, want %+v", c.in, got, c.want)
		}
	}
}

func TestParseDimension_NamesWhatItCannotRead(t *testing.T) {
	for in, want := range map[string]string{
		"Uniform(0, 1)":               "is not a dimension",
		"Real(0, 1, scale=2)":         `Real has no argument "scale"`,
		"Real(0, name='x')":           "Real needs high",
		"Categorical('a', name='k')":  "categories as a list",
		"Real(0, 1, name=x)":          "quote strings",
		"Real(0, 1) + 2":              "unexpected text",
		"Integer(0, 'ten', name='n')": "high must be a number",
	} {
		var probs problem.List
		ParseDimension(in, "", "space[2]", &probs)
		if len(probs) != 1 || probs[0].Field != "space[2]" || !strings.Contains(probs[0].Message, want) {
			t.Errorf("%s: got %v, want a problem at space[2] saying %q", in, probs, want)
		}
	}
}

func TestCheck_NamesEachFieldAndTheFix(t *testing.T) {
	s := Spec{Pipeline: "p", Objective: Objective{Metric: "loss"}, Hyperparams: map[string]any{"y": 1}, Space: []Dimension{
		{Name: "a", Kind: Real, Low: 5, High: 1},
		{Name: "b", Kind: Real, Low: 0, High: 1, Prior: LogUniform},
		{Name: "c", Kind: Real, Low: 0, High: 1, Prior: "normal"},
		{Name: "d", Kind: Categorical},
		{Name: "a", Kind: Integer, Low: 0.5, High: 3},
		{Name: "y", Kind: "float-ish", Low: 0, High: 1},
	}}
	s.Defaults()
	s.NTrials, s.MaxParallel = 0, 0
	got := map[string]string{}
	for _, p := range s.Check("") {
		got[p.Field] += p.Message + "|"
	}
	for field, want := range map[string]string{
		"n_trials":            "from 1 to",
		"max_parallel_trials": "from 1 to",
		"space[0].low":        "must be below high",
		"space[1].low":        "log-uniform prior needs low > 0",
		"space[2].prior":      "uniform or log-uniform",
		"space[3].categories": "at least one value",
		"space[4]":            "whole bounds",
		"space[4].name":       "also space[0]",
		"space[5].kind":       "real, integer or categorical",
		"hyperparams.y":       "both searched",
	} {
		if !strings.Contains(got[field], want) {
			t.Errorf("%s: got %q, want it to say %q (all: %v)", field, got[field], want, got)
		}
	}
}

func TestDeclared_ReadsAnExperimentAndMergeLaysARequestOverIt(t *testing.T) {
	space := config.NewMap()
	space.Set("x", "Real(-5, 5)")
	space.Set("depth", []any{int64(1), int64(4)})
	m := config.NewMap()
	m.Set("pipeline", "toy")
	m.Set("space", space)
	m.Set("objective", "loss")
	m.Set("n_calls", int64(12))
	m.Set("random_state", int64(42))
	exps := config.NewMap()
	exps.Set("quad", m)
	s, ok, probs := Declared(exps, "quad")
	if !ok || len(probs) > 0 {
		t.Fatalf("declared: %v %v", ok, probs)
	}
	if s.Pipeline != "toy" || len(s.Space) != 2 || s.Space[0].Name != "x" || s.Space[1].Kind != Integer || s.NTrials != 12 || s.Seed != 42 || s.Objective.Metric != "loss" {
		t.Fatalf("got %+v", s)
	}
	merged := s.Merge(Spec{NTrials: 3, Seed: 0}, true)
	if merged.NTrials != 3 || merged.Seed != 0 || merged.Pipeline != "toy" {
		t.Errorf("merged %+v", merged)
	}
	if _, ok, _ := Declared(exps, "nope"); ok {
		t.Error("an undeclared experiment was found")
	}
}

func TestDeclared_HyperparamsAreHandedOnAsPlainValuesAtEveryDepth(t *testing.T) {
	layer := config.NewMap()
	layer.Set("units", int64(64))
	hp := config.NewMap()
	hp.Set("layers", []any{layer, []any{layer}})
	m := config.NewMap()
	m.Set("pipeline", "toy")
	m.Set("hyperparams", hp)
	exps := config.NewMap()
	exps.Set("deep", m)

	s, _, probs := Declared(exps, "deep")
	if len(probs) > 0 {
		t.Fatalf("declared: %v", probs)
	}
	want := map[string]any{"layers": []any{
		map[string]any{"units": int64(64)},
		[]any{map[string]any{"units": int64(64)}},
	}}
	if !reflect.DeepEqual(s.Hyperparams, want) {
		t.Errorf("hyperparams = %#v, want plain maps and lists %#v", s.Hyperparams, want)
	}
}
