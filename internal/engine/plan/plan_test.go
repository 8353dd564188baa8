package plan

import (
	"fmt"
	"strings"
	"testing"

	"github.com/tauro-exec/tauro-exec/internal/engine/config"
	"github.com/tauro-exec/tauro-exec/internal/engine/problem"
)

// shopProject is a graph with fan-out and fan-in:
//
//	extract -> clean -> enrich -> load
//	        \-> audit           /
//	dims --------------------- /
const shopProject = `
pipelines:
  shop:
    requires_dates: false
    nodes: [extract, dims, clean, audit, enrich, load, notify]
nodes:
  extract: {function: m.f}
  dims:    {function: m.f}
  clean:   {function: m.f, dependencies: [extract]}
  audit:   {function: m.f, dependencies: [extract]}
  enrich:  {function: m.f, dependencies: [clean]}
  load:    {function: m.f, dependencies: [enrich, dims]}
  notify:  {function: m.f, dependencies: [load]}
`

func TestPlan_StagesAndCriticalPath(t *testing.T) {
	pl := mustResolve(t, project(t, shopProject), Request{Pipeline: "shop"})
	want := [][]string{{"extract", "dims"}, {"clean", "audit"}, {"enrich"}, {"load"}, {"notify"}}
	if fmt.Sprint(pl.Plan.Stages) != fmt.Sprint(want) {
		t.Errorf("stages %q; want %q", pl.Plan.Stages, want)
	}
	if !equal(pl.Plan.CriticalPath, []string{"extract", "clean", "enrich", "load", "notify"}) {
		t.Errorf("critical path %q", pl.Plan.CriticalPath)
	}
	if !equal(pl.Plan.Order, []string{"extract", "dims", "clean", "audit", "enrich", "load", "notify"}) {
		t.Errorf("order %q", pl.Plan.Order)
	}
}

func TestPlan_CriticalPathTiesGoToTheFirstDeclared(t *testing.T) {
	pl := mustResolve(t, project(t, `
pipelines:
  p: {requires_dates: false, nodes: [a, b, c, d]}
nodes:
  a: {function: m.f}
  b: {function: m.f}
  c: {function: m.f, dependencies: [b, a]}
  d: {function: m.f, dependencies: [b]}
`), Request{Pipeline: "p"})
	if !equal(pl.Plan.CriticalPath, []string{"a", "c"}) {
		t.Errorf("critical path %q; want [a c]", pl.Plan.CriticalPath)
	}
}

func TestPlan_OrderIsTheSameOnEveryRun(t *testing.T) {
	p := project(t, shopProject)
	first := mustResolve(t, p, Request{Pipeline: "shop"}).Plan
	for range 50 {
		if got := mustResolve(t, p, Request{Pipeline: "shop"}).Plan; fmt.Sprint(got) != fmt.Sprint(first) {
			t.Fatalf("plan changed between runs:\n%v\n%v", first, got)
		}
	}
}

func TestPlan_Selection(t *testing.T) {
	for _, tc := range []struct {
		sel   []string
		nodes []string
		deps  map[string][]string // dependencies kept in the run graph
	}{
		{sel: []string{"enrich"}, nodes: []string{"enrich"}, deps: map[string][]string{"enrich": nil}},
		{sel: []string{"+enrich"}, nodes: []string{"extract", "clean", "enrich"}, deps: map[string][]string{"clean": {"extract"}}},
		{sel: []string{"clean+"}, nodes: []string{"clean", "enrich", "load", "notify"}, deps: map[string][]string{"clean": nil, "load": {"enrich"}}},
		{sel: []string{"+load+"}, nodes: []string{"extract", "dims", "clean", "enrich", "load", "notify"}, deps: map[string][]string{"load": {"dims", "enrich"}}},
		{sel: []string{"audit", "dims+"}, nodes: []string{"dims", "audit", "load", "notify"}, deps: map[string][]string{"audit": nil, "load": {"dims"}}},
		{sel: []string{" notify ", "notify"}, nodes: []string{"notify"}},
	} {
		t.Run(strings.Join(tc.sel, ","), func(t *testing.T) {
			pl := mustResolve(t, project(t, shopProject), Request{Pipeline: "shop", Select: tc.sel})
			if got := names(pl.Nodes); !equal(got, tc.nodes) {
				t.Fatalf("selected %q; want %q", got, tc.nodes)
			}
			if len(pl.Plan.Order) != len(tc.nodes) {
				t.Errorf("order %q", pl.Plan.Order)
			}
			for _, n := range pl.Nodes {
				if want, ok := tc.deps[n.Name]; ok && !equal(n.Dependencies, want) {
					t.Errorf("%s depends on %q; want %q", n.Name, n.Dependencies, want)
				}
			}
		})
	}
}

func TestPlan_SelectionIsReplannedOnTheSelectedNodes(t *testing.T) {
	// With c's dependency on x dropped, c is ready at once and, declared
	// first, runs first; filtering the full order would have put b first.
	pl := mustResolve(t, project(t, `
pipelines:
  p: {requires_dates: false, nodes: [c, b, x]}
nodes:
  c: {function: m.f, dependencies: [x]}
  b: {function: m.f}
  x: {function: m.f}
`), Request{Pipeline: "p", Select: []string{"c", "b"}})
	if !equal(pl.Plan.Order, []string{"c", "b"}) {
		t.Errorf("order %q; want [c b]", pl.Plan.Order)
	}
}

func TestPlan_InvalidSelectors(t *testing.T) {
	_, err := Resolve(project(t, shopProject), Request{Pipeline: "shop", Select: []string{"load", "nope+", "+", "++"}})
	l := problems(t, err)
	wantProblem(t, l, problem.CodeInvalidSelector, "select[1]", "no node 'nope'")
	wantProblem(t, l, problem.CodeInvalidSelector, "select[2]", "names no node")
	wantProblem(t, l, problem.CodeInvalidSelector, "select[3]", "names no node")
	if len(l) != 3 {
		t.Errorf("want three problems; got:\n%s", dump(l))
	}
}

// chainProject is a pipeline of n nodes, each depending on the previous;
// with loop the first depends on the last.
func chainProject(n int, loop bool) *config.Project {
	p := &config.Project{Global: config.NewMap(), Pipelines: config.NewMap(), Nodes: config.NewMap(),
		Inputs: config.NewMap(), Outputs: config.NewMap()}
	list := make([]any, n)
	for i := range n {
		name := fmt.Sprintf("n%d", i)
		list[i] = name
		m := config.NewMap()
		m.Set("function", "m.f")
		switch {
		case i > 0:
			m.Set("dependencies", fmt.Sprintf("n%d", i-1))
		case loop:
			m.Set("dependencies", fmt.Sprintf("n%d", n-1))
		}
		p.Nodes.Set(name, m)
	}
	pipe := config.NewMap()
	pipe.Set("nodes", list)
	pipe.Set("requires_dates", false)
	p.Pipelines.Set("p", pipe)
	return p
}

func TestPlan_DeepChainsDoNotExhaustTheStack(t *testing.T) {
	const n = 100_000
	pl := mustResolve(t, chainProject(n, false), Request{Pipeline: "p", Select: []string{"+n99999+"}})
	if len(pl.Plan.Order) != n || len(pl.Plan.Stages) != n || len(pl.Plan.CriticalPath) != n {
		t.Fatalf("order %d stages %d critical path %d; want %d each", len(pl.Plan.Order), len(pl.Plan.Stages), len(pl.Plan.CriticalPath), n)
	}

	_, err := Resolve(chainProject(n, true), Request{Pipeline: "p"})
	l := problems(t, err)
	if len(l) != 1 || l[0].Code != problem.CodeCycle || !strings.HasPrefix(l[0].Message, "dependency cycle: n0 -> n99999 -> n99998") {
		t.Fatalf("want one cycle problem; got %.300s", l.Error())
	}
}

func TestPlan_CycleReportsTheCycleNotItsDownstream(t *testing.T) {
	_, err := Resolve(project(t, `
pipelines:
  p: {requires_dates: false, nodes: [c, start, a, b]}
nodes:
  c: {function: m.f, dependencies: [b]}
  start: {function: m.f}
  a: {function: m.f, dependencies: [start, b]}
  b: {function: m.f, dependencies: [a]}
`), Request{Pipeline: "p"})
	l := problems(t, err)
	if len(l) != 1 {
		t.Fatalf("want one problem; got:\n%s", dump(l))
	}
	wantProblem(t, l, problem.CodeCycle, "nodes.a.dependencies[1]", "dependency cycle: a -> b -> a")
}
