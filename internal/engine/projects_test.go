package engine

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/tauro-exec/tauro-exec/internal/engine/plan"
	"github.com/tauro-exec/tauro-exec/internal/engine/problem"
	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	"github.com/tauro-exec/tauro-exec/internal/store/sqlite"
)

// projectMap serves the projects in it; a test removes one while runs wait.
type projectMap struct {
	mu sync.Mutex
	m  map[string]Project
}

func (pm *projectMap) Lookup(name string) (Project, error) {
	pm.mu.Lock()
	defer pm.mu.Unlock()
	if p, ok := pm.m[name]; ok {
		return p, nil
	}
	return Project{}, UnknownProject(name, pm.names())
}

func (pm *projectMap) Names() []string {
	pm.mu.Lock()
	defer pm.mu.Unlock()
	return pm.names()
}

func (pm *projectMap) names() []string {
	var out []string
	for n := range pm.m {
		out = append(out, n)
	}
	return out
}

// heldBackend's nodes return once the test lets them.
type heldBackend struct{ release chan struct{} }

func (b *heldBackend) Ready() error { return nil }

func (b *heldBackend) OpenRun(context.Context, RunContext) (RunExecutor, error) { return b, nil }

func (b *heldBackend) RunNode(ctx context.Context, _ *plan.Node, _ int, _ func(run.Event)) error {
	select {
	case <-b.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b *heldBackend) Close(context.Context) error { return nil }

func TestProjects_RunsNameTheirProjectAndOneRemovedWhileItsRunWaitsDoesNotStart(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	projects := &projectMap{m: map[string]Project{
		"alpha": {Name: "alpha", Dir: toyProject(t), Env: "dev"},
		"beta":  {Name: "beta", Dir: toyProject(t), Env: "dev"},
	}}
	b := &heldBackend{release: make(chan struct{})}
	e := New(Options{Projects: projects, Store: st, Backend: b, MaxConcurrentRuns: 1, Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(func() { _ = e.Close(context.Background()) })

	_, err = e.Execute(ctx, "", run.Params{Pipeline: "toy"}, false)
	if probs, ok := problem.From(err); !ok || probs[0].Field != "project" || probs[0].Code != problem.CodeUnknownProject {
		t.Fatalf("a run naming no project among two: %v", err)
	}
	alpha, err := e.Execute(ctx, "same", run.Params{Project: "alpha", Pipeline: "toy"}, false)
	if err != nil {
		t.Fatal(err)
	}
	beta, err := e.Execute(ctx, "same", run.Params{Project: "beta", Pipeline: "toy"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if alpha.ID == beta.ID || alpha.Params.Project != "alpha" || beta.Params.Project != "beta" || beta.State != run.Queued {
		t.Fatalf("one request id in two projects: %s %q, %s %q %s", alpha.ID, alpha.Params.Project, beta.ID, beta.Params.Project, beta.State)
	}
	if again, err := e.Execute(ctx, "same", run.Params{Project: "beta", Pipeline: "toy"}, false); err != nil || again.ID != beta.ID {
		t.Fatalf("the request id repeated in beta: %s (%v), want %s", again.ID, err, beta.ID)
	}

	projects.mu.Lock()
	delete(projects.m, "beta")
	projects.mu.Unlock()
	close(b.release)
	awaitState(t, e, alpha.ID, run.Succeeded)
	awaitState(t, e, beta.ID, run.Failed)
	got, err := e.Get(ctx, beta.ID)
	if err != nil || !strings.Contains(got.Message, `project "beta" is not served here`) {
		t.Fatalf("the removed project's queued run: %q (%v)", got.Message, err)
	}
	if _, err := e.Pipelines(ctx, "beta", ""); !errors.As(err, new(problem.List)) {
		t.Errorf("the removed project's pipelines: %v, want a problem on project", err)
	}
}

// A pipeline's max_active_runs counts its runs within its project, while
// two runs writing one place wait for each other whichever projects they
// are of.
func TestProjects_PipelinesOfTheSameNameRunTogetherUnlessTheyWriteTheSamePlace(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	alphaDir := toyProject(t)
	// gamma's outputs go where alpha's do.
	gammaDir := toyProject(t)
	global := "output_path: " + filepath.Join(alphaDir, "out") + "\nstart_date: '2025-01-01'\nend_date: '2025-01-02'\nmax_retries: 0\n"
	if err := os.WriteFile(filepath.Join(gammaDir, "g.yaml"), []byte(global), 0o644); err != nil {
		t.Fatal(err)
	}
	projects := &projectMap{m: map[string]Project{
		"alpha": {Name: "alpha", Dir: alphaDir, Env: "dev"},
		"beta":  {Name: "beta", Dir: toyProject(t), Env: "dev"},
		"gamma": {Name: "gamma", Dir: gammaDir, Env: "dev"},
	}}
	b := &heldBackend{release: make(chan struct{})}
	e := New(Options{Projects: projects, Store: st, Backend: b, MaxConcurrentRuns: 8, Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(func() { close(b.release); _ = e.Close(context.Background()) })

	alpha, err := e.Execute(ctx, "", run.Params{Project: "alpha", Pipeline: "toy"}, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Execute(ctx, "", run.Params{Project: "beta", Pipeline: "toy"}, true); err != nil {
		t.Errorf("beta's toy beside alpha's: %v, want it to start (max_active_runs is per project)", err)
	}
	_, err = e.Execute(ctx, "", run.Params{Project: "gamma", Pipeline: "toy"}, true)
	if !errors.Is(err, ErrFailedPrecondition) || !strings.Contains(err.Error(), "run "+alpha.ID+" is writing "+filepath.Join(alphaDir, "out")) {
		t.Errorf("gamma's toy, writing where alpha's does: %v, want it held back by %s", err, alpha.ID)
	}
}
