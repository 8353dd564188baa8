package plan

import (
	"testing"

	"github.com/tauro-exec/tauro-exec/internal/engine/config"
	"github.com/tauro-exec/tauro-exec/internal/engine/problem"
)

// FuzzResolve feeds arbitrary YAML as the pipelines and nodes configuration.
// Resolve must never panic, must fail only with problems that carry a code,
// and when it succeeds its plan must be a real topological order.
func FuzzResolve(f *testing.F) {
	f.Add("p: {nodes: [a, b]}", "a: {function: m.f}\nb: {function: m.f, dependencies: a}", "p", "+b")
	f.Add("p: {type: hybrid, nodes: [a, {name: b, retries: 2}, {c: {}}]}",
		"a: {function: m.f, output: [x.y.z]}\nb: {sql: select 1, input: [x/y/z]}\nc: {input: {format: kafka}, output: {format: console}, streaming: {trigger: {type: continuous, interval: 1 second}}}",
		"p", "a+")
	f.Add("p: {nodes: [a, b, c]}", "a: {function: m.f, dependencies: [c]}\nb: {function: m.f, dependencies: [{a: {}}, 5, null]}\nc: [b]", "p", "")
	f.Add("p: {type: streaming, nodes: [s]}", "s: {input: [k], output: [a.b.c], streaming: true}", "p", "++")
	f.Add("p: x", "{}", "p", "")
	f.Add("p: {nodes: &n [a, *n]}", "a: {module: ..., function: 7}", "q", "a")
	f.Fuzz(func(t *testing.T, pipelines, nodes, name, sel string) {
		p := &config.Project{Global: config.NewMap(), Pipelines: asMap(pipelines), Nodes: asMap(nodes),
			Inputs: config.NewMap(), Outputs: config.NewMap()}
		p.Inputs.Set("k", mapOf("format", "kafka"))
		p.Outputs.Set("a.b.c", mapOf("format", "delta"))
		p.Outputs.Set("x.y.z", mapOf("format", "parquet"))
		reqs := []Request{{Pipeline: name, Select: []string{sel}}}
		for _, k := range p.Pipelines.Keys {
			reqs = append(reqs, Request{Pipeline: k, StartDate: "2025-01-01", EndDate: "2025-01-02"})
		}
		for _, req := range reqs {
			pl, err := Resolve(p, req)
			if err != nil {
				l, ok := problem.From(err)
				if !ok || len(l) == 0 {
					t.Fatalf("error without problems: %v", err)
				}
				for _, pr := range l {
					if pr.Code == "" || pr.Message == "" {
						t.Fatalf("problem without code or message: %+v", pr)
					}
				}
				continue
			}
			checkPlan(t, pl)
		}
	})
}

func asMap(doc string) *config.Map {
	v, err := config.Parse([]byte(doc))
	if m, ok := v.(*config.Map); ok && err == nil {
		return m
	}
	return config.NewMap()
}

func mapOf(k string, v any) *config.Map {
	m := config.NewMap()
	m.Set(k, v)
	return m
}

// checkPlan verifies a plan's invariants: every node once in the order,
// after its dependencies; stages partition the nodes by chain length.
func checkPlan(t *testing.T, pl *Pipeline) {
	t.Helper()
	pos := make(map[string]int, len(pl.Plan.Order))
	for i, n := range pl.Plan.Order {
		if _, dup := pos[n]; dup {
			t.Fatalf("%s twice in order %q", n, pl.Plan.Order)
		}
		pos[n] = i
	}
	if len(pos) != len(pl.Nodes) {
		t.Fatalf("order %q does not match nodes %q", pl.Plan.Order, names(pl.Nodes))
	}
	stage := map[string]int{}
	total := 0
	for s, nodes := range pl.Plan.Stages {
		for _, n := range nodes {
			stage[n] = s
			total++
		}
	}
	if total != len(pl.Nodes) {
		t.Fatalf("stages %q do not partition %q", pl.Plan.Stages, names(pl.Nodes))
	}
	for _, n := range pl.Nodes {
		if _, ok := pos[n.Name]; !ok {
			t.Fatalf("node %s missing from order", n.Name)
		}
		for _, d := range n.Dependencies {
			if pos[d] >= pos[n.Name] {
				t.Fatalf("%s runs before its dependency %s: %q", n.Name, d, pl.Plan.Order)
			}
			if stage[d] >= stage[n.Name] {
				t.Fatalf("%s in stage %d, its dependency %s in %d", n.Name, stage[n.Name], d, stage[d])
			}
		}
	}
	if len(pl.Plan.Batch)+len(pl.Plan.Streaming) != len(pl.Nodes) {
		t.Fatalf("batch %q + streaming %q != nodes", pl.Plan.Batch, pl.Plan.Streaming)
	}
}
