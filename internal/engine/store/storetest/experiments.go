package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/experiment"
	"github.com/tauro-exec/tauro-exec/internal/engine/store"
)

// NewExperiment is an experiment record as the engine makes one.
func NewExperiment(id string) experiment.Record {
	return experiment.Record{
		ID: id,
		Spec: experiment.Spec{Pipeline: "train", NTrials: 4, MaxParallel: 2, Seed: 7,
			Space:     []experiment.Dimension{{Name: "lr", Kind: experiment.Real, Low: 0.001, High: 0.1}},
			Objective: experiment.Objective{Metric: "auc", Direction: experiment.Maximize}},
		SharedNodes: []string{"prep"},
		TrialNodes:  []string{"fit"},
	}
}

// StartExperiment appends the experiment's RUNNING.
func StartExperiment(t testing.TB, s store.Store, id string) {
	t.Helper()
	if _, err := s.AppendExperiment(context.Background(), id, experiment.Event{Kind: experiment.StateChanged, State: experiment.Running}); err != nil {
		t.Fatalf("AppendExperiment(%s, RUNNING): %v", id, err)
	}
}

func trial(n int, st experiment.TrialState, value float64) experiment.Event {
	v := value
	return experiment.Event{Kind: experiment.TrialChanged, Trial: &experiment.Trial{
		Number: n, State: st, Params: map[string]any{"lr": 0.01 * float64(n)}, Value: &v, RunID: fmt.Sprintf("run-%d", n)}}
}

func testExperiments_RecordFollowsItsEvents(t *testing.T, f Factory) {
	s, _ := f.open(t, WithClock(newClock().Now))
	ctx := context.Background()
	x, created, err := s.CreateExperiment(ctx, NewExperiment("x"))
	if err != nil || !created || x.State != experiment.Pending || x.LastSequence != 1 || x.CreateTime.IsZero() {
		t.Fatalf("CreateExperiment = %+v, %v, %v", x, created, err)
	}
	StartExperiment(t, s, "x")
	for _, ev := range []experiment.Event{
		{Kind: experiment.SharedRunChanged, RunID: "shared-1", RunState: "RUNNING"},
		trial(1, experiment.TrialRunning, 0),
		trial(2, experiment.TrialRunning, 0),
		trial(1, experiment.TrialSucceeded, 0.8),
		trial(2, experiment.TrialSucceeded, 0.9),
		{Kind: experiment.StateChanged, State: experiment.Succeeded, Message: "done"},
	} {
		if _, err := s.AppendExperiment(ctx, "x", ev); err != nil {
			t.Fatalf("AppendExperiment(%s): %v", ev.Kind, err)
		}
	}
	got, err := s.GetExperiment(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	if got.State != experiment.Succeeded || got.Message != "done" || got.SharedRunID != "shared-1" ||
		got.StartTime.IsZero() || got.EndTime.IsZero() || got.LastSequence != 8 {
		t.Errorf("record = %+v", got)
	}
	if len(got.Trials) != 2 || got.Trials[0].State != experiment.TrialSucceeded || *got.Trials[1].Value != 0.9 {
		t.Errorf("trials = %+v; want both succeeded, each as its last event had it", got.Trials)
	}
	if best := got.Best(); best == nil || best.Number != 2 {
		t.Errorf("best = %+v; want trial 2", best)
	}
	if !slices.Equal(got.SharedNodes, []string{"prep"}) || !slices.Equal(got.TrialNodes, []string{"fit"}) || got.Spec.Objective.Metric != "auc" {
		t.Errorf("what it was created with changed: %+v", got)
	}
	if _, err := s.AppendExperiment(ctx, "x", trial(3, experiment.TrialRunning, 0)); !errors.Is(err, store.ErrRunEnded) {
		t.Errorf("an event after the end: %v; want ErrRunEnded", err)
	}
	if _, err := s.AppendExperiment(ctx, "x", experiment.Event{Kind: experiment.TrialChanged}); !errors.Is(err, store.ErrRunEnded) && !errors.Is(err, store.ErrInvalidEvent) {
		t.Errorf("a trial event without its trial: %v", err)
	}
	if _, err := s.GetExperiment(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetExperiment(nope) = %v; want ErrNotFound", err)
	}
}

func testExperiments_ARequestIDStartsOneExperiment(t *testing.T, f Factory) {
	s, _ := f.open(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	ids := make([]string, 8)
	createdCount := 0
	var mu sync.Mutex
	for i := range ids {
		wg.Go(func() {
			x := NewExperiment(fmt.Sprintf("x%d", i))
			x.RequestID = "nightly-search"
			got, created, err := s.CreateExperiment(ctx, x)
			if err != nil {
				t.Errorf("CreateExperiment: %v", err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			ids[i] = got.ID
			if created {
				createdCount++
			}
		})
	}
	wg.Wait()
	if createdCount != 1 || len(slices.Compact(slices.Sorted(slices.Values(ids)))) != 1 {
		t.Errorf("created %d experiments, ids %v; want one, returned to every call", createdCount, ids)
	}
	byReq, err := s.ExperimentByRequestID(ctx, "", "nightly-search")
	if err != nil || byReq.ID != ids[0] {
		t.Errorf("ExperimentByRequestID = %s, %v; want %s", byReq.ID, err, ids[0])
	}
	if _, _, err := s.CreateExperiment(ctx, NewExperiment(ids[0])); !errors.Is(err, store.ErrAlreadyExists) {
		t.Errorf("a taken id without a request id: %v; want ErrAlreadyExists", err)
	}
}

func testExperiments_ListPagesNewestFirstAndLiveListsTheUnended(t *testing.T, f Factory) {
	s, _ := f.open(t, WithClock(newClock().Now))
	ctx := context.Background()
	for i := range 5 {
		x := NewExperiment(fmt.Sprintf("x%d", i))
		if i == 3 {
			x.Spec.Pipeline = "other"
		}
		if _, _, err := s.CreateExperiment(ctx, x); err != nil {
			t.Fatal(err)
		}
	}
	StartExperiment(t, s, "x1")
	if _, err := s.AppendExperiment(ctx, "x2", experiment.Event{Kind: experiment.StateChanged, State: experiment.Cancelled}); err != nil {
		t.Fatal(err)
	}
	var got []string
	token := ""
	for range 10 {
		page, next, err := s.ListExperiments(ctx, store.ListFilter{Pipeline: "train"}, 2, token)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range page {
			got = append(got, x.ID)
		}
		if token = next; token == "" {
			break
		}
	}
	if !slices.Equal(got, []string{"x4", "x2", "x1", "x0"}) {
		t.Errorf("pages = %v; want the train experiments newest first", got)
	}
	if _, _, err := s.ListExperiments(ctx, store.ListFilter{Pipeline: "other"}, 2, "garbage!"); !errors.Is(err, store.ErrBadPageToken) {
		t.Errorf("a bad token: %v; want ErrBadPageToken", err)
	}
	live, err := s.LiveExperiments(ctx)
	if err != nil || !slices.Equal(live, []string{"x0", "x1", "x3", "x4"}) {
		t.Errorf("LiveExperiments = %v, %v; want every one not ended, oldest first", live, err)
	}
}

func testExperiments_EventsResumeAfterASequenceAndACommitWakesTheWaiter(t *testing.T, f Factory) {
	s, _ := f.open(t)
	ctx := context.Background()
	if _, _, err := s.CreateExperiment(ctx, NewExperiment("x")); err != nil {
		t.Fatal(err)
	}
	StartExperiment(t, s, "x")
	evs, ended, next, err := s.ExperimentEvents(ctx, "x", 1, 100)
	if err != nil || ended || len(evs) != 1 || evs[0].Sequence != 2 || evs[0].State != experiment.Running {
		t.Fatalf("events after 1 = %+v, ended %v, %v", evs, ended, err)
	}
	select {
	case <-next:
		t.Fatal("woken before any commit")
	default:
	}
	if _, err := s.AppendExperiment(ctx, "x", experiment.Event{Kind: experiment.StateChanged, State: experiment.Failed, Message: "no trial succeeded"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-next:
	case <-time.After(5 * time.Second):
		t.Fatal("a commit did not wake the waiter")
	}
	evs, ended, _, err = s.ExperimentEvents(ctx, "x", 2, 100)
	if err != nil || !ended || len(evs) != 1 || !evs[0].Terminal() {
		t.Errorf("events after 2 = %+v, ended %v, %v; want the end", evs, ended, err)
	}
	if _, _, _, err := s.ExperimentEvents(ctx, "x", 9, 100); !errors.Is(err, store.ErrInvalidArgument) {
		t.Errorf("after beyond the last event: %v; want ErrInvalidArgument", err)
	}
	if _, _, _, err := s.ExperimentEvents(ctx, "nope", 0, 100); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("an unknown experiment: %v; want ErrNotFound", err)
	}
}

func testExperiments_AWatcherGetsEveryEventOnceAndEndsAtTheEnd(t *testing.T, f Factory) {
	s, _ := f.open(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, _, err := s.CreateExperiment(ctx, NewExperiment("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := store.WatchExperiment(ctx, s, "nope", 0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("watching no experiment: %v; want ErrNotFound", err)
	}
	w, err := store.WatchExperiment(ctx, s, "x", 0)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan []int64)
	go func() {
		var seqs []int64
		for ev := range w.Events() {
			seqs = append(seqs, ev.Sequence)
		}
		got <- seqs
	}()
	StartExperiment(t, s, "x")
	for n := 1; n <= 600; n++ { // more than a page
		if _, err := s.AppendExperiment(ctx, "x", trial(n, experiment.TrialRunning, 0)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.AppendExperiment(ctx, "x", experiment.Event{Kind: experiment.StateChanged, State: experiment.Succeeded}); err != nil {
		t.Fatal(err)
	}
	seqs := <-got
	if w.Err() != nil || len(seqs) != 603 || seqs[0] != 1 || seqs[602] != 603 || w.Last() != 603 {
		t.Fatalf("the watcher got %d events (%v), last %d, err %v; want 1..603", len(seqs), seqs[:min(3, len(seqs))], w.Last(), w.Err())
	}
	for i, q := range seqs {
		if q != int64(i+1) {
			t.Fatalf("event %d has sequence %d", i+1, q)
		}
	}
}
