package storetest

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	"github.com/tauro-exec/tauro-exec/internal/engine/store"
)

func progress(node string, batch int64) run.Event {
	return run.Event{Kind: run.NodeProgress, Node: node, Progress: &run.Progress{
		BatchID: batch, InputRows: 10, InputRate: math.NaN(), ProcessRate: 20, BatchDuration: time.Second, Watermark: "2025-01-01T00:00:00Z",
	}}
}

func testAppend_AStreamingNodeIsLiveUntilItEndsAndKeepsItsProgress(t *testing.T, f Factory) {
	s, _ := f.open(t, WithClock(newClock().Now))
	Create(t, s, NewRun("r", "p", "a"))
	AppendOK(t, s, "r", RunState(run.Running, ""), NodeState("a", run.NodeRunning, 1), NodeState("a", run.NodeStreaming, 0))
	out := AppendOK(t, s, "r", progress("a", 0), progress("a", 1))
	if out[0].Attempt != 1 || out[1].Progress.BatchID != 1 || out[0].Progress.InputRate != 0 {
		t.Errorf("progress events = %+v, %+v; want attempt 1 filled in and NaN rates as 0", out[0], out[0].Progress)
	}
	if a := Get(t, s, "r").Nodes[0]; a.State != run.NodeStreaming || a.Attempt != 1 || len(a.Attempts) != 1 {
		t.Errorf("streaming node = %+v", a)
	}
	// A run cannot end while a query runs.
	if _, err := s.Append(context.Background(), "r", RunState(run.Succeeded, "")); !errors.Is(err, store.ErrInvalidEvent) {
		t.Errorf("ending the run under a streaming node: %v; want ErrInvalidEvent", err)
	}
	AppendOK(t, s, "r", NodeState("a", run.NodeSucceeded, 1), RunState(run.Succeeded, ""))
	a := Get(t, s, "r").Nodes[0]
	if a.State != run.NodeSucceeded || a.Attempts[0].State != run.NodeSucceeded || a.Attempts[0].EndTime.IsZero() {
		t.Errorf("ended node = %+v", a)
	}
	evs, err := s.Events(context.Background(), "r", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []int64
	for _, ev := range evs {
		if ev.Kind == run.NodeProgress {
			got = append(got, ev.Progress.BatchID)
			if ev.Progress.Watermark != "2025-01-01T00:00:00Z" || ev.Progress.BatchDuration != time.Second {
				t.Errorf("stored progress = %+v", ev.Progress)
			}
		}
	}
	if len(got) != 2 || got[0] != 0 || got[1] != 1 {
		t.Errorf("stored batches %v; want 0, 1", got)
	}
}

func testAppend_StreamingAndProgressNeedARunningQuery(t *testing.T, f Factory) {
	s, _ := f.open(t)
	Create(t, s, NewRun("r", "p", "a"))
	AppendOK(t, s, "r", RunState(run.Running, ""))
	for name, ev := range map[string]run.Event{
		"streaming before running":   NodeState("a", run.NodeStreaming, 0),
		"progress of a pending node": progress("a", 0),
		"progress without figures":   {Kind: run.NodeProgress, Node: "a"},
	} {
		if _, err := s.Append(context.Background(), "r", ev); !errors.Is(err, store.ErrInvalidEvent) {
			t.Errorf("%s: %v; want ErrInvalidEvent", name, err)
		}
	}
}

func testAppend_ProgressKeepsItsSourcesSinkAndObservedMetricsAndLagIsAnEvent(t *testing.T, f Factory) {
	s, _ := f.open(t)
	Create(t, s, NewRun("r", "p", "a"))
	AppendOK(t, s, "r", RunState(run.Running, ""), NodeState("a", run.NodeRunning, 1), NodeState("a", run.NodeStreaming, 0))
	p := progress("a", 3)
	p.Progress.Sources = []run.SourceProgress{{Description: "KafkaV2[Subscribe[orders]]", StartOffset: `{"orders":{"0":10}}`,
		EndOffset: `{"orders":{"0":20}}`, LatestOffset: `{"orders":{"0":25}}`, InputRows: 10, InputRate: math.Inf(1)}}
	p.Progress.Sink = &run.SinkProgress{Description: "DeltaSink[/out]", OutputRows: 10}
	p.Progress.Observed = map[string]map[string]any{"dq": {"rows": float64(10), "bad": float64(2)}}
	batch := int64(3)
	AppendOK(t, s, "r", p,
		run.Event{Kind: run.NodeLag, Node: "a", Lag: &run.Lag{State: run.Lagging, Reason: "batch 3 took 9s", BatchID: &batch}},
		run.Event{Kind: run.NodeLag, Node: "a", Lag: &run.Lag{State: run.CaughtUp, Reason: "batch 4 took 1s"}})
	evs, err := s.Events(context.Background(), "r", 4, 0)
	if err != nil || len(evs) != 3 {
		t.Fatalf("events after the streaming one: %+v (%v)", evs, err)
	}
	got := evs[0].Progress
	if len(got.Sources) != 1 || got.Sources[0].EndOffset != `{"orders":{"0":20}}` || got.Sources[0].LatestOffset != `{"orders":{"0":25}}` ||
		got.Sources[0].InputRate != 0 || got.Sink == nil || got.Sink.OutputRows != 10 || got.Observed["dq"]["bad"] != float64(2) {
		t.Errorf("stored progress %+v, sources %+v, sink %+v; want every detail back (an infinite rate as 0)", got, got.Sources, got.Sink)
	}
	if l := evs[1].Lag; evs[1].Kind != run.NodeLag || evs[1].Attempt != 1 || l.State != run.Lagging || l.BatchID == nil || *l.BatchID != 3 {
		t.Errorf("stored lag %+v (%+v)", evs[1], l)
	}
	if l := evs[2].Lag; l.State != run.CaughtUp || l.BatchID != nil {
		t.Errorf("stored catch-up %+v", l)
	}
	for name, ev := range map[string]run.Event{
		"a lag of no state":  {Kind: run.NodeLag, Node: "a", Lag: &run.Lag{State: "SLOW"}},
		"a lag with no lag":  {Kind: run.NodeLag, Node: "a"},
		"a lag of no node":   {Kind: run.NodeLag, Lag: &run.Lag{State: run.Lagging}},
		"a lag of a pending": {Kind: run.NodeLag, Node: "b", Lag: &run.Lag{State: run.Lagging}},
	} {
		if _, err := s.Append(context.Background(), "r", ev); !errors.Is(err, store.ErrInvalidEvent) {
			t.Errorf("%s: %v; want ErrInvalidEvent", name, err)
		}
	}
}

func testRecover_AStreamingNodeLeftByAStoppedExecdIsCancelled(t *testing.T, f Factory) {
	s, dir := f.open(t)
	Create(t, s, NewRun("r", "p", "a"))
	AppendOK(t, s, "r", RunState(run.Running, ""), NodeState("a", run.NodeRunning, 1), NodeState("a", run.NodeStreaming, 0))
	s.Close()
	s2, err := f.reopen(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if _, err := recoverAll(s2); err != nil {
		t.Fatal(err)
	}
	r := Get(t, s2, "r")
	if r.State != run.Interrupted || r.Nodes[0].State != run.NodeCancelled {
		t.Errorf("recovered run %s, node %s; want INTERRUPTED with the node CANCELLED", r.State, r.Nodes[0].State)
	}
}

func testInterruptedQueries_AreTheQueriesOfTheNodesRecoverFoundStreaming(t *testing.T, f Factory) {
	s, dir := f.open(t)
	Create(t, s, NewRun("r", "p", "a", "b", "c"))
	streaming := func(node, session string) run.Event {
		ev := NodeState(node, run.NodeStreaming, 0)
		ev.Query = &run.QueryRef{Session: session, User: "u", ID: "q-" + node, RunID: "1"}
		return ev
	}
	AppendOK(t, s, "r", RunState(run.Running, ""),
		// a's first query failed and a second one runs; b's was stopped; c's runs.
		NodeState("a", run.NodeRunning, 1), streaming("a", "s1"), NodeState("a", run.NodeRetrying, 1),
		NodeState("a", run.NodeRunning, 2), streaming("a", "s1"),
		NodeState("b", run.NodeRunning, 1), streaming("b", "s1"), NodeState("b", run.NodeSucceeded, 1),
		NodeState("c", run.NodeRunning, 1), streaming("c", "s2"))
	if q, err := s.InterruptedQueries(context.Background(), "r"); err != nil || len(q) != 0 {
		t.Errorf("before Recover: %v, %v; want none", q, err)
	}
	s.Close()
	s2, err := f.reopen(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if _, err := recoverAll(s2); err != nil {
		t.Fatal(err)
	}
	got, err := s2.InterruptedQueries(context.Background(), "r")
	if err != nil {
		t.Fatal(err)
	}
	want := []run.QueryRef{{Session: "s1", User: "u", ID: "q-a", RunID: "1"}, {Session: "s2", User: "u", ID: "q-c", RunID: "1"}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("interrupted queries %+v; want %+v (a's and c's, not b's, which had ended)", got, want)
	}
}
