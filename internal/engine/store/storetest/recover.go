package storetest

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"testing"

	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	"github.com/tauro-exec/tauro-exec/internal/engine/store"
)

// interruptedFixture leaves, as a killed execd would: r1 PENDING; r2
// RUNNING with node a running, b retrying, c pending and d succeeded; r3
// SUCCEEDED.
func interruptedFixture(t *testing.T, s store.Store) {
	t.Helper()
	Create(t, s, NewRun("r1", "p", "a"))
	Create(t, s, NewRun("r2", "p", "a", "b", "c", "d"))
	boom := NodeState("b", run.NodeRetrying, 1)
	boom.Error = &run.Error{Type: "IOError", Message: "flaky"}
	AppendOK(t, s, "r2",
		RunState(run.Running, ""),
		NodeState("d", run.NodeRunning, 1), NodeState("d", run.NodeSucceeded, 1),
		NodeState("a", run.NodeRunning, 1), Metric("a", "rows", 3),
		NodeState("b", run.NodeRunning, 1), boom,
	)
	Create(t, s, NewRun("r3", "p", "a"))
	AppendOK(t, s, "r3", RunState(run.Running, ""), NodeState("a", run.NodeRunning, 1), NodeState("a", run.NodeSucceeded, 1), RunState(run.Succeeded, ""))
}

func testRecover_InterruptsUnfinishedRunsAndKeepsTheirEvents(t *testing.T, f Factory) {
	s, _ := f.open(t, WithClock(newClock().Now))
	interruptedFixture(t, s)
	before, err := s.Events(context.Background(), "r2", 0, 0)
	if err != nil {
		t.Fatal(err)
	}

	ids, err := recoverAll(s)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids, []string{"r1", "r2"}) {
		t.Errorf("Recover = %v; want r1, r2", ids)
	}

	r2 := Get(t, s, "r2")
	if r2.State != run.Interrupted || r2.Message != store.InterruptedMessage || r2.EndTime.IsZero() {
		t.Errorf("r2 = %s %q end %v", r2.State, r2.Message, r2.EndTime)
	}
	a, b, c, d := r2.Nodes[0], r2.Nodes[1], r2.Nodes[2], r2.Nodes[3]
	if a.State != run.NodeCancelled || a.Error == nil || a.Error.Type != store.InterruptedErrorType {
		t.Errorf("running node a = %+v; want CANCELLED with an Interrupted error", a)
	}
	if at := a.Attempts[0]; at.State != run.NodeCancelled || at.EndTime.IsZero() || at.Metrics["rows"] != 3 || at.Error.Type != store.InterruptedErrorType {
		t.Errorf("a's attempt = %+v; want it closed CANCELLED, metrics kept", at)
	}
	if b.State != run.NodeCancelled || b.Attempts[0].State != run.NodeFailed || b.Attempts[0].Error.Message != "flaky" {
		t.Errorf("retrying node b = %+v; want CANCELLED with its failed attempt kept", b)
	}
	if c.State != run.NodePending || d.State != run.NodeSucceeded {
		t.Errorf("c = %s, d = %s; want PENDING and SUCCEEDED kept", c.State, d.State)
	}
	if r1 := Get(t, s, "r1"); r1.State != run.Interrupted || r1.Nodes[0].State != run.NodePending {
		t.Errorf("r1 = %s, node %s", r1.State, r1.Nodes[0].State)
	}
	if r3 := Get(t, s, "r3"); r3.State != run.Succeeded {
		t.Errorf("r3 = %s; an ended run must be left alone", r3.State)
	}

	after, err := s.Events(context.Background(), "r2", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(after[:len(before)], before) {
		t.Error("Recover changed events that were already stored")
	}
	if last := after[len(after)-1]; !last.Terminal() || last.RunState != run.Interrupted {
		t.Errorf("last event = %+v; want run_state INTERRUPTED", last)
	}
	// A watcher of an interrupted run replays it and ends.
	w, err := s.Watch(context.Background(), "r2", 0)
	if err != nil {
		t.Fatal(err)
	}
	CheckSequences(t, collect(w), 1, r2.LastSequence)

	if ids, err := recoverAll(s); err != nil || len(ids) != 0 {
		t.Errorf("second Recover = %v, %v; want nothing to do", ids, err)
	}
}

func testPrepareRepair_ReopensTheRunAndAttemptNumbersContinue(t *testing.T, f Factory) {
	s, _ := f.open(t, WithClock(newClock().Now))
	interruptedFixture(t, s)
	if _, err := recoverAll(s); err != nil {
		t.Fatal(err)
	}
	before := Get(t, s, "r2")

	r, _, err := s.PrepareRepair(context.Background(), "r2", []string{"a", "b", "c", "a"}, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if r.State != run.Pending || r.RepairCount != 1 || !r.EndTime.IsZero() || !r.StartTime.Equal(before.StartTime) {
		t.Errorf("repaired run = %s, repairs %d, start %v end %v", r.State, r.RepairCount, r.StartTime, r.EndTime)
	}
	for _, n := range r.Nodes[:3] {
		if n.State != run.NodePending || n.Error != nil || !n.EndTime.IsZero() {
			t.Errorf("node %s = %+v; want PENDING and clean", n.Name, n)
		}
	}
	if r.Nodes[3].State != run.NodeSucceeded {
		t.Errorf("node d = %s; a node not reset keeps its state", r.Nodes[3].State)
	}
	if a := r.Nodes[0]; a.Attempt != 1 || !reflect.DeepEqual(a.Attempts, before.Nodes[0].Attempts) {
		t.Errorf("node a = %+v; want its attempt kept", a)
	}

	evs, err := s.Events(context.Background(), "r2", before.LastSequence, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ev := range evs {
		got = append(got, string(ev.Kind)+":"+ev.Node)
	}
	// c was PENDING already: no event for it.
	if want := []string{"run_state:", "node_state:a", "node_state:b"}; !slices.Equal(got, want) {
		t.Errorf("repair events = %v; want %v", got, want)
	}

	// The engine drives the repair like any run. Attempt 1 exists, so a
	// new attempt 1 is refused and attempt 0 means "the next one".
	AppendOK(t, s, "r2", RunState(run.Running, ""))
	if _, err := s.Append(context.Background(), "r2", NodeState("a", run.NodeRunning, 1)); !errors.Is(err, store.ErrInvalidEvent) {
		t.Errorf("restarting attempt 1: err = %v; want ErrInvalidEvent", err)
	}
	out := AppendOK(t, s, "r2", NodeState("a", run.NodeRunning, 0), Metric("a", "rows", 9))
	if out[0].Attempt != 2 {
		t.Errorf("next attempt = %d; want 2", out[0].Attempt)
	}
	AppendOK(t, s, "r2",
		NodeState("a", run.NodeSucceeded, 2),
		NodeState("b", run.NodeRunning, 2), NodeState("b", run.NodeSucceeded, 2),
		NodeState("c", run.NodeRunning, 1), NodeState("c", run.NodeSucceeded, 1),
		RunState(run.Succeeded, ""),
	)
	done := Get(t, s, "r2")
	a := done.Nodes[0]
	if done.State != run.Succeeded || len(a.Attempts) != 2 || a.Attempts[0].State != run.NodeCancelled ||
		a.Attempts[0].Metrics["rows"] != 3 || a.Attempts[1].Metrics["rows"] != 9 {
		t.Errorf("after the repair: run %s, node a %+v", done.State, a)
	}
	if _, _, err := s.PrepareRepair(context.Background(), "r2", []string{"a"}, "", ""); !errors.Is(err, store.ErrNotRepairable) {
		t.Errorf("repairing a succeeded run: err = %v; want ErrNotRepairable", err)
	}
}

func testPrepareRepair_RefusesWhatItCannotRepair(t *testing.T, f Factory) {
	s, _ := f.open(t)
	Create(t, s, NewRun("pending", "p", "a"))
	Create(t, s, NewRun("failed", "p", "a"))
	AppendOK(t, s, "failed", RunState(run.Failed, "x"))
	tests := []struct {
		name  string
		run   string
		reset []string
		want  error
	}{
		{"a run that has not ended", "pending", []string{"a"}, store.ErrNotRepairable},
		{"an unknown run", "nope", []string{"a"}, store.ErrNotFound},
		{"an unknown node", "failed", []string{"a", "zz"}, store.ErrInvalidArgument},
		{"no nodes", "failed", nil, store.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := s.PrepareRepair(context.Background(), tt.run, tt.reset, "", ""); !errors.Is(err, tt.want) {
				t.Errorf("err = %v; want %v", err, tt.want)
			}
		})
	}
	if r := Get(t, s, "failed"); r.RepairCount != 0 || r.State != run.Failed || r.LastSequence != 2 {
		t.Errorf("a refused repair changed the run: %+v", r)
	}
}

func testPrepareRepair_TheSameRequestIDRepairsOnce(t *testing.T, f Factory) {
	s, _ := f.open(t, WithClock(newClock().Now))
	interruptedFixture(t, s)
	if _, err := recoverAll(s); err != nil {
		t.Fatal(err)
	}
	first, repeated, err := s.PrepareRepair(context.Background(), "r2", []string{"a"}, "fix-1", "")
	if err != nil || repeated {
		t.Fatalf("first repair: repeated=%v err=%v", repeated, err)
	}
	second, repeated, err := s.PrepareRepair(context.Background(), "r2", []string{"a"}, "fix-1", "")
	if err != nil || !repeated {
		t.Fatalf("second repair: repeated=%v err=%v", repeated, err)
	}
	if second.RepairCount != first.RepairCount || second.LastSequence != first.LastSequence {
		t.Errorf("the repeated call changed the run: %d/%d then %d/%d", first.RepairCount, first.LastSequence, second.RepairCount, second.LastSequence)
	}
	if id, err := s.RepairRequest(context.Background(), "", "fix-1"); err != nil || id != "r2" {
		t.Errorf("RepairRequest = %q, %v", id, err)
	}
	if _, err := s.RepairRequest(context.Background(), "", "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown request id: %v", err)
	}
}
