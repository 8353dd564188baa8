package storetest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	"github.com/tauro-exec/tauro-exec/internal/engine/store"
)

func testAppend_AssignsTheNextSequencesAndTheCommitTime(t *testing.T, f Factory) {
	clk := newClock()
	s, _ := f.open(t, WithClock(clk.Now))
	Create(t, s, NewRun("r", "p", "a"))

	out := AppendOK(t, s, "r", RunState(run.Running, ""), Message("a", "hello"))
	started := out[0].Time
	if out[0].Sequence != 2 || out[1].Sequence != 3 {
		t.Errorf("sequences = %d, %d; want 2, 3", out[0].Sequence, out[1].Sequence)
	}
	if out[0].Time.IsZero() || !out[0].Time.Equal(out[1].Time) || out[0].RunID != "r" {
		t.Errorf("events of one batch: times %v/%v, run %q", out[0].Time, out[1].Time, out[0].RunID)
	}
	// A caller's sequence, time or run id is replaced, not trusted.
	out = AppendOK(t, s, "r", run.Event{Kind: run.NodeMessage, Node: "a", Sequence: 99})
	if out[0].Sequence != 4 {
		t.Errorf("sequence = %d; want 4", out[0].Sequence)
	}
	r := Get(t, s, "r")
	if r.LastSequence != 4 || r.State != run.Running || !r.StartTime.Equal(started) {
		t.Errorf("run = last %d, state %s, start %v", r.LastSequence, r.State, r.StartTime)
	}

	stored, err := s.Events(context.Background(), "r", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	CheckSequences(t, stored, 1, 4)
	if stored[2].Message != "hello" || stored[2].Node != "a" || !stored[2].Time.Equal(stored[1].Time) {
		t.Errorf("stored event = %+v", stored[2])
	}
}

func testAppend_RecordsAttemptsRetriesErrorsAndMetrics(t *testing.T, f Factory) {
	s, _ := f.open(t, WithClock(newClock().Now))
	Create(t, s, NewRun("r", "p", "a", "b"))
	boom := &run.Error{Type: "ValueError", Message: "boom", Traceback: "tb", Retryable: true}
	AppendOK(t, s, "r",
		RunState(run.Running, ""),
		NodeState("a", run.NodeRunning, 1),
		Metric("a", "rows", 10),
	)
	retry := NodeState("a", run.NodeRetrying, 1)
	retry.Error = boom
	AppendOK(t, s, "r", retry)

	mid := Get(t, s, "r")
	a := mid.Nodes[0]
	if a.State != run.NodeRetrying || a.Attempt != 1 || a.Error == nil || a.Error.Message != "boom" {
		t.Errorf("retrying node = %+v", a)
	}
	if len(a.Attempts) != 1 || a.Attempts[0].State != run.NodeFailed || a.Attempts[0].EndTime.IsZero() || a.Attempts[0].Error.Type != "ValueError" {
		t.Errorf("failed attempt = %+v", a.Attempts)
	}

	AppendOK(t, s, "r", NodeState("a", run.NodeRunning, 2))
	AppendOK(t, s, "r",
		Metric("a", "rows", 20),
		Metric("a", "rows", 21), // a metric reported again keeps its last value
		Metric("a", "bytes", 5),
		NodeState("a", run.NodeSucceeded, 2),
		NodeState("b", run.NodeSkipped, 0),
		RunState(run.Failed, "node b skipped"),
	)
	r := Get(t, s, "r")
	if r.State != run.Failed || r.Message != "node b skipped" || r.EndTime.IsZero() {
		t.Errorf("run = %s %q end %v", r.State, r.Message, r.EndTime)
	}
	a = r.Nodes[0]
	if a.State != run.NodeSucceeded || a.Attempt != 2 || a.Error != nil || a.EndTime.IsZero() || a.StartTime.IsZero() {
		t.Errorf("node a = %+v", a)
	}
	if len(a.Attempts) != 2 {
		t.Fatalf("attempts = %+v; want 2", a.Attempts)
	}
	first, second := a.Attempts[0], a.Attempts[1]
	if first.Attempt != 1 || first.Metrics["rows"] != 10 || first.Error == nil {
		t.Errorf("attempt 1 = %+v", first)
	}
	if second.Attempt != 2 || second.State != run.NodeSucceeded || second.Error != nil ||
		second.Metrics["rows"] != 21 || second.Metrics["bytes"] != 5 || !second.StartTime.Before(second.EndTime) {
		t.Errorf("attempt 2 = %+v", second)
	}
	b := r.Nodes[1]
	if b.State != run.NodeSkipped || len(b.Attempts) != 0 || b.Attempt != 0 {
		t.Errorf("node b = %+v", b)
	}
}

func testAppend_AttemptZeroMeansTheNodesCurrentAttempt(t *testing.T, f Factory) {
	s, _ := f.open(t)
	Create(t, s, NewRun("r", "p", "a"))
	out := AppendOK(t, s, "r",
		NodeState("a", run.NodeRunning, 0),
		Message("a", "working"),
		Metric("a", "m", 1),
		NodeState("a", run.NodeRetrying, 0),
		NodeState("a", run.NodeRunning, 0),
		NodeState("a", run.NodeFailed, 0),
	)
	for i, want := range []int{1, 1, 1, 1, 2, 2} {
		if out[i].Attempt != want {
			t.Errorf("event %d (%s %s) has attempt %d; want %d", i, out[i].Kind, out[i].NodeState, out[i].Attempt, want)
		}
	}
	stored, _ := s.Events(context.Background(), "r", 0, 0)
	if stored[len(stored)-1].Attempt != 2 {
		t.Errorf("the filled-in attempt was not stored: %+v", stored[len(stored)-1])
	}
}

func testAppend_RefusesEventsThatDoNotFitTheRecord(t *testing.T, f Factory) {
	tests := []struct {
		name    string
		prepare []run.Event
		bad     run.Event
		want    error
	}{
		{"unknown kind", nil, run.Event{Kind: "bogus"}, store.ErrInvalidEvent},
		{"unknown node", nil, NodeState("zz", run.NodeRunning, 1), store.ErrInvalidEvent},
		{"node event without a node", nil, NodeState("", run.NodeRunning, 1), store.ErrInvalidEvent},
		{"unknown node state", nil, NodeState("a", "DANCING", 0), store.ErrInvalidEvent},
		{"unknown run state", nil, RunState("DANCING", ""), store.ErrInvalidEvent},
		{"skipping an attempt number", nil, NodeState("a", run.NodeRunning, 2), store.ErrInvalidEvent},
		{"starting a running node again", []run.Event{NodeState("a", run.NodeRunning, 1)}, NodeState("a", run.NodeRunning, 2), store.ErrInvalidEvent},
		{"ending another attempt than the current", []run.Event{NodeState("a", run.NodeRunning, 1)}, NodeState("a", run.NodeFailed, 3), store.ErrInvalidEvent},
		{"succeeding without running", nil, NodeState("a", run.NodeSucceeded, 0), store.ErrInvalidEvent},
		{"retrying a pending node", nil, NodeState("a", run.NodeRetrying, 0), store.ErrInvalidEvent},
		{"leaving a terminal node state", []run.Event{NodeState("a", run.NodeRunning, 1), NodeState("a", run.NodeFailed, 1)}, NodeState("a", run.NodeRunning, 2), store.ErrInvalidEvent},
		{"setting a node PENDING", nil, NodeState("a", run.NodePending, 0), store.ErrInvalidEvent},
		{"setting the run PENDING", nil, RunState(run.Pending, ""), store.ErrInvalidEvent},
		{"starting a running run", []run.Event{RunState(run.Running, "")}, RunState(run.Running, ""), store.ErrInvalidEvent},
		{"ending the run with a node running", []run.Event{NodeState("a", run.NodeRunning, 1)}, RunState(run.Succeeded, ""), store.ErrInvalidEvent},
		{"a metric before any attempt", nil, Metric("a", "m", 1), store.ErrInvalidEvent},
		{"a NaN metric", []run.Event{NodeState("a", run.NodeRunning, 1)}, Metric("a", "m", math.NaN()), store.ErrInvalidEvent},
		{"an infinite metric", []run.Event{NodeState("a", run.NodeRunning, 1)}, Metric("a", "m", math.Inf(1)), store.ErrInvalidEvent},
		{"a metric without a name", []run.Event{NodeState("a", run.NodeRunning, 1)}, Metric("a", "", 1), store.ErrInvalidEvent},
		{"an event of another run", nil, run.Event{Kind: run.NodeMessage, RunID: "other"}, store.ErrInvalidEvent},
		{"a negative attempt", nil, run.Event{Kind: run.NodeMessage, Node: "a", Attempt: -1}, store.ErrInvalidEvent},
		{"anything after the terminal event", []run.Event{RunState(run.Cancelled, "")}, Message("a", "late"), store.ErrRunEnded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := f.open(t)
			Create(t, s, NewRun("r", "p", "a"))
			if len(tt.prepare) > 0 {
				AppendOK(t, s, "r", tt.prepare...)
			}
			before := Get(t, s, "r")
			// The bad event comes second: the good one before it must not
			// be stored either.
			_, err := s.Append(context.Background(), "r", Message("", "fine"), tt.bad)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v; want %v", err, tt.want)
			}
			after := Get(t, s, "r")
			if after.LastSequence != before.LastSequence || after.State != before.State || after.Nodes[0].State != before.Nodes[0].State {
				t.Errorf("a refused batch changed the run: %+v -> %+v", before, after)
			}
		})
	}
}

func testAppend_UnknownRunIsNotFound(t *testing.T, f Factory) {
	s, _ := f.open(t)
	if _, err := s.Append(context.Background(), "nope", Message("", "x")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("err = %v; want ErrNotFound", err)
	}
}

func testAppend_ConcurrentAppendsToDifferentRunsKeepEachRunGapless(t *testing.T, f Factory) {
	s, _ := f.open(t)
	const runs, perRun = 8, 150
	for i := range runs {
		Create(t, s, NewRun(fmt.Sprint("r", i), "p", "a"))
	}
	var wg sync.WaitGroup
	for i := range runs {
		for range 2 { // two writers per run as well
			wg.Go(func() {
				for j := range perRun / 2 {
					if _, err := s.Append(context.Background(), fmt.Sprint("r", i), Message("a", fmt.Sprint(j))); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	for i := range runs {
		id := fmt.Sprint("r", i)
		evs, err := s.Events(context.Background(), id, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		CheckSequences(t, evs, 1, perRun+1)
		if r := Get(t, s, id); r.LastSequence != perRun+1 {
			t.Errorf("run %s last sequence = %d", id, r.LastSequence)
		}
	}
}

func testAppend_CutsLongTextOnARuneBoundary(t *testing.T, f Factory) {
	s, _ := f.open(t, WithLimits(store.Limits{MaxTextBytes: 100}))
	Create(t, s, NewRun("r", "p", "a"))
	long := strings.Repeat("é", 200) // two bytes each
	ev := NodeState("a", run.NodeRunning, 1)
	AppendOK(t, s, "r", ev)
	fail := NodeState("a", run.NodeFailed, 1)
	fail.Error = &run.Error{Type: "E", Message: long, Traceback: long}
	out := AppendOK(t, s, "r", fail, Message("a", long))
	for _, text := range []string{out[0].Error.Message, out[0].Error.Traceback, out[1].Message} {
		if len(text) > 100 || !utf8.ValidString(text) || !strings.HasSuffix(text, "[truncated by execd]") {
			t.Errorf("text of %d bytes not cut properly: %q", len(text), text)
		}
	}
	if got := Get(t, s, "r").Nodes[0].Error.Message; got != out[0].Error.Message {
		t.Errorf("node error = %q; want the cut text", got)
	}
	if fail.Error.Message != long {
		t.Error("the caller's event was modified")
	}
}

func testAppend_CapsMessagesAndMetricsButNotStateChanges(t *testing.T, f Factory) {
	s, _ := f.open(t, WithLimits(store.Limits{MaxEventsPerRun: 5}))
	Create(t, s, NewRun("r", "p", "a"))
	AppendOK(t, s, "r", RunState(run.Running, ""), NodeState("a", run.NodeRunning, 1), Message("a", "1"), Message("a", "2"))
	if _, err := s.Append(context.Background(), "r", Message("a", "too many")); !errors.Is(err, store.ErrTooManyEvents) {
		t.Fatalf("err = %v; want ErrTooManyEvents", err)
	}
	if _, err := s.Append(context.Background(), "r", Metric("a", "m", 1)); !errors.Is(err, store.ErrTooManyEvents) {
		t.Fatalf("err = %v; want ErrTooManyEvents", err)
	}
	AppendOK(t, s, "r", NodeState("a", run.NodeSucceeded, 1), RunState(run.Succeeded, ""))
	if r := Get(t, s, "r"); r.State != run.Succeeded || r.LastSequence != 7 {
		t.Errorf("run = %s with %d events; want SUCCEEDED with 7", r.State, r.LastSequence)
	}
}

func testAppend_ReturnedEventsDoNotAliasTheCallersError(t *testing.T, f Factory) {
	s, _ := f.open(t)
	Create(t, s, NewRun("r", "p", "a"))
	AppendOK(t, s, "r", NodeState("a", run.NodeRunning, 1))
	ev := NodeState("a", run.NodeFailed, 1)
	ev.Error = &run.Error{Message: "x"}
	out := AppendOK(t, s, "r", ev)
	ev.Error.Message = "changed"
	if out[0].Error.Message != "x" {
		t.Error("the returned event shares the caller's Error")
	}
}
