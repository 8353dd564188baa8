package storetest

import (
	"context"
	"errors"
	"testing"

	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	"github.com/tauro-exec/tauro-exec/internal/engine/store"
)

func expectations(batch *int64, passed, failed int64) run.Event {
	return run.Event{Kind: run.NodeExpectations, Node: "a", Expectations: &run.Expectations{BatchID: batch, Results: []run.ExpectationResult{
		{Name: "positive", Kind: "drop", Passed: passed, Failed: failed, Severity: "warn", OK: failed == 0, Message: "some rows do not meet amount > 0"},
		{Name: "row_count", Kind: "row_count", Passed: passed, Severity: "error", OK: true},
	}}}
}

// A streaming attempt's expectations come a micro-batch at a time; the
// attempt holds their sums, and an expectation broken in one batch stays
// broken.
func testAppend_ExpectationsAreEventsAndSumIntoTheirAttempt(t *testing.T, f Factory) {
	s, _ := f.open(t)
	Create(t, s, NewRun("r", "p", "a", "b"))
	AppendOK(t, s, "r", RunState(run.Running, ""), NodeState("a", run.NodeRunning, 1), NodeState("a", run.NodeStreaming, 0))
	b1, b2 := int64(1), int64(2)
	AppendOK(t, s, "r", expectations(&b1, 90, 10), expectations(&b2, 100, 0))
	evs, err := s.Events(context.Background(), "r", 4, 0)
	if err != nil || len(evs) != 2 || evs[0].Kind != run.NodeExpectations || evs[0].Attempt != 1 ||
		*evs[0].Expectations.BatchID != 1 || evs[0].Expectations.Results[0].Failed != 10 {
		t.Fatalf("stored expectations %+v (%v)", evs, err)
	}
	r, err := s.GetRun(context.Background(), "r")
	if err != nil {
		t.Fatal(err)
	}
	got := r.Nodes[0].Attempts[0].Expectations
	if len(got) != 2 || got[0].Passed != 190 || got[0].Failed != 10 || got[0].OK || got[0].Message == "" || got[1].Passed != 190 || !got[1].OK {
		t.Errorf("attempt 1's expectations = %+v; want the two batches summed, positive broken", got)
	}
	for name, ev := range map[string]run.Event{
		"no results":     {Kind: run.NodeExpectations, Node: "a", Expectations: &run.Expectations{}},
		"no body":        {Kind: run.NodeExpectations, Node: "a"},
		"no node":        {Kind: run.NodeExpectations, Expectations: expectations(nil, 1, 0).Expectations},
		"a pending node": {Kind: run.NodeExpectations, Node: "b", Expectations: expectations(nil, 1, 0).Expectations},
	} {
		if _, err := s.Append(context.Background(), "r", ev); !errors.Is(err, store.ErrInvalidEvent) {
			t.Errorf("%s: %v; want ErrInvalidEvent", name, err)
		}
	}
}
