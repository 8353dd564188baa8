package engine

import (
	"slices"
	"testing"

	"github.com/tauro-exec/tauro-exec/internal/engine/config"
	"github.com/tauro-exec/tauro-exec/internal/engine/plan"
	"github.com/tauro-exec/tauro-exec/internal/engine/run"
)

func mustMap(t *testing.T, src string) *config.Map {
	t.Helper()
	v, err := config.Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	m, ok := v.(*config.Map)
	if !ok {
		t.Fatalf("not a mapping: %s", src)
	}
	return m
}

// diamond: a -> b, a -> c, b -> d, c -> d, and an independent e. Every
// node but c writes an output.
func diamond(t *testing.T) *plan.Pipeline {
	t.Helper()
	proj := &config.Project{
		Env:       "dev",
		Global:    mustMap(t, `{start_date: "2025-01-01", end_date: "2025-01-02"}`),
		Pipelines: mustMap(t, `{p: {nodes: [d, c, b, a, e]}}`),
		Nodes: mustMap(t, `{
a: {sql: "SELECT 1", output: [s.t.a]},
b: {sql: "SELECT 1", dependencies: a, output: [s.t.b]},
c: {sql: "SELECT 1", dependencies: a},
d: {sql: "SELECT 1", dependencies: [b, c], output: [s.t.d]},
e: {sql: "SELECT 1", output: [s.t.e]}}`),
		Inputs:  config.NewMap(),
		Outputs: mustMap(t, `{s.t.a: {format: parquet}, s.t.b: {format: parquet}, s.t.d: {format: parquet}, s.t.e: {format: parquet}}`),
	}
	p, err := plan.Resolve(proj, plan.Request{Pipeline: "p"})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRepairSet_RerunsWhatDidNotSucceedAndEverythingDownstream(t *testing.T) {
	p := diamond(t)
	cases := []struct {
		name   string
		states map[string]run.NodeState
		want   []string
	}{
		{"failed leaf reruns with the upstream that stored nothing", map[string]run.NodeState{"a": run.NodeSucceeded, "b": run.NodeSucceeded, "c": run.NodeSucceeded, "d": run.NodeFailed, "e": run.NodeSucceeded}, []string{"c", "d"}},
		{"failed middle and its skipped dependent", map[string]run.NodeState{"a": run.NodeSucceeded, "b": run.NodeFailed, "c": run.NodeSucceeded, "d": run.NodeSkipped, "e": run.NodeSucceeded}, []string{"b", "c", "d"}},
		{"cancelled root reruns everything under it", map[string]run.NodeState{"a": run.NodeCancelled, "b": run.NodeCancelled, "c": run.NodeCancelled, "d": run.NodeCancelled, "e": run.NodeSucceeded}, []string{"a", "b", "c", "d"}},
		{"timed out independent node alone", map[string]run.NodeState{"a": run.NodeSucceeded, "b": run.NodeSucceeded, "c": run.NodeSucceeded, "d": run.NodeSucceeded, "e": run.NodeTimedOut}, []string{"e"}},
		{"interrupted while running", map[string]run.NodeState{"a": run.NodeSucceeded, "b": run.NodeRunning, "c": run.NodeSucceeded, "d": run.NodePending, "e": run.NodeSucceeded}, []string{"b", "c", "d"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := run.Run{}
			for _, n := range []string{"d", "c", "b", "a", "e"} {
				r.Nodes = append(r.Nodes, run.Node{Name: n, State: tc.states[n]})
			}
			set := RepairSet(p, r)
			var got []string
			for n := range set {
				got = append(got, n)
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("repair set %v, want %v", got, tc.want)
			}
		})
	}
}

func TestNewRunID_IsUniqueAndSortsByCreation(t *testing.T) {
	seen := map[string]bool{}
	prev := ""
	for i := 0; i < 1000; i++ {
		id := newRunID()
		if seen[id] {
			t.Fatalf("duplicate id %s", id)
		}
		seen[id] = true
		// "run-" and 9 characters hold the 45 high bits of the milliseconds.
		if prev != "" && id[:13] < prev[:13] {
			t.Fatalf("id %s sorts before the earlier %s", id, prev)
		}
		prev = id
	}
}
