package plan

import (
	"slices"
	"strings"
	"testing"

	"github.com/tauro-exec/tauro-exec/internal/engine/config"
	"github.com/tauro-exec/tauro-exec/internal/engine/problem"
)

// project builds a Project from one YAML document whose top-level keys are
// global_settings, pipelines, nodes, input and output.
func project(t testing.TB, doc string) *config.Project {
	t.Helper()
	v, err := config.Parse([]byte(doc))
	if err != nil {
		t.Fatalf("parse test project: %v", err)
	}
	m, _ := v.(*config.Map)
	part := func(key string) *config.Map {
		if e, ok := m.Get(key); ok && e != nil {
			pm, ok := e.(*config.Map)
			if !ok {
				t.Fatalf("test project: %s is not a mapping", key)
			}
			return pm
		}
		return config.NewMap()
	}
	return &config.Project{
		Env: "dev", EnvUsed: "dev",
		Global:    part("global_settings"),
		Pipelines: part("pipelines"),
		Nodes:     part("nodes"),
		Inputs:    part("input"),
		Outputs:   part("output"),
	}
}

// dated is a request with valid dates.
func dated(pipeline string, sel ...string) Request {
	return Request{Pipeline: pipeline, StartDate: "2025-01-01", EndDate: "2025-01-31", Select: sel}
}

// problems returns the problems of err, failing the test if err carries none.
func problems(t testing.TB, err error) problem.List {
	t.Helper()
	if err == nil {
		t.Fatal("Resolve succeeded; want problems")
	}
	l, ok := problem.From(err)
	if !ok {
		t.Fatalf("error %v carries no problems", err)
	}
	return l
}

// mustResolve resolves and fails the test on any problem.
func mustResolve(t testing.TB, p *config.Project, req Request) *Pipeline {
	t.Helper()
	pl, err := Resolve(p, req)
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	return pl
}

// find returns the first problem with code (and field, if not empty).
func find(l problem.List, code, field string) (problem.Problem, bool) {
	for _, p := range l {
		if p.Code == code && (field == "" || p.Field == field) {
			return p, true
		}
	}
	return problem.Problem{}, false
}

// wantProblem fails unless l holds a problem with code at field whose
// message contains text (case-insensitive).
func wantProblem(t testing.TB, l problem.List, code, field, text string) {
	t.Helper()
	for _, p := range l {
		if p.Code == code && (field == "" || p.Field == field) &&
			strings.Contains(strings.ToLower(p.Message), strings.ToLower(text)) {
			return
		}
	}
	t.Errorf("no problem %s at %q containing %q; got:\n%s", code, field, text, dump(l))
}

func dump(l problem.List) string {
	var b strings.Builder
	for _, p := range l {
		b.WriteString("  " + p.Code + " " + p.Field + ": " + p.Message + "\n")
	}
	return b.String()
}

func names(nodes []*Node) []string {
	out := make([]string, len(nodes))
	for i, n := range nodes {
		out[i] = n.Name
	}
	return out
}

func equal(a, b []string) bool { return slices.Equal(a, b) || (len(a) == 0 && len(b) == 0) }
