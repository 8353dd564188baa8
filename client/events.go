package client

import (
	"strings"
	"time"

	execv1 "github.com/tauro-exec/tauro-exec/gen/tauro/exec/v1"
)

// The contract's enums, under shorter names.
type (
	RunState        = execv1.RunState
	NodeState       = execv1.NodeState
	ExperimentState = execv1.ExperimentState
	TrialState      = execv1.TrialState
)

const (
	RunPending     = execv1.RunState_RUN_STATE_PENDING
	RunQueued      = execv1.RunState_RUN_STATE_QUEUED
	RunRunning     = execv1.RunState_RUN_STATE_RUNNING
	RunSucceeded   = execv1.RunState_RUN_STATE_SUCCEEDED
	RunFailed      = execv1.RunState_RUN_STATE_FAILED
	RunCancelled   = execv1.RunState_RUN_STATE_CANCELLED
	RunInterrupted = execv1.RunState_RUN_STATE_INTERRUPTED
)

const (
	NodePending   = execv1.NodeState_NODE_STATE_PENDING
	NodeRunning   = execv1.NodeState_NODE_STATE_RUNNING
	NodeRetrying  = execv1.NodeState_NODE_STATE_RETRYING
	NodeSucceeded = execv1.NodeState_NODE_STATE_SUCCEEDED
	NodeFailed    = execv1.NodeState_NODE_STATE_FAILED
	NodeCancelled = execv1.NodeState_NODE_STATE_CANCELLED
	NodeSkipped   = execv1.NodeState_NODE_STATE_SKIPPED
	NodeTimedOut  = execv1.NodeState_NODE_STATE_TIMED_OUT
	NodeStreaming = execv1.NodeState_NODE_STATE_STREAMING
)

const (
	ExperimentPending   = execv1.ExperimentState_EXPERIMENT_STATE_PENDING
	ExperimentRunning   = execv1.ExperimentState_EXPERIMENT_STATE_RUNNING
	ExperimentSucceeded = execv1.ExperimentState_EXPERIMENT_STATE_SUCCEEDED
	ExperimentFailed    = execv1.ExperimentState_EXPERIMENT_STATE_FAILED
	ExperimentCancelled = execv1.ExperimentState_EXPERIMENT_STATE_CANCELLED

	TrialRunning   = execv1.TrialState_TRIAL_STATE_RUNNING
	TrialSucceeded = execv1.TrialState_TRIAL_STATE_SUCCEEDED
	TrialFailed    = execv1.TrialState_TRIAL_STATE_FAILED
	TrialCancelled = execv1.TrialState_TRIAL_STATE_CANCELLED
)

// RunTerminal reports a run state that does not change without a repair.
func RunTerminal(s RunState) bool {
	switch s {
	case RunSucceeded, RunFailed, RunCancelled, RunInterrupted:
		return true
	}
	return false
}

// ExperimentTerminal reports an experiment state that does not change.
func ExperimentTerminal(s ExperimentState) bool {
	switch s {
	case ExperimentSucceeded, ExperimentFailed, ExperimentCancelled:
		return true
	}
	return false
}

func runStateName(s RunState) string { return strings.TrimPrefix(s.String(), "RUN_STATE_") }
func experimentStateName(s ExperimentState) string {
	return strings.TrimPrefix(s.String(), "EXPERIMENT_STATE_")
}

// Event is one event of a run. Change is one of *RunStateChanged,
// *NodeStateChanged, *NodeMessage, *NodeMetric, *NodeProgress or
// *RunMessage.
type Event struct {
	RunID    string
	Project  string
	Sequence int64 // per run, from 1, with no gaps
	Time     time.Time
	Change   Change
}

// Change is what an Event reports.
type Change interface{ runChange() }

type RunStateChanged struct {
	State   RunState
	Message string
}

type NodeStateChanged struct {
	Node     string
	State    NodeState
	Attempt  int32
	Error    *NodeError    // set when the attempt failed
	RetryIn  time.Duration // set when State is RETRYING
	Duration time.Duration // set on terminal states
}

type NodeMessage struct {
	Node    string
	Attempt int32
	Level   string // "info" or "warning"
	Text    string
}

type NodeMetric struct {
	Node    string
	Attempt int32
	Name    string
	Value   float64
	Step    int64 // the step the node logged it at; 0 when none
}

// RunMessage is something said about the run as a whole, such as its
// MLflow tracking server not answering.
type RunMessage struct {
	Level string // "info" or "warning"
	Text  string
}

// NodeProgress is one micro-batch of a streaming node's query.
type NodeProgress struct {
	Node                   string
	Attempt                int32
	BatchID                int64
	InputRows              int64
	InputRowsPerSecond     float64
	ProcessedRowsPerSecond float64
	BatchDuration          time.Duration
	Watermark              string
	StateRows              int64
}

func (*RunStateChanged) runChange()  {}
func (*NodeStateChanged) runChange() {}
func (*NodeMessage) runChange()      {}
func (*NodeMetric) runChange()       {}
func (*NodeProgress) runChange()     {}
func (*RunMessage) runChange()       {}

func eventFromProto(e *execv1.RunEvent) Event {
	ev := Event{RunID: e.GetRunId(), Project: e.GetProject(), Sequence: e.GetSequence(), Time: e.GetTime().AsTime()}
	switch k := e.GetKind().(type) {
	case *execv1.RunEvent_RunStateChanged:
		ev.Change = &RunStateChanged{State: k.RunStateChanged.GetState(), Message: k.RunStateChanged.GetMessage()}
	case *execv1.RunEvent_NodeStateChanged:
		c := k.NodeStateChanged
		ev.Change = &NodeStateChanged{Node: c.GetNode(), State: c.GetState(), Attempt: c.GetAttempt(), Error: nodeError(c.GetError()),
			RetryIn: c.GetRetryIn().AsDuration(), Duration: c.GetDuration().AsDuration()}
	case *execv1.RunEvent_NodeMessage:
		c := k.NodeMessage
		ev.Change = &NodeMessage{Node: c.GetNode(), Attempt: c.GetAttempt(), Level: c.GetLevel(), Text: c.GetText()}
	case *execv1.RunEvent_NodeMetric:
		c := k.NodeMetric
		ev.Change = &NodeMetric{Node: c.GetNode(), Attempt: c.GetAttempt(), Name: c.GetName(), Value: c.GetValue(), Step: c.GetStep()}
	case *execv1.RunEvent_RunMessage:
		ev.Change = &RunMessage{Level: k.RunMessage.GetLevel(), Text: k.RunMessage.GetText()}
	case *execv1.RunEvent_NodeProgress:
		c := k.NodeProgress
		ev.Change = &NodeProgress{Node: c.GetNode(), Attempt: c.GetAttempt(), BatchID: c.GetBatchId(), InputRows: c.GetInputRows(),
			InputRowsPerSecond: c.GetInputRowsPerSecond(), ProcessedRowsPerSecond: c.GetProcessedRowsPerSecond(),
			BatchDuration: c.GetBatchDuration().AsDuration(), Watermark: c.GetWatermark(), StateRows: c.GetStateRows()}
	}
	return ev
}

func nodeError(e *execv1.NodeError) *NodeError {
	if e == nil {
		return nil
	}
	return &NodeError{Type: e.GetType(), Message: e.GetMessage(), Traceback: e.GetTraceback(), Retryable: e.GetRetryable()}
}

// ExperimentEvent is one event of an experiment. Change is one of
// *ExperimentStateChanged, *TrialStateChanged or *SharedRunStateChanged.
type ExperimentEvent struct {
	ExperimentID string
	Project      string
	Sequence     int64 // per experiment, from 1, with no gaps
	Time         time.Time
	Change       ExperimentChange
}

// ExperimentChange is what an ExperimentEvent reports.
type ExperimentChange interface{ experimentChange() }

type ExperimentStateChanged struct {
	State   ExperimentState
	Message string
}

// TrialStateChanged is a trial that started (with its parameters and run)
// or ended; Best is set when it became the best so far.
type TrialStateChanged struct {
	Trial *execv1.Trial
	Best  bool
}

// SharedRunStateChanged is the run of the shared nodes starting or ending.
type SharedRunStateChanged struct {
	RunID   string
	State   RunState
	Message string
}

func (*ExperimentStateChanged) experimentChange() {}
func (*TrialStateChanged) experimentChange()      {}
func (*SharedRunStateChanged) experimentChange()  {}

func experimentEventFromProto(e *execv1.ExperimentEvent) ExperimentEvent {
	ev := ExperimentEvent{ExperimentID: e.GetExperimentId(), Project: e.GetProject(), Sequence: e.GetSequence(), Time: e.GetTime().AsTime()}
	switch k := e.GetKind().(type) {
	case *execv1.ExperimentEvent_ExperimentStateChanged:
		ev.Change = &ExperimentStateChanged{State: k.ExperimentStateChanged.GetState(), Message: k.ExperimentStateChanged.GetMessage()}
	case *execv1.ExperimentEvent_TrialStateChanged:
		ev.Change = &TrialStateChanged{Trial: k.TrialStateChanged.GetTrial(), Best: k.TrialStateChanged.GetBest()}
	case *execv1.ExperimentEvent_SharedRunStateChanged:
		c := k.SharedRunStateChanged
		ev.Change = &SharedRunStateChanged{RunID: c.GetRunId(), State: c.GetState(), Message: c.GetMessage()}
	}
	return ev
}
