package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	"github.com/tauro-exec/tauro-exec/internal/engine/store"
)

func testPruneRuns_DeletesOnlyRunsThatEndedBeforeTheCutoffWithEverythingAboutThem(t *testing.T, f Factory) {
	c := newClock()
	s, dir := f.open(t, WithClock(c.Now))
	ctx := context.Background()
	end := func(id string, st run.State) {
		AppendOK(t, s, id, RunState(run.Running, ""), Message("a", "work"), RunState(st, "done"))
	}
	old := NewRun("old-ok", "p", "a")
	old.RequestID = "nightly-1"
	Create(t, s, old)
	end("old-ok", run.Succeeded)
	Create(t, s, NewRun("old-failed", "p", "a"))
	end("old-failed", run.Failed)
	Create(t, s, NewRun("old-running", "p", "a"))
	AppendOK(t, s, "old-running", RunState(run.Running, ""))
	Create(t, s, NewRun("old-pending", "p", "a"))

	c.mu.Lock()
	c.t = c.t.Add(10 * 24 * time.Hour)
	cutoff := c.t
	c.mu.Unlock()
	Create(t, s, NewRun("new-cancelled", "p", "a"))
	end("new-cancelled", run.Cancelled)

	n, err := s.PruneRuns(ctx, cutoff)
	if err != nil || n != 2 {
		t.Fatalf("PruneRuns = %d, %v; want 2 (the two old ended runs)", n, err)
	}
	for _, id := range []string{"old-ok", "old-failed"} {
		if _, err := s.GetRun(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetRun(%s) after pruning = %v; want ErrNotFound", id, err)
		}
		if evs, err := s.Events(ctx, id, 0, 0); len(evs) != 0 {
			t.Errorf("events of %s after pruning: %d (%v)", id, len(evs), err)
		}
	}
	for _, table := range []string{"nodes", "attempts", "events", "repair_requests", "run_journal"} {
		if left, err := f.CountRows(dir, table, []string{"old-ok", "old-failed"}); err != nil || left != 0 {
			t.Errorf("%s rows of pruned runs: %d, %v", table, left, err)
		}
	}
	for _, id := range []string{"old-running", "old-pending", "new-cancelled"} {
		Get(t, s, id)
	}
	// The pruned run's request id is free again.
	again := NewRun("again", "p", "a")
	again.RequestID = "nightly-1"
	if _, created, err := s.CreateRun(ctx, again); err != nil || !created {
		t.Errorf("CreateRun with a pruned run's request id = created %v, %v; want a new run", created, err)
	}
	if n, err := s.PruneRuns(ctx, cutoff); err != nil || n != 0 {
		t.Errorf("second PruneRuns = %d, %v; want nothing left to prune", n, err)
	}
}

func testPruneRuns_WorksThroughMoreRunsThanOneBatch(t *testing.T, f Factory) {
	c := newClock()
	s, _ := f.open(t, WithClock(c.Now))
	for i := range 450 {
		id := fmt.Sprintf("r%03d", i)
		Create(t, s, NewRun(id, "p", "a"))
		AppendOK(t, s, id, RunState(run.Running, ""), RunState(run.Succeeded, ""))
	}
	n, err := s.PruneRuns(context.Background(), c.Now())
	if err != nil || n != 450 {
		t.Fatalf("PruneRuns = %d, %v; want 450", n, err)
	}
	runs, _, err := s.ListRuns(context.Background(), store.ListFilter{}, 10, "")
	if err != nil || len(runs) != 0 {
		t.Errorf("ListRuns after pruning = %d runs, %v", len(runs), err)
	}
}
