// Package run holds the records of a pipeline run: the run, its nodes'
// attempts and the events that describe every state change. The scheduler
// produces them, the store keeps them, the service translates them.
package run

import (
	"strings"
	"time"
)

// NodeState is the state of a node within a run.
type NodeState string

const (
	NodePending   NodeState = "PENDING"
	NodeRunning   NodeState = "RUNNING"
	NodeRetrying  NodeState = "RETRYING"
	NodeSucceeded NodeState = "SUCCEEDED"
	NodeFailed    NodeState = "FAILED"
	NodeCancelled NodeState = "CANCELLED"
	NodeSkipped   NodeState = "SKIPPED"
	NodeTimedOut  NodeState = "TIMED_OUT"
	// NodeStreaming is a node whose streaming query has started and keeps
	// running; it is live, not ended.
	NodeStreaming NodeState = "STREAMING"
)

// NodeStates lists every node state, for code that must stay in step with
// them (the contract's enum).
var NodeStates = []NodeState{NodePending, NodeRunning, NodeRetrying, NodeSucceeded, NodeFailed, NodeCancelled, NodeSkipped, NodeTimedOut, NodeStreaming}

// Live reports whether an attempt of the node is under way (RUNNING or
// STREAMING).
func (s NodeState) Live() bool { return s == NodeRunning || s == NodeStreaming }

// Terminal reports whether no further transition follows within one execution.
func (s NodeState) Terminal() bool {
	switch s {
	case NodeSucceeded, NodeFailed, NodeCancelled, NodeSkipped, NodeTimedOut:
		return true
	}
	return false
}

// State is the state of a run.
type State string

const (
	Pending     State = "PENDING"
	Running     State = "RUNNING"
	Succeeded   State = "SUCCEEDED"
	Failed      State = "FAILED"
	Cancelled   State = "CANCELLED"
	Interrupted State = "INTERRUPTED"
	// Queued is a recorded run waiting for admission.
	Queued State = "QUEUED"
)

// States lists every run state.
var States = []State{Pending, Running, Succeeded, Failed, Cancelled, Interrupted, Queued}

// Terminal reports whether the run has ended (INTERRUPTED runs may be repaired).
func (s State) Terminal() bool {
	switch s {
	case Succeeded, Failed, Cancelled, Interrupted:
		return true
	}
	return false
}

// Error describes why an attempt failed.
type Error struct {
	Type      string `json:"type,omitempty"`
	Message   string `json:"message,omitempty"`
	Traceback string `json:"traceback,omitempty"`
	Retryable bool   `json:"retryable,omitempty"`
}

// Params are what a run was asked to do.
type Params struct {
	// Project names the project the pipeline is one of. The store keeps
	// it in a column of its own, which is what a stored run reads back.
	Project      string         `json:"project,omitempty"`
	Pipeline     string         `json:"pipeline"`
	Env          string         `json:"env"`
	StartDate    string         `json:"start_date,omitempty"`
	EndDate      string         `json:"end_date,omitempty"`
	MaxWorkers   int            `json:"max_workers,omitempty"`
	Hyperparams  map[string]any `json:"hyperparams,omitempty"`
	ModelVersion string         `json:"model_version,omitempty"`
	Select       []string       `json:"select,omitempty"`
	FailFast     bool           `json:"fail_fast,omitempty"`
	// Priority orders the admission queue: higher first.
	Priority int `json:"priority,omitempty"`
	// Isolation is set for an experiment's runs: see plan.Isolation.
	Isolation *Isolation `json:"isolation,omitempty"`
	// FullRefresh and ResetCheckpoint are the streaming nodes the run
	// clears before their query starts (see plan.Clear): once per run, a
	// node whose clear its events record is not cleared again.
	FullRefresh     []string `json:"full_refresh,omitempty"`
	ResetCheckpoint []string `json:"reset_checkpoint,omitempty"`
}

// Isolation says where an experiment's run writes its outputs and reads
// back those of the nodes it leaves out, beside the pipeline's own.
type Isolation struct {
	Writes string   `json:"writes"`
	Reads  string   `json:"reads,omitempty"`
	Shared []string `json:"shared,omitempty"`
	// Experiment is the experiment the run is part of, and Trial which
	// of its trials ("shared" for the run of its shared nodes).
	Experiment string `json:"experiment,omitempty"`
	Trial      string `json:"trial,omitempty"`
}

// Run is a run as stored.
type Run struct {
	ID          string
	RequestID   string
	Params      Params
	State       State
	Message     string
	CreateTime  time.Time
	StartTime   time.Time // zero until it starts
	EndTime     time.Time // zero until it ends
	RepairCount int
	// Nodes in plan order.
	Nodes []Node
	// MLflow is the run's parent run in MLflow; nil when not tracked.
	MLflow *MLflowRun
	// LastSequence is the sequence of the run's newest event.
	LastSequence int64
	// Owner is the replica that executes the run (or did last), under
	// the lease of Epoch; "" for none.
	Owner string
	Epoch int64
}

// Node is one node of a run with its attempts.
type Node struct {
	Name      string
	State     NodeState
	Attempt   int // current attempt, from 1; 0 before the first
	StartTime time.Time
	EndTime   time.Time
	Error     *Error
	Attempts  []Attempt
}

// Attempt is one try at running a node.
type Attempt struct {
	Attempt   int
	State     NodeState
	StartTime time.Time
	EndTime   time.Time
	Error     *Error
	Metrics   map[string]float64
	// MLflow is the attempt's child run in MLflow; nil when not tracked.
	MLflow *MLflowRun
	// Expectations are how the node's expectations held over what the
	// attempt produced; summed over micro-batches for a streaming node.
	Expectations []ExpectationResult
}

// MLflowRun is a run in an MLflow tracking server.
type MLflowRun struct {
	TrackingURI  string
	ExperimentID string
	RunID        string
}

// URL is the run's page in the MLflow UI.
func (m MLflowRun) URL() string {
	return strings.TrimRight(m.TrackingURI, "/") + "/#/experiments/" + m.ExperimentID + "/runs/" + m.RunID
}

// EventKind says which fields of an Event are set.
type EventKind string

const (
	RunStateChanged  EventKind = "run_state"
	NodeStateChanged EventKind = "node_state"
	NodeMessage      EventKind = "node_message"
	NodeMetric       EventKind = "node_metric"
	NodeProgress     EventKind = "node_progress"
	NodeLag          EventKind = "node_lag"
	// RunMessage is something said about the run as a whole (Level and
	// Message), such as its MLflow tracking server not answering.
	RunMessage EventKind = "run_message"
	// NodeExpectations reports a node's expectations: once per batch
	// attempt, once per micro-batch of a streaming one.
	NodeExpectations EventKind = "node_expectations"
)

// Progress is one micro-batch of a streaming node's query.
type Progress struct {
	BatchID   int64 `json:"batch_id"`
	InputRows int64 `json:"input_rows"`
	// InputRate and ProcessRate are rows per second.
	InputRate     float64       `json:"input_rate,omitempty"`
	ProcessRate   float64       `json:"process_rate,omitempty"`
	BatchDuration time.Duration `json:"batch_duration,omitempty"`
	// Watermark is the event-time watermark, RFC 3339; "" when none.
	Watermark string `json:"watermark,omitempty"`
	StateRows int64  `json:"state_rows,omitempty"`
	// Sources are each source's part, in the query's order.
	Sources []SourceProgress `json:"sources,omitempty"`
	// Sink is what the batch wrote; nil when Spark did not say.
	Sink *SinkProgress `json:"sink,omitempty"`
	// Observed are the batch's observed metrics (Dataset.observe), by
	// observation name: each a row of named values.
	Observed map[string]map[string]any `json:"observed,omitempty"`
}

// SourceProgress is one source's part of a micro-batch. Offsets are the
// source's own JSON.
type SourceProgress struct {
	Description  string  `json:"description"`
	StartOffset  string  `json:"start_offset,omitempty"`
	EndOffset    string  `json:"end_offset,omitempty"`
	LatestOffset string  `json:"latest_offset,omitempty"`
	InputRows    int64   `json:"input_rows"`
	InputRate    float64 `json:"input_rate,omitempty"`
	ProcessRate  float64 `json:"process_rate,omitempty"`
}

// SinkProgress is what a micro-batch wrote; OutputRows is -1 when the
// sink does not say.
type SinkProgress struct {
	Description string `json:"description"`
	OutputRows  int64  `json:"output_rows"`
}

// LagState says whether a streaming query keeps up.
type LagState string

const (
	Lagging  LagState = "LAGGING"
	CaughtUp LagState = "CAUGHT_UP"
)

// Lag is a streaming query starting to lag or catching up.
type Lag struct {
	State  LagState `json:"state"`
	Reason string   `json:"reason,omitempty"`
	// BatchID is the batch that showed it; nil for "no batch came".
	BatchID *int64 `json:"batch_id,omitempty"`
}

// QueryRef is where a streaming node's query runs, as its STREAMING event
// records it: the backend session that owns the query (and the user it was
// opened as), and the query's ids. A stream never ends by itself, so an
// execd that finds the run interrupted uses it to end what the killed one
// left running.
type QueryRef struct {
	Session string `json:"session"`
	User    string `json:"user,omitempty"`
	ID      string `json:"id,omitempty"`
	RunID   string `json:"run_id,omitempty"`
}

// LiveAttempt is a node attempt that was under way when its execd stopped,
// as the run's record has it: what a restarted execd needs to take it up.
type LiveAttempt struct {
	Node      string
	Attempt   int
	Started   time.Time
	Streaming bool
	// Query is where a streaming attempt's query runs (its STREAMING
	// event); nil for a batch attempt.
	Query *QueryRef
	// LastBatch is the newest micro-batch a progress event of the attempt
	// reported; -1 when none did.
	LastBatch int64
}

// Event is one entry of a run's append-only log. Sequence is assigned by the
// store when the event is committed: 1, 2, 3... per run.
type Event struct {
	RunID    string    `json:"-"`
	Sequence int64     `json:"-"`
	Time     time.Time `json:"-"`
	Kind     EventKind `json:"kind"`

	// RunStateChanged
	RunState State `json:"run_state,omitempty"`

	// Node events
	Node      string        `json:"node,omitempty"`
	NodeState NodeState     `json:"node_state,omitempty"`
	Attempt   int           `json:"attempt,omitempty"`
	Error     *Error        `json:"error,omitempty"`
	RetryIn   time.Duration `json:"retry_in,omitempty"`
	Duration  time.Duration `json:"duration,omitempty"`

	// RunStateChanged reason, or NodeMessage text.
	Message string `json:"message,omitempty"`
	Level   string `json:"level,omitempty"` // NodeMessage: "info" or "warning"

	// NodeMetric
	MetricName  string  `json:"metric_name,omitempty"`
	MetricValue float64 `json:"metric_value,omitempty"`
	// MetricStep is the step the node logged the value at (MLflow's).
	MetricStep int64 `json:"metric_step,omitempty"`

	// NodeProgress
	Progress *Progress `json:"progress,omitempty"`

	// NodeLag
	Lag *Lag `json:"lag,omitempty"`

	// NodeExpectations
	Expectations *Expectations `json:"expectations,omitempty"`

	// NodeStateChanged to STREAMING: where the query runs.
	Query *QueryRef `json:"query,omitempty"`

	// Cleared, on a NodeMessage, records that the run has cleared the
	// node as its full_refresh or reset_checkpoint asked: a repair or a
	// restart of the run does not clear it again.
	Cleared string `json:"cleared,omitempty"`
}

// Terminal reports whether e ends the run's event stream.
func (e Event) Terminal() bool {
	return e.Kind == RunStateChanged && e.RunState.Terminal()
}
