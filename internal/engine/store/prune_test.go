package store_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	"github.com/tauro-exec/tauro-exec/internal/engine/store"
)

func TestPruneRuns_DeletesOnlyRunsThatEndedBeforeTheCutoffWithEverythingAboutThem(t *testing.T) {
	c := newClock()
	s, dir := open(t, store.WithClock(c.Now))
	ctx := context.Background()
	end := func(id string, st run.State) {
		appendOK(t, s, id, runState(run.Running, ""), message("a", "work"), runState(st, "done"))
	}
	old := newRun("old-ok", "p", "a")
	old.RequestID = "nightly-1"
	create(t, s, old)
	end("old-ok", run.Succeeded)
	create(t, s, newRun("old-failed", "p", "a"))
	end("old-failed", run.Failed)
	create(t, s, newRun("old-running", "p", "a"))
	appendOK(t, s, "old-running", runState(run.Running, ""))
	create(t, s, newRun("old-pending", "p", "a"))

	c.mu.Lock()
	c.t = c.t.Add(10 * 24 * time.Hour)
	cutoff := c.t
	c.mu.Unlock()
	create(t, s, newRun("new-cancelled", "p", "a"))
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
	db, err := sql.Open("sqlite", filepath.Join(dir, store.FileName)+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, table := range []string{"nodes", "attempts", "events", "repair_requests"} {
		var left int
		if err := db.QueryRow(`SELECT count(*) FROM ` + table + ` WHERE run_id IN ('old-ok', 'old-failed')`).Scan(&left); err != nil || left != 0 {
			t.Errorf("%s rows of pruned runs: %d, %v", table, left, err)
		}
	}
	for _, id := range []string{"old-running", "old-pending", "new-cancelled"} {
		get(t, s, id)
	}
	// The pruned run's request id is free again.
	again := newRun("again", "p", "a")
	again.RequestID = "nightly-1"
	if _, created, err := s.CreateRun(ctx, again); err != nil || !created {
		t.Errorf("CreateRun with a pruned run's request id = created %v, %v; want a new run", created, err)
	}
	if n, err := s.PruneRuns(ctx, cutoff); err != nil || n != 0 {
		t.Errorf("second PruneRuns = %d, %v; want nothing left to prune", n, err)
	}
}

func TestPruneRuns_WorksThroughMoreRunsThanOneBatch(t *testing.T) {
	c := newClock()
	s, _ := open(t, store.WithClock(c.Now))
	for i := range 450 {
		id := fmt.Sprintf("r%03d", i)
		create(t, s, newRun(id, "p", "a"))
		appendOK(t, s, id, runState(run.Running, ""), runState(run.Succeeded, ""))
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
