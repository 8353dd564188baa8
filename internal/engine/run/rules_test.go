package run

import (
	"errors"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func noLive() (string, NodeState, error) { return "", "", nil }

func TestApplyRunState_FollowsTheRunsStateMachine(t *testing.T) {
	tests := []struct {
		name   string
		from   State
		to     State
		repair bool
		live   LiveNode
		ok     bool
	}{
		{"pending queues", Pending, Queued, false, noLive, true},
		{"pending starts", Pending, Running, false, noLive, true},
		{"queued starts", Queued, Running, false, noLive, true},
		{"queued is cancelled before it starts", Queued, Cancelled, false, noLive, true},
		{"running succeeds", Running, Succeeded, false, noLive, true},
		{"running cannot queue", Running, Queued, false, noLive, false},
		{"running cannot start again", Running, Running, false, noLive, false},
		{"only a repair sets pending", Failed, Pending, false, noLive, false},
		{"a repair reopens", Failed, Pending, true, noLive, true},
		{"a run cannot end with a node under way", Running, Failed, false, func() (string, NodeState, error) { return "a", NodeRunning, nil }, false},
		{"unknown state", Running, State("BOGUS"), false, noLive, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := RunRecord{ID: "r", State: tt.from}
			ev := Event{Kind: RunStateChanged, RunState: tt.to, Message: "m"}
			err := ApplyRunState(&r, &ev, tt.repair, t0, tt.live)
			if tt.ok != (err == nil) {
				t.Fatalf("%s -> %s: err = %v; want ok %v", tt.from, tt.to, err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidEvent) {
				t.Errorf("err = %v; want ErrInvalidEvent", err)
			}
			if err == nil && (r.State != tt.to || r.Message != "m") {
				t.Errorf("record = %+v; want state %s with the event's message", r, tt.to)
			}
		})
	}
}

func TestApplyRunState_StampsStartOnceAndEndAtTheEnd(t *testing.T) {
	r := RunRecord{ID: "r", State: Pending}
	run := Event{Kind: RunStateChanged, RunState: Running}
	if err := ApplyRunState(&r, &run, false, t0, noLive); err != nil || !r.Start.Equal(t0) {
		t.Fatalf("start = %v, %v", r.Start, err)
	}
	end := Event{Kind: RunStateChanged, RunState: Failed}
	if err := ApplyRunState(&r, &end, false, t0.Add(time.Second), noLive); err != nil || !r.End.Equal(t0.Add(time.Second)) {
		t.Fatalf("end = %v, %v", r.End, err)
	}
	reopen := Event{Kind: RunStateChanged, RunState: Pending}
	if err := ApplyRunState(&r, &reopen, true, t0.Add(2*time.Second), noLive); err != nil || !r.End.IsZero() || !r.Start.Equal(t0) {
		t.Fatalf("after a repair: start %v end %v, %v; want the first start kept and no end", r.Start, r.End, err)
	}
}

func TestCheckAppend_NothingFollowsAnEndButARepair(t *testing.T) {
	ended := RunRecord{ID: "r", State: Succeeded}
	if err := CheckAppend(ended, Event{Kind: NodeMessage, Node: "a"}, false); !errors.Is(err, ErrRunEnded) {
		t.Errorf("a message after the end: %v; want ErrRunEnded", err)
	}
	if err := CheckAppend(ended, Event{Kind: RunStateChanged, RunState: Pending}, true); err != nil {
		t.Errorf("a repair's PENDING: %v", err)
	}
	if err := CheckAppend(ended, Event{Kind: RunStateChanged, RunState: Pending}, false); !errors.Is(err, ErrRunEnded) {
		t.Errorf("a PENDING outside a repair: %v; want ErrRunEnded", err)
	}
}

func TestApplyNodeState_OpensAndClosesAttempts(t *testing.T) {
	boom := &Error{Type: "IOError", Message: "flaky"}
	n := NodeRecord{Name: "a", State: NodePending}
	step := func(st NodeState, attempt int, e *Error) AttemptChange {
		t.Helper()
		ev := Event{Kind: NodeStateChanged, Node: "a", NodeState: st, Attempt: attempt, Error: e}
		ch, err := ApplyNodeState("r", &n, &ev, false, t0)
		if err != nil {
			t.Fatalf("%s: %v", st, err)
		}
		return ch
	}
	if ch := step(NodeRunning, 0, nil); ch.Open != 1 || ch.Close != 0 || n.Attempt != 1 {
		t.Fatalf("first RUNNING: %+v, attempt %d; want attempt 1 opened", ch, n.Attempt)
	}
	if ch := step(NodeRetrying, 0, boom); ch.Close != 1 || ch.CloseState != NodeFailed || ch.CloseError != boom {
		t.Fatalf("RETRYING: %+v; want attempt 1 closed FAILED with the error", ch)
	}
	if ch := step(NodeRunning, 2, nil); ch.Open != 2 || n.Error != nil {
		t.Fatalf("second RUNNING: %+v, error %v; want attempt 2 opened and the error cleared", ch, n.Error)
	}
	if ch := step(NodeStreaming, 0, nil); ch.Open != 0 || ch.Close != 0 {
		t.Fatalf("STREAMING: %+v; want the same attempt", ch)
	}
	if ch := step(NodeSucceeded, 2, nil); ch.Close != 2 || ch.CloseState != NodeSucceeded || !n.End.Equal(t0) {
		t.Fatalf("SUCCEEDED: %+v; want attempt 2 closed", ch)
	}
}

func TestApplyNodeState_RefusesWhatDoesNotFollow(t *testing.T) {
	tests := []struct {
		name    string
		node    NodeRecord
		to      NodeState
		attempt int
		repair  bool
	}{
		{"a pending node cannot succeed", NodeRecord{State: NodePending}, NodeSucceeded, 0, false},
		{"a running node cannot start again", NodeRecord{State: NodeRunning, Attempt: 1}, NodeRunning, 0, false},
		{"attempt numbers do not restart", NodeRecord{State: NodeRetrying, Attempt: 2}, NodeRunning, 1, false},
		{"an event about another attempt", NodeRecord{State: NodeRunning, Attempt: 2}, NodeFailed, 1, false},
		{"only a running node streams", NodeRecord{State: NodePending}, NodeStreaming, 0, false},
		{"only a live node retries", NodeRecord{State: NodePending}, NodeRetrying, 0, false},
		{"an ended node does not end again", NodeRecord{State: NodeFailed, Attempt: 1}, NodeCancelled, 0, false},
		{"only a repair resets", NodeRecord{State: NodeFailed, Attempt: 1}, NodePending, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := tt.node
			n.Name = "a"
			ev := Event{Kind: NodeStateChanged, Node: "a", NodeState: tt.to, Attempt: tt.attempt}
			if _, err := ApplyNodeState("r", &n, &ev, tt.repair, t0); !errors.Is(err, ErrInvalidEvent) {
				t.Errorf("err = %v; want ErrInvalidEvent", err)
			}
			if n.State != tt.node.State {
				t.Errorf("a refused event changed the node to %s", n.State)
			}
		})
	}
}

func TestApplyNodeState_APendingNodeMayEndWithoutAnAttempt(t *testing.T) {
	for _, st := range []NodeState{NodeFailed, NodeCancelled, NodeSkipped, NodeTimedOut} {
		n := NodeRecord{Name: "a", State: NodePending}
		ev := Event{Kind: NodeStateChanged, Node: "a", NodeState: st}
		ch, err := ApplyNodeState("r", &n, &ev, false, t0)
		if err != nil || ch != (AttemptChange{}) || n.State != st {
			t.Errorf("PENDING -> %s: %+v, %v", st, ch, err)
		}
	}
}

func TestApplyMetricAndMessage_NameAnAttemptThatStarted(t *testing.T) {
	n := NodeRecord{Name: "a", State: NodeRunning, Attempt: 2}
	m := Event{Kind: NodeMetric, Node: "a", MetricName: "rows"}
	if err := ApplyMetric("r", n, &m); err != nil || m.Attempt != 2 {
		t.Errorf("metric: attempt %d, %v; want the current attempt", m.Attempt, err)
	}
	m = Event{Kind: NodeMetric, Node: "a", MetricName: "rows", Attempt: 3}
	if err := ApplyMetric("r", n, &m); !errors.Is(err, ErrInvalidEvent) {
		t.Errorf("a metric of an attempt not started: %v", err)
	}
	msg := Event{Kind: NodeMessage, Attempt: 1}
	if err := ApplyMessage("r", nil, &msg); !errors.Is(err, ErrInvalidEvent) {
		t.Errorf("a run message naming an attempt: %v", err)
	}
	p := Event{Kind: NodeProgress, Node: "a"}
	if err := ApplyProgress("r", NodeRecord{Name: "a", State: NodeSucceeded, Attempt: 1}, &p); !errors.Is(err, ErrInvalidEvent) {
		t.Errorf("progress of an ended node: %v", err)
	}
}
