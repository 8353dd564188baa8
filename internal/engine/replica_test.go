package engine

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	"github.com/tauro-exec/tauro-exec/internal/store/sqlite"
	"github.com/tauro-exec/tauro-exec/internal/store/sqlstore"
)

// A replica whose own heartbeats lapsed (its store writes held up past the
// lease) finds its own executing run among the orphans. It leaves that run
// as it is: no second claim fencing its own execution, which stays
// stoppable.
func TestAdoptOrphans_AReplicaWhoseHeartbeatLappedKeepsExecutingItsOwnRun(t *testing.T) {
	ctx := context.Background()
	var (
		mu   sync.Mutex
		skew time.Duration
	)
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return time.Now().Add(skew)
	}
	st, err := sqlite.Open(ctx, t.TempDir(), sqlstore.WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	b := &heldBackend{release: make(chan struct{})}
	e := New(Options{ProjectDir: toyProject(t), Env: "dev", Store: st, Backend: b, Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
	if err := e.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close(context.Background()) })
	r, err := e.Execute(ctx, "", run.Params{Pipeline: "toy"}, false)
	if err != nil {
		t.Fatal(err)
	}
	awaitState(t, e, r.ID, run.Running)

	mu.Lock()
	skew = 2 * DefaultLeaseTTL
	mu.Unlock()
	orphans, err := st.Orphans(ctx)
	if err != nil || len(orphans) != 1 || orphans[0] != r.ID {
		t.Fatalf("orphans once the heartbeat lapsed: %v (%v), want the run", orphans, err)
	}
	e.adoptOrphans(ctx)

	claims, err := st.LeaseHistory(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(claims) != 1 {
		t.Fatalf("the run's claims after the replica looked for orphans: %+v, want only the first", claims)
	}
	got, err := e.Get(ctx, r.ID)
	if err != nil || got.State != run.Running {
		t.Fatalf("the run after the replica looked for orphans: %s (%v), want RUNNING", got.State, err)
	}
	ended, err := e.Cancel(ctx, r.ID, "the test is done")
	if err != nil || ended.State != run.Cancelled {
		t.Fatalf("cancelling the run: %s (%v), want CANCELLED", ended.State, err)
	}
}
