package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/plan"
	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	"github.com/tauro-exec/tauro-exec/internal/engine/store"
	"github.com/tauro-exec/tauro-exec/internal/store/sqlite"
)

// chainProject writes a project whose pipeline p runs a -> b -> c.
func chainProject(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"settings_yml.json": `{"base_path": ".", "env_config": {"base": {"global_settings_path": "config/global.yaml",
			"pipelines_config_path": "config/pipelines.yaml", "nodes_config_path": "config/nodes.yaml",
			"input_config_path": "config/input.yaml", "output_config_path": "config/output.yaml"}}}`,
		"config/global.yaml":    "max_retries: 0\nstart_date: \"2025-01-01\"\nend_date: \"2025-01-02\"\n",
		"config/pipelines.yaml": "p: {nodes: [a, b, c]}\n",
		"config/nodes.yaml":     "a: {sql: 'SELECT 1'}\nb: {sql: 'SELECT 1', dependencies: a}\nc: {sql: 'SELECT 1', dependencies: b}\n",
		"config/input.yaml":     "{}\n",
		"config/output.yaml":    "{}\n",
	}
	for name, body := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// resumable is a backend that takes runs up: it records each attempt it
// runs, continues the attempts continues names, and fails the nodes in
// lost as work the server no longer has.
type resumable struct {
	mu        sync.Mutex
	ran       []string // node/attempt
	live      []run.LiveAttempt
	continues map[string]bool
	lost      map[string]bool
	refuse    error
}

func (b *resumable) OpenRun(context.Context, RunContext) (RunExecutor, error) { return b, nil }
func (b *resumable) Ready() error                                             { return nil }
func (b *resumable) Close(context.Context) error                              { return nil }

func (b *resumable) ResumeRun(_ context.Context, rc RunContext) (ResumedRun, error) {
	if b.refuse != nil {
		return nil, b.refuse
	}
	b.live = rc.Live
	return b, nil
}

func (b *resumable) Continues(_ context.Context, a run.LiveAttempt) bool { return b.continues[a.Node] }

func (b *resumable) RunNode(_ context.Context, n *plan.Node, attempt int, _ func(run.Event)) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ran = append(b.ran, fmt.Sprintf("%s/%d", n.Name, attempt))
	if b.lost[n.Name] {
		return fmt.Errorf("%w: the operation was interrupted", ErrNotResumable)
	}
	return nil
}

// killedMidRun leaves what a SIGKILL leaves: run r RUNNING, a succeeded, b
// running its first attempt, c pending.
func killedMidRun(t *testing.T, dir string) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, _, err := st.CreateRun(ctx, run.Run{ID: "r", Params: run.Params{Pipeline: "p", Env: "dev"}, Nodes: []run.Node{{Name: "a"}, {Name: "b"}, {Name: "c"}}}); err != nil {
		t.Fatal(err)
	}
	_, err = st.Append(ctx, "r",
		run.Event{Kind: run.RunStateChanged, RunState: run.Running},
		run.Event{Kind: run.NodeStateChanged, Node: "a", NodeState: run.NodeRunning, Attempt: 1},
		run.Event{Kind: run.NodeStateChanged, Node: "a", NodeState: run.NodeSucceeded},
		run.Event{Kind: run.NodeStateChanged, Node: "b", NodeState: run.NodeRunning, Attempt: 1})
	if err != nil {
		t.Fatal(err)
	}
}

// recoverWith starts an engine on the state dir with backend b and waits
// until run r has ended.
func recoverWith(t *testing.T, dir string, b Backend) (run.Run, []run.Event) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := New(Options{ProjectDir: chainProject(t), Env: "dev", Store: st, Backend: b, Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
	if err := e.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	w, err := e.Watch(wctx, "r", 0)
	if err != nil {
		t.Fatal(err)
	}
	var evs []run.Event
	for ev := range w.Events() {
		evs = append(evs, ev)
	}
	if w.Err() != nil {
		t.Fatalf("watching the run: %v (events %+v)", w.Err(), evs)
	}
	if err := e.Close(ctx); err != nil {
		t.Fatal(err)
	}
	r, err := st.GetRun(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	return r, evs
}

// nodeStates lists the node state events as node/state/attempt.
func nodeStates(evs []run.Event) []string {
	var out []string
	for _, ev := range evs {
		switch ev.Kind {
		case run.NodeStateChanged:
			out = append(out, fmt.Sprintf("%s/%s/%d", ev.Node, ev.NodeState, ev.Attempt))
		case run.RunStateChanged:
			out = append(out, "run/"+string(ev.RunState))
		}
	}
	return out
}

func TestRecover_TakesUpARunWhoseBackendOutlivedExecd(t *testing.T) {
	dir := t.TempDir()
	killedMidRun(t, dir)
	b := &resumable{continues: map[string]bool{"b": true}}
	r, evs := recoverWith(t, dir, b)
	if r.State != run.Succeeded {
		t.Fatalf("run %s (%s), want SUCCEEDED", r.State, r.Message)
	}
	if want := []string{"b/1", "c/1"}; !slices.Equal(b.ran, want) {
		t.Errorf("ran %v, want %v: b's attempt goes on, a is kept", b.ran, want)
	}
	if len(b.live) != 1 || b.live[0].Node != "b" || b.live[0].Attempt != 1 || b.live[0].Started.IsZero() {
		t.Errorf("the backend was told of the attempts under way %+v, want b's first", b.live)
	}
	want := []string{"run/PENDING", "run/RUNNING", "a/RUNNING/1", "a/SUCCEEDED/1", "b/RUNNING/1",
		"b/SUCCEEDED/1", "c/RUNNING/1", "c/SUCCEEDED/1", "run/SUCCEEDED"}
	if got := nodeStates(evs); !slices.Equal(got, want) {
		t.Errorf("state events\n%v\nwant (one RUNNING each, nothing twice)\n%v", got, want)
	}
	for i, ev := range evs {
		if ev.Sequence != int64(i+1) {
			t.Fatalf("event %d has sequence %d: a gap or a repeat", i+1, ev.Sequence)
		}
	}
}

func TestRecover_AnAttemptThatCannotGoOnRunsAgain(t *testing.T) {
	dir := t.TempDir()
	killedMidRun(t, dir)
	b := &resumable{}
	r, evs := recoverWith(t, dir, b)
	if r.State != run.Succeeded {
		t.Fatalf("run %s (%s), want SUCCEEDED", r.State, r.Message)
	}
	if want := []string{"b/2", "c/1"}; !slices.Equal(b.ran, want) {
		t.Errorf("ran %v, want %v", b.ran, want)
	}
	want := []string{"run/PENDING", "run/RUNNING", "a/RUNNING/1", "a/SUCCEEDED/1", "b/RUNNING/1",
		"b/RETRYING/1", "b/RUNNING/2", "b/SUCCEEDED/2", "c/RUNNING/1", "c/SUCCEEDED/1", "run/SUCCEEDED"}
	if got := nodeStates(evs); !slices.Equal(got, want) {
		t.Errorf("state events\n%v\nwant\n%v", got, want)
	}
	for _, n := range r.Nodes {
		if n.Name == "b" && (len(n.Attempts) != 2 || n.Attempts[0].Error == nil || n.Attempts[0].Error.Type != store.InterruptedErrorType) {
			t.Errorf("b's attempts %+v, want the first ended as interrupted", n.Attempts)
		}
	}
}

func TestRecover_ARunWhoseSparkWorkIsGoneEndsInterrupted(t *testing.T) {
	dir := t.TempDir()
	killedMidRun(t, dir)
	b := &resumable{continues: map[string]bool{"b": true}, lost: map[string]bool{"b": true}}
	r, _ := recoverWith(t, dir, b)
	if r.State != run.Interrupted || r.Message == "" {
		t.Fatalf("run %s (%q), want INTERRUPTED with the reason", r.State, r.Message)
	}
	if want := []string{"b/1"}; !slices.Equal(b.ran, want) {
		t.Errorf("ran %v, want %v: nothing after the lost attempt", b.ran, want)
	}
}

func TestRecover_ARunTheBackendCannotTakeUpIsInterrupted(t *testing.T) {
	dir := t.TempDir()
	killedMidRun(t, dir)
	b := &resumable{refuse: errors.New("the session is gone")}
	r, evs := recoverWith(t, dir, b)
	if r.State != run.Interrupted {
		t.Fatalf("run %s, want INTERRUPTED", r.State)
	}
	if len(b.ran) != 0 {
		t.Errorf("ran %v, want nothing", b.ran)
	}
	if got := nodeStates(evs); got[len(got)-2] != "b/CANCELLED/1" {
		t.Errorf("state events %v, want b CANCELLED before the run's end", got)
	}
}

// testWriter sends the engine's log to the test's.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
