package engine

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/plan"
	"github.com/tauro-exec/tauro-exec/internal/engine/retry"
	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	"github.com/tauro-exec/tauro-exec/internal/store/sqlite"
)

// gatedBackend's runs close only when the test lets them: each Close
// reports that it began, then waits.
type gatedBackend struct {
	fail    bool
	closing chan string // the run whose Close began
	open    chan struct{}
}

func (b *gatedBackend) Ready() error { return nil }

func (b *gatedBackend) OpenRun(_ context.Context, rc RunContext) (RunExecutor, error) {
	return &gatedRun{b: b, id: rc.RunID}, nil
}

type gatedRun struct {
	b  *gatedBackend
	id string
}

func (r *gatedRun) RunNode(context.Context, *plan.Node, int, func(run.Event)) error {
	if r.b.fail {
		return &retry.Failure{Err: run.Error{Type: "Boom", Message: "the node failed"}}
	}
	return nil
}

func (r *gatedRun) Close(context.Context) error {
	r.b.closing <- r.id
	<-r.b.open
	return nil
}

func gatedEngine(t *testing.T, b *gatedBackend) *Engine {
	t.Helper()
	st, err := sqlite.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := New(Options{ProjectDir: toyProject(t), Env: "dev", Store: st, Backend: b, MaxConcurrentRuns: 1,
		Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(func() { _ = e.Close(context.Background()) })
	return e
}

func awaitState(t *testing.T, e *Engine, id string, want run.State) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, err := e.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if r.State == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s is %s, want %s", id, r.State, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A run whose nodes all succeeded is SUCCEEDED before its session is
// released, and the run queued behind it starts while that release goes on.
func TestRelease_ASucceededRunEndsAndAdmitsTheNextBeforeItsCleanup(t *testing.T) {
	b := &gatedBackend{closing: make(chan string, 2), open: make(chan struct{})}
	e := gatedEngine(t, b)
	ctx := context.Background()
	first, err := e.Execute(ctx, "", run.Params{Pipeline: "toy"}, false)
	if err != nil {
		t.Fatal(err)
	}
	second, err := e.Execute(ctx, "", run.Params{Pipeline: "toy"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := <-b.closing; got != first.ID {
		t.Fatalf("the first Close was run %s's, want %s", got, first.ID)
	}
	awaitState(t, e, first.ID, run.Succeeded)
	// The first run's Close still waits; the second has run to its own.
	if got := <-b.closing; got != second.ID {
		t.Fatalf("the second Close was run %s's, want %s", got, second.ID)
	}
	awaitState(t, e, second.ID, run.Succeeded)
	close(b.open)
}

// A run that failed is released before its end is recorded: nothing of it
// may run on once it is FAILED.
func TestRelease_AFailedRunIsReleasedBeforeItsEndIsRecorded(t *testing.T) {
	b := &gatedBackend{fail: true, closing: make(chan string, 1), open: make(chan struct{})}
	e := gatedEngine(t, b)
	ctx := context.Background()
	r, err := e.Execute(ctx, "", run.Params{Pipeline: "toy"}, false)
	if err != nil {
		t.Fatal(err)
	}
	<-b.closing
	time.Sleep(100 * time.Millisecond)
	if got, err := e.Get(ctx, r.ID); err != nil || got.State.Terminal() {
		t.Fatalf("while its session is released the run is %s (%v), want it not ended yet", got.State, err)
	}
	close(b.open)
	awaitState(t, e, r.ID, run.Failed)
}
