package storetest

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/tauro-exec/tauro-exec/internal/engine/experiment"
	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	"github.com/tauro-exec/tauro-exec/internal/engine/store"
)

// projectRun is NewRun of project, with requestID when not "".
func projectRun(id, project, requestID string) run.Run {
	r := NewRun(id, "p", "a")
	r.Params.Project, r.RequestID = project, requestID
	return r
}

// projectExperiment is NewExperiment of project, with requestID when not
// "".
func projectExperiment(id, project, requestID string) experiment.Record {
	x := NewExperiment(id)
	x.Spec.Project, x.RequestID = project, requestID
	return x
}

// failedRun creates a run of project that has FAILED, to repair.
func failedRun(t *testing.T, s store.Store, id, project string) {
	t.Helper()
	Create(t, s, projectRun(id, project, ""))
	AppendOK(t, s, id, RunState(run.Failed, "x"))
}

func testProjects_ARunAndAnExperimentReadTheirProjectBack(t *testing.T, f Factory) {
	s, _ := f.open(t)
	ctx := context.Background()
	stored := Create(t, s, projectRun("r1", "sales", "req"))
	byReq, err := s.RunByRequestID(ctx, "sales", "req")
	if err != nil {
		t.Fatal(err)
	}
	listed, _, err := s.ListRuns(ctx, store.ListFilter{}, 0, "")
	if err != nil || len(listed) != 1 {
		t.Fatalf("ListRuns = %d runs, %v", len(listed), err)
	}
	for name, r := range map[string]run.Run{"CreateRun": stored, "GetRun": Get(t, s, "r1"), "RunByRequestID": byReq, "ListRuns": listed[0]} {
		if r.Params.Project != "sales" {
			t.Errorf("%s: project %q; want sales", name, r.Params.Project)
		}
	}

	x, _, err := s.CreateExperiment(ctx, projectExperiment("x1", "sales", "req"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.GetExperiment(ctx, "x1")
	if err != nil {
		t.Fatal(err)
	}
	xs, _, err := s.ListExperiments(ctx, store.ListFilter{}, 0, "")
	if err != nil || len(xs) != 1 {
		t.Fatalf("ListExperiments = %d experiments, %v", len(xs), err)
	}
	for name, x := range map[string]experiment.Record{"CreateExperiment": x, "GetExperiment": got, "ListExperiments": xs[0]} {
		if x.Spec.Project != "sales" {
			t.Errorf("%s: project %q; want sales", name, x.Spec.Project)
		}
	}
}

func testProjects_ARequestIDIsUniquePerProject(t *testing.T, f Factory) {
	s, _ := f.open(t)
	ctx := context.Background()
	Create(t, s, projectRun("a1", "a", "req"))
	Create(t, s, projectRun("b1", "b", "req")) // another project: another run
	for _, tt := range []struct{ project, again, want string }{{"a", "a2", "a1"}, {"b", "b2", "b1"}} {
		stored, created, err := s.CreateRun(ctx, projectRun(tt.again, tt.project, "req"))
		if err != nil || created || stored.ID != tt.want {
			t.Errorf("CreateRun repeated in %s = %s, created %v, %v; want %s", tt.project, stored.ID, created, err, tt.want)
		}
		if r, err := s.RunByRequestID(ctx, tt.project, "req"); err != nil || r.ID != tt.want {
			t.Errorf("RunByRequestID(%s) = %s, %v; want %s", tt.project, r.ID, err, tt.want)
		}
	}
	if _, err := s.RunByRequestID(ctx, "", "req"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RunByRequestID of a project that never used the id: %v; want ErrNotFound", err)
	}

	for _, id := range []string{"xa", "xb"} {
		if _, created, err := s.CreateExperiment(ctx, projectExperiment(id, id[1:], "req")); err != nil || !created {
			t.Fatalf("CreateExperiment(%s) = created %v, %v", id, created, err)
		}
	}
	for _, tt := range []struct{ project, again, want string }{{"a", "xa2", "xa"}, {"b", "xb2", "xb"}} {
		stored, created, err := s.CreateExperiment(ctx, projectExperiment(tt.again, tt.project, "req"))
		if err != nil || created || stored.ID != tt.want {
			t.Errorf("CreateExperiment repeated in %s = %s, created %v, %v; want %s", tt.project, stored.ID, created, err, tt.want)
		}
		if x, err := s.ExperimentByRequestID(ctx, tt.project, "req"); err != nil || x.ID != tt.want {
			t.Errorf("ExperimentByRequestID(%s) = %s, %v; want %s", tt.project, x.ID, err, tt.want)
		}
	}
	if _, err := s.ExperimentByRequestID(ctx, "c", "req"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ExperimentByRequestID of a project that never used the id: %v; want ErrNotFound", err)
	}
}

func testPrepareRepair_ARequestIDIsPerProject(t *testing.T, f Factory) {
	s, _ := f.open(t)
	ctx := context.Background()
	failedRun(t, s, "a1", "a")
	failedRun(t, s, "a2", "a")
	failedRun(t, s, "b1", "b")
	for _, id := range []string{"a1", "b1"} {
		if _, repeated, err := s.PrepareRepair(ctx, id, []string{"a"}, "fix", ""); err != nil || repeated {
			t.Fatalf("PrepareRepair(%s, fix) = repeated %v, %v; want a repair", id, repeated, err)
		}
	}
	if r, repeated, err := s.PrepareRepair(ctx, "a1", []string{"a"}, "fix", ""); err != nil || !repeated || r.RepairCount != 1 {
		t.Errorf("PrepareRepair(a1, fix) again = repeated %v, repairs %d, %v; want the first repair", repeated, r.RepairCount, err)
	}
	if _, _, err := s.PrepareRepair(ctx, "a2", []string{"a"}, "fix", ""); !errors.Is(err, store.ErrAlreadyExists) {
		t.Errorf("the id of a1's repair for a2 of the same project: %v; want ErrAlreadyExists", err)
	}
	for project, want := range map[string]string{"a": "a1", "b": "b1"} {
		if id, err := s.RepairRequest(ctx, project, "fix"); err != nil || id != want {
			t.Errorf("RepairRequest(%s, fix) = %q, %v; want %s", project, id, err, want)
		}
	}
	if _, err := s.RepairRequest(ctx, "", "fix"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RepairRequest of a project that never used the id: %v; want ErrNotFound", err)
	}
}

// projectsFixture creates, a millisecond apart, runs and experiments
// r0/x0 to r5/x5 of projects a, b, a, c, "", b.
func projectsFixture(t *testing.T, s store.Store) {
	t.Helper()
	for i, p := range []string{"a", "b", "a", "c", "", "b"} {
		id := string(rune('0' + i))
		Create(t, s, projectRun("r"+id, p, ""))
		if _, _, err := s.CreateExperiment(context.Background(), projectExperiment("x"+id, p, "")); err != nil {
			t.Fatal(err)
		}
	}
}

// listExperiments pages through ListExperiments and returns the ids in
// order.
func listExperiments(t *testing.T, s store.Store, f store.ListFilter, pageSize int) []string {
	t.Helper()
	var ids []string
	token := ""
	for range 100 {
		page, next, err := s.ListExperiments(context.Background(), f, pageSize, token)
		if err != nil {
			t.Fatalf("ListExperiments: %v", err)
		}
		for _, x := range page {
			ids = append(ids, x.ID)
		}
		if token = next; token == "" {
			return ids
		}
	}
	t.Fatal("pagination does not end")
	return nil
}

func testList_FiltersRunsAndExperimentsByProjects(t *testing.T, f Factory) {
	s, _ := f.open(t, WithClock(newClock().Now))
	projectsFixture(t, s)
	tests := []struct {
		name   string
		filter store.ListFilter
		want   string // the ids' digits, newest first
	}{
		{"nil lists every project's", store.ListFilter{}, "543210"},
		{"one", store.ListFilter{Projects: []string{"a"}}, "20"},
		{"two", store.ListFilter{Projects: []string{"c", "a"}}, "320"},
		{"a project named twice", store.ListFilter{Projects: []string{"b", "b"}}, "51"},
		{"the unnamed", store.ListFilter{Projects: []string{""}}, "4"},
		{"an empty list lists none", store.ListFilter{Projects: []string{}}, ""},
		{"a project with none", store.ListFilter{Projects: []string{"nope"}}, ""},
		{"with a pipeline", store.ListFilter{Projects: []string{"a"}, Pipeline: "nope"}, ""},
	}
	ids := func(prefix, digits string) []string {
		var out []string
		for _, d := range digits {
			out = append(out, prefix+string(d))
		}
		return out
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, _ := listAll(t, s, tt.filter, 1); !slices.Equal(got, ids("r", tt.want)) {
				t.Errorf("runs = %v; want %v", got, ids("r", tt.want))
			}
			if got := listExperiments(t, s, tt.filter, 1); !slices.Equal(got, ids("x", tt.want)) {
				t.Errorf("experiments = %v; want %v", got, ids("x", tt.want))
			}
		})
	}
}

func testList_RefusesATokenMadeForOtherProjects(t *testing.T, f Factory) {
	s, _ := f.open(t, WithClock(newClock().Now))
	projectsFixture(t, s)
	ctx := context.Background()
	ab := store.ListFilter{Projects: []string{"a", "b"}}
	_, runToken, err := s.ListRuns(ctx, ab, 1, "")
	if err != nil || runToken == "" {
		t.Fatalf("ListRuns = %q, %v", runToken, err)
	}
	_, expToken, err := s.ListExperiments(ctx, ab, 1, "")
	if err != nil || expToken == "" {
		t.Fatalf("ListExperiments = %q, %v", expToken, err)
	}
	_, allToken, err := s.ListRuns(ctx, store.ListFilter{}, 1, "")
	if err != nil || allToken == "" {
		t.Fatalf("ListRuns = %q, %v", allToken, err)
	}
	// The same projects in another order are the same filter.
	same := store.ListFilter{Projects: []string{"b", "a", "b"}}
	if _, _, err := s.ListRuns(ctx, same, 1, runToken); err != nil {
		t.Errorf("a runs token refused for the same projects: %v", err)
	}
	if _, _, err := s.ListExperiments(ctx, same, 1, expToken); err != nil {
		t.Errorf("an experiments token refused for the same projects: %v", err)
	}
	for name, tt := range map[string]struct {
		f     store.ListFilter
		token string
	}{
		"one of them":        {store.ListFilter{Projects: []string{"a"}}, runToken},
		"others":             {store.ListFilter{Projects: []string{"a", "c"}}, runToken},
		"every project":      {store.ListFilter{}, runToken},
		"made for every one": {ab, allToken},
		"the unnamed":        {store.ListFilter{Projects: []string{""}}, allToken},
	} {
		t.Run(name, func(t *testing.T) {
			if _, _, err := s.ListRuns(ctx, tt.f, 1, tt.token); !errors.Is(err, store.ErrBadPageToken) {
				t.Errorf("ListRuns: err = %v; want ErrBadPageToken", err)
			}
		})
	}
	if _, _, err := s.ListExperiments(ctx, store.ListFilter{Projects: []string{"a"}}, 1, expToken); !errors.Is(err, store.ErrBadPageToken) {
		t.Errorf("ListExperiments with one of the token's projects: err = %v; want ErrBadPageToken", err)
	}
	if _, _, err := s.ListExperiments(ctx, ab, 1, runToken); !errors.Is(err, store.ErrBadPageToken) {
		t.Errorf("ListExperiments with a token of ListRuns: err = %v; want ErrBadPageToken", err)
	}
}

func testAdoptUnnamed_GivesTheProjectWhatNamedNoneAndNothingElse(t *testing.T, f Factory) {
	s, _ := f.open(t, WithClock(newClock().Now))
	ctx := context.Background()
	// What an execd that named no projects recorded...
	Create(t, s, projectRun("u1", "", "nightly"))
	Create(t, s, projectRun("u2", "", ""))
	Create(t, s, projectRun("u3", "", "clash"))
	failedRun(t, s, "u4", "")
	if _, _, err := s.PrepareRepair(ctx, "u4", []string{"a"}, "fix", ""); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"ux1", "ux2"} {
		if _, _, err := s.CreateExperiment(ctx, projectExperiment(id, "", id)); err != nil {
			t.Fatal(err)
		}
	}
	// ...and what projects recorded since, one with a request id an
	// unnamed run has.
	Create(t, s, projectRun("p1", "p", "clash"))
	Create(t, s, projectRun("q1", "q", "nightly"))

	n, err := s.AdoptUnnamed(ctx, "p")
	if err != nil || n != 3 {
		t.Fatalf("AdoptUnnamed(p) = %d, %v; want 3 runs (u1, u2, u4)", n, err)
	}
	for id, want := range map[string]string{"u1": "p", "u2": "p", "u4": "p", "p1": "p", "q1": "q", "u3": ""} {
		if got := Get(t, s, id).Params.Project; got != want {
			t.Errorf("run %s is of project %q; want %q", id, got, want)
		}
	}
	if r, err := s.RunByRequestID(ctx, "p", "nightly"); err != nil || r.ID != "u1" {
		t.Errorf("RunByRequestID(p, nightly) = %s, %v; want u1", r.ID, err)
	}
	if r, err := s.RunByRequestID(ctx, "p", "clash"); err != nil || r.ID != "p1" {
		t.Errorf("RunByRequestID(p, clash) = %s, %v; want p1, whose id it was in p", r.ID, err)
	}
	if r, err := s.RunByRequestID(ctx, "", "clash"); err != nil || r.ID != "u3" {
		t.Errorf("RunByRequestID(\"\", clash) = %s, %v; want u3, left unnamed", r.ID, err)
	}
	if id, err := s.RepairRequest(ctx, "p", "fix"); err != nil || id != "u4" {
		t.Errorf("RepairRequest(p, fix) = %q, %v; want u4's, which followed its run", id, err)
	}
	if _, err := s.RepairRequest(ctx, "", "fix"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RepairRequest(\"\", fix): %v; want ErrNotFound", err)
	}
	for _, id := range []string{"ux1", "ux2"} {
		if x, err := s.ExperimentByRequestID(ctx, "p", id); err != nil || x.ID != id || x.Spec.Project != "p" {
			t.Errorf("ExperimentByRequestID(p, %s) = %s of %q, %v", id, x.ID, x.Spec.Project, err)
		}
	}
	if ids, _ := listAll(t, s, store.ListFilter{Projects: []string{"p"}}, 2); !slices.Equal(ids, []string{"p1", "u4", "u2", "u1"}) {
		t.Errorf("runs of p = %v; want p1, u4, u2, u1", ids)
	}

	if n, err := s.AdoptUnnamed(ctx, "p"); err != nil || n != 0 {
		t.Errorf("AdoptUnnamed(p) again = %d, %v; want 0", n, err)
	}
	if _, err := s.AdoptUnnamed(ctx, ""); !errors.Is(err, store.ErrInvalidArgument) {
		t.Errorf("AdoptUnnamed(\"\"): %v; want ErrInvalidArgument", err)
	}
}
