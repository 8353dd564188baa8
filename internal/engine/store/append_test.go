package store_test

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

func TestAppend_AssignsTheNextSequencesAndTheCommitTime(t *testing.T) {
	clk := newClock()
	s, _ := open(t, store.WithClock(clk.Now))
	create(t, s, newRun("r", "p", "a"))

	out := appendOK(t, s, "r", runState(run.Running, ""), message("a", "hello"))
	started := out[0].Time
	if out[0].Sequence != 2 || out[1].Sequence != 3 {
		t.Errorf("sequences = %d, %d; want 2, 3", out[0].Sequence, out[1].Sequence)
	}
	if out[0].Time.IsZero() || !out[0].Time.Equal(out[1].Time) || out[0].RunID != "r" {
		t.Errorf("events of one batch: times %v/%v, run %q", out[0].Time, out[1].Time, out[0].RunID)
	}
	// A caller's sequence, time or run id is replaced, not trusted.
	out = appendOK(t, s, "r", run.Event{Kind: run.NodeMessage, Node: "a", Sequence: 99})
	if out[0].Sequence != 4 {
		t.Errorf("sequence = %d; want 4", out[0].Sequence)
	}
	r := get(t, s, "r")
	if r.LastSequence != 4 || r.State != run.Running || !r.StartTime.Equal(started) {
		t.Errorf("run = last %d, state %s, start %v", r.LastSequence, r.State, r.StartTime)
	}

	stored, err := s.Events(context.Background(), "r", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	checkSequences(t, stored, 1, 4)
	if stored[2].Message != "hello" || stored[2].Node != "a" || !stored[2].Time.Equal(stored[1].Time) {
		t.Errorf("stored event = %+v", stored[2])
	}
}

func TestAppend_RecordsAttemptsRetriesErrorsAndMetrics(t *testing.T) {
	s, _ := open(t, store.WithClock(newClock().Now))
	create(t, s, newRun("r", "p", "a", "b"))
	boom := &run.Error{Type: "ValueError", Message: "boom", Traceback: "tb", Retryable: true}
	appendOK(t, s, "r",
		runState(run.Running, ""),
		nodeState("a", run.NodeRunning, 1),
		metric("a", "rows", 10),
	)
	retry := nodeState("a", run.NodeRetrying, 1)
	retry.Error = boom
	appendOK(t, s, "r", retry)

	mid := get(t, s, "r")
	a := mid.Nodes[0]
	if a.State != run.NodeRetrying || a.Attempt != 1 || a.Error == nil || a.Error.Message != "boom" {
		t.Errorf("retrying node = %+v", a)
	}
	if len(a.Attempts) != 1 || a.Attempts[0].State != run.NodeFailed || a.Attempts[0].EndTime.IsZero() || a.Attempts[0].Error.Type != "ValueError" {
		t.Errorf("failed attempt = %+v", a.Attempts)
	}

	appendOK(t, s, "r", nodeState("a", run.NodeRunning, 2))
	appendOK(t, s, "r",
		metric("a", "rows", 20),
		metric("a", "rows", 21), // a metric reported again keeps its last value
		metric("a", "bytes", 5),
		nodeState("a", run.NodeSucceeded, 2),
		nodeState("b", run.NodeSkipped, 0),
		runState(run.Failed, "node b skipped"),
	)
	r := get(t, s, "r")
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

func TestAppend_AttemptZeroMeansTheNodesCurrentAttempt(t *testing.T) {
	s, _ := open(t)
	create(t, s, newRun("r", "p", "a"))
	out := appendOK(t, s, "r",
		nodeState("a", run.NodeRunning, 0),
		message("a", "working"),
		metric("a", "m", 1),
		nodeState("a", run.NodeRetrying, 0),
		nodeState("a", run.NodeRunning, 0),
		nodeState("a", run.NodeFailed, 0),
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

func TestAppend_RefusesEventsThatDoNotFitTheRecord(t *testing.T) {
	tests := []struct {
		name    string
		prepare []run.Event
		bad     run.Event
		want    error
	}{
		{"unknown kind", nil, run.Event{Kind: "bogus"}, store.ErrInvalidEvent},
		{"unknown node", nil, nodeState("zz", run.NodeRunning, 1), store.ErrInvalidEvent},
		{"node event without a node", nil, nodeState("", run.NodeRunning, 1), store.ErrInvalidEvent},
		{"unknown node state", nil, nodeState("a", "DANCING", 0), store.ErrInvalidEvent},
		{"unknown run state", nil, runState("DANCING", ""), store.ErrInvalidEvent},
		{"skipping an attempt number", nil, nodeState("a", run.NodeRunning, 2), store.ErrInvalidEvent},
		{"starting a running node again", []run.Event{nodeState("a", run.NodeRunning, 1)}, nodeState("a", run.NodeRunning, 2), store.ErrInvalidEvent},
		{"ending another attempt than the current", []run.Event{nodeState("a", run.NodeRunning, 1)}, nodeState("a", run.NodeFailed, 3), store.ErrInvalidEvent},
		{"succeeding without running", nil, nodeState("a", run.NodeSucceeded, 0), store.ErrInvalidEvent},
		{"retrying a pending node", nil, nodeState("a", run.NodeRetrying, 0), store.ErrInvalidEvent},
		{"leaving a terminal node state", []run.Event{nodeState("a", run.NodeRunning, 1), nodeState("a", run.NodeFailed, 1)}, nodeState("a", run.NodeRunning, 2), store.ErrInvalidEvent},
		{"setting a node PENDING", nil, nodeState("a", run.NodePending, 0), store.ErrInvalidEvent},
		{"setting the run PENDING", nil, runState(run.Pending, ""), store.ErrInvalidEvent},
		{"starting a running run", []run.Event{runState(run.Running, "")}, runState(run.Running, ""), store.ErrInvalidEvent},
		{"ending the run with a node running", []run.Event{nodeState("a", run.NodeRunning, 1)}, runState(run.Succeeded, ""), store.ErrInvalidEvent},
		{"a metric before any attempt", nil, metric("a", "m", 1), store.ErrInvalidEvent},
		{"a NaN metric", []run.Event{nodeState("a", run.NodeRunning, 1)}, metric("a", "m", math.NaN()), store.ErrInvalidEvent},
		{"an infinite metric", []run.Event{nodeState("a", run.NodeRunning, 1)}, metric("a", "m", math.Inf(1)), store.ErrInvalidEvent},
		{"a metric without a name", []run.Event{nodeState("a", run.NodeRunning, 1)}, metric("a", "", 1), store.ErrInvalidEvent},
		{"an event of another run", nil, run.Event{Kind: run.NodeMessage, RunID: "other"}, store.ErrInvalidEvent},
		{"a negative attempt", nil, run.Event{Kind: run.NodeMessage, Node: "a", Attempt: -1}, store.ErrInvalidEvent},
		{"anything after the terminal event", []run.Event{runState(run.Cancelled, "")}, message("a", "late"), store.ErrRunEnded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := open(t)
			create(t, s, newRun("r", "p", "a"))
			if len(tt.prepare) > 0 {
				appendOK(t, s, "r", tt.prepare...)
			}
			before := get(t, s, "r")
			// The bad event comes second: the good one before it must not
			// be stored either.
			_, err := s.Append(context.Background(), "r", message("", "fine"), tt.bad)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v; want %v", err, tt.want)
			}
			after := get(t, s, "r")
			if after.LastSequence != before.LastSequence || after.State != before.State || after.Nodes[0].State != before.Nodes[0].State {
				t.Errorf("a refused batch changed the run: %+v -> %+v", before, after)
			}
		})
	}
}

func TestAppend_UnknownRunIsNotFound(t *testing.T) {
	s, _ := open(t)
	if _, err := s.Append(context.Background(), "nope", message("", "x")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("err = %v; want ErrNotFound", err)
	}
}

func TestAppend_ConcurrentAppendsToDifferentRunsKeepEachRunGapless(t *testing.T) {
	s, _ := open(t)
	const runs, perRun = 8, 150
	for i := range runs {
		create(t, s, newRun(fmt.Sprint("r", i), "p", "a"))
	}
	var wg sync.WaitGroup
	for i := range runs {
		for range 2 { // two writers per run as well
			wg.Go(func() {
				for j := range perRun / 2 {
					if _, err := s.Append(context.Background(), fmt.Sprint("r", i), message("a", fmt.Sprint(j))); err != nil {
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
		checkSequences(t, evs, 1, perRun+1)
		if r := get(t, s, id); r.LastSequence != perRun+1 {
			t.Errorf("run %s last sequence = %d", id, r.LastSequence)
		}
	}
}

func TestAppend_CutsLongTextOnARuneBoundary(t *testing.T) {
	s, _ := open(t, store.WithLimits(store.Limits{MaxTextBytes: 100}))
	create(t, s, newRun("r", "p", "a"))
	long := strings.Repeat("é", 200) // two bytes each
	ev := nodeState("a", run.NodeRunning, 1)
	appendOK(t, s, "r", ev)
	fail := nodeState("a", run.NodeFailed, 1)
	fail.Error = &run.Error{Type: "E", Message: long, Traceback: long}
	out := appendOK(t, s, "r", fail, message("a", long))
	for _, text := range []string{out[0].Error.Message, out[0].Error.Traceback, out[1].Message} {
		if len(text) > 100 || !utf8.ValidString(text) || !strings.HasSuffix(text, "[truncated by execd]") {
			t.Errorf("text of %d bytes not cut properly: %q", len(text), text)
		}
	}
	if got := get(t, s, "r").Nodes[0].Error.Message; got != out[0].Error.Message {
		t.Errorf("node error = %q; want the cut text", got)
	}
	if fail.Error.Message != long {
		t.Error("the caller's event was modified")
	}
}

func TestAppend_CapsMessagesAndMetricsButNotStateChanges(t *testing.T) {
	s, _ := open(t, store.WithLimits(store.Limits{MaxEventsPerRun: 5}))
	create(t, s, newRun("r", "p", "a"))
	appendOK(t, s, "r", runState(run.Running, ""), nodeState("a", run.NodeRunning, 1), message("a", "1"), message("a", "2"))
	if _, err := s.Append(context.Background(), "r", message("a", "too many")); !errors.Is(err, store.ErrTooManyEvents) {
		t.Fatalf("err = %v; want ErrTooManyEvents", err)
	}
	if _, err := s.Append(context.Background(), "r", metric("a", "m", 1)); !errors.Is(err, store.ErrTooManyEvents) {
		t.Fatalf("err = %v; want ErrTooManyEvents", err)
	}
	appendOK(t, s, "r", nodeState("a", run.NodeSucceeded, 1), runState(run.Succeeded, ""))
	if r := get(t, s, "r"); r.State != run.Succeeded || r.LastSequence != 7 {
		t.Errorf("run = %s with %d events; want SUCCEEDED with 7", r.State, r.LastSequence)
	}
}

func TestAppend_ReturnedEventsDoNotAliasTheCallersError(t *testing.T) {
	s, _ := open(t)
	create(t, s, newRun("r", "p", "a"))
	appendOK(t, s, "r", nodeState("a", run.NodeRunning, 1))
	ev := nodeState("a", run.NodeFailed, 1)
	ev.Error = &run.Error{Message: "x"}
	out := appendOK(t, s, "r", ev)
	ev.Error.Message = "changed"
	if out[0].Error.Message != "x" {
		t.Error("the returned event shares the caller's Error")
	}
}
