package storetest

import (
	"context"
	"maps"
	"testing"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/run"
)

func testJournal_KeepsValuesAcrossAReopenUntilClearedOrPruned(t *testing.T, f Factory) {
	ctx := context.Background()
	s, dir := f.open(t)
	Create(t, s, NewRun("r", "p", "a"))
	Create(t, s, NewRun("other", "p", "a"))
	lr, lo := Claim(t, s, "r", "replica-1"), Claim(t, s, "other", "replica-1")
	for k, v := range map[string]string{"session": `{"session":"s1"}`, "n/a/1/write/0/x": `{"operation_id":"op"}`, "ran/a": "{}"} {
		if err := s.JournalPut(ctx, lr, k, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.JournalPut(ctx, lr, "session", []byte(`{"session":"s2"}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.JournalPut(ctx, lo, "ran/a", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	s.Close() // as a killed execd leaves it

	s, err := f.reopen(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v, err := s.JournalGet(ctx, "r", "session"); err != nil || string(v) != `{"session":"s2"}` {
		t.Errorf("session = %s, %v; want the value put last", v, err)
	}
	if v, err := s.JournalGet(ctx, "r", "missing"); err != nil || v != nil {
		t.Errorf("a missing key = %q, %v; want nil", v, err)
	}
	got, err := s.JournalList(ctx, "r", "n/a/1/")
	if err != nil || !maps.Equal(mapOf(got), map[string]string{"n/a/1/write/0/x": `{"operation_id":"op"}`}) {
		t.Errorf("list n/a/1/ = %v, %v", mapOf(got), err)
	}
	if err := s.JournalClear(ctx, lr); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.JournalList(ctx, "r", ""); len(got) != 0 {
		t.Errorf("after clear: %v", mapOf(got))
	}
	if got, _ := s.JournalList(ctx, "other", ""); len(got) != 1 {
		t.Errorf("clearing r cleared other's journal: %v", mapOf(got))
	}
	// A pruned run takes its journal with it.
	AppendOK(t, s, "other", RunState(run.Running, ""), RunState(run.Failed, "x"))
	if _, err := s.PruneRuns(ctx, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.JournalList(ctx, "other", ""); len(got) != 0 {
		t.Errorf("a pruned run's journal is still there: %v", mapOf(got))
	}
}

func mapOf(m map[string][]byte) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = string(v)
	}
	return out
}

func testLiveAttempts_SayWhatEachAttemptUnderWayWasDoing(t *testing.T, f Factory) {
	s, _ := f.open(t)
	Create(t, s, NewRun("r", "p", "batch", "stream", "done", "old"))
	ref := &run.QueryRef{Session: "sess", User: "u", ID: "q", RunID: "qr2"}
	streaming := NodeState("stream", run.NodeStreaming, 0)
	streaming.Query = ref
	oldStreaming := NodeState("stream", run.NodeStreaming, 0)
	oldStreaming.Query = &run.QueryRef{Session: "sess", ID: "q", RunID: "qr1"}
	retry := NodeState("stream", run.NodeRetrying, 0)
	retry.Error = &run.Error{Type: "StreamingQueryException", Message: "x"}
	AppendOK(t, s, "r",
		RunState(run.Running, ""),
		NodeState("done", run.NodeRunning, 1), NodeState("done", run.NodeSucceeded, 1),
		NodeState("stream", run.NodeRunning, 1), oldStreaming, progress("stream", 7), retry,
		NodeState("stream", run.NodeRunning, 2), streaming, progress("stream", 8), progress("stream", 9),
		NodeState("batch", run.NodeRunning, 1),
	)
	got, err := s.LiveAttempts(context.Background(), "r")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("live attempts %+v, want batch and stream", got)
	}
	b, st := got[0], got[1]
	if b.Node != "batch" || b.Attempt != 1 || b.Streaming || b.Query != nil || b.LastBatch != -1 || b.Started.IsZero() {
		t.Errorf("batch = %+v", b)
	}
	if st.Node != "stream" || st.Attempt != 2 || !st.Streaming || st.Query == nil || *st.Query != *ref || st.LastBatch != 9 {
		t.Errorf("stream = %+v (query %+v), want attempt 2's query and batch 9", st, st.Query)
	}
}
