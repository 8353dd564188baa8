// Package plan turns one pipeline of a tauro project into what execd runs:
// it resolves every node's configuration, validates the pipeline as a whole
// and orders its nodes into a deterministic plan.
//
// Validation reports every problem at once (a problem.List), each with the
// field it concerns and the fix, because a user who fixes one error only to
// meet the next learns to distrust the tool. The package knows nothing of
// Spark or gRPC: the scheduler consumes a *Pipeline and the service turns a
// problem.List into INVALID_ARGUMENT.
package plan

import (
	"strings"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/config"
	"github.com/tauro-exec/tauro-exec/internal/engine/retry"
)

// Pipeline types, as tauro spells them. ml runs like batch.
const (
	TypeBatch     = "batch"
	TypeStreaming = "streaming"
	TypeHybrid    = "hybrid"
	TypeML        = "ml"
)

// Node kinds.
const (
	// KindPython calls Module.Function in a Python worker.
	KindPython = "python"
	// KindSQL runs SQL on Spark, with no Python.
	KindSQL = "sql"
	// KindPassthrough is a streaming node without a function, as tauro
	// allows: it writes its one input stream to its output unchanged.
	KindPassthrough = "passthrough"
)

// Request is what a caller asks to validate or run.
type Request struct {
	Pipeline string
	// StartDate and EndDate are YYYY-MM-DD; empty falls back to the global
	// settings' start_date and end_date.
	StartDate, EndDate string
	// Select narrows the run, dbt style: "node" that node, "+node" with
	// everything upstream, "node+" with everything downstream, "+node+"
	// both. Several selectors add up. Empty runs the whole pipeline.
	Select []string
	// MaxWorkers caps the nodes running at once; 0 takes the global
	// max_parallel_nodes.
	MaxWorkers int
	// Hyperparams go over the pipeline's and the global defaults; a node's
	// own still win over them.
	Hyperparams map[string]any
	// ModelVersion, when set, wins over the pipeline's and the global one.
	ModelVersion string
	// Isolate, when set, keeps the run's writes apart from the pipeline's
	// own outputs: an experiment's runs write beside them.
	Isolate *Isolation
	// FullRefresh and ResetCheckpoint name the selected streaming nodes
	// whose checkpoint (and, for a full refresh, sink) the run deletes
	// before their query starts: see Clear.
	FullRefresh, ResetCheckpoint []string
}

// Isolation moves a run's outputs beside the pipeline's own: a selected
// node writes <path>.experiments/<Writes> instead of <path>, and an output
// of a Shared node left out of the selection is read back from
// <path>.experiments/<Reads>. An experiment's trials run this way, each in
// its own folder, reading what its shared nodes wrote once; the
// pipeline's own tables are never touched, and two trials never write
// the same place.
type Isolation struct {
	Writes, Reads string
	// Shared are the nodes whose outputs are read back from Reads; other
	// nodes left out are read from their own outputs, as in any run.
	Shared []string
	// Experiment is the experiment the run is part of, and Trial which
	// of its trials ("shared" for the run of its shared nodes): its MLflow
	// run is nested under the experiment's.
	Experiment, Trial string
}

// Isolated is where path goes under sub.
func Isolated(path, sub string) string {
	if path == "" || sub == "" {
		return path
	}
	return strings.TrimRight(path, "/") + ".experiments/" + sub
}

// Pipeline is a validated pipeline with its plan.
type Pipeline struct {
	// Project names the project the pipeline is one of (the engine sets
	// it): backends run its Python nodes in that project's workers.
	Project string
	Name    string
	// Env is the project environment the pipeline was resolved for,
	// normalised ("dev", "prod", "sandbox_x"...).
	Env string
	// Type is batch, streaming, hybrid or ml.
	Type string
	// Nodes are the selected nodes in declaration order.
	Nodes []*Node
	Plan  Plan
	// StartDate and EndDate are the effective dates (the request's, else the
	// global defaults), parsed once here; zero only when the pipeline
	// requires no dates and none were given.
	StartDate, EndDate time.Time
	// MaxWorkers is the request's, else global max_parallel_nodes, else 4.
	MaxWorkers int
	Settings   Settings
	// Hyperparams are the run's: the global default_hyperparams, overridden
	// by the pipeline's, overridden by the request's. Each node's effective
	// ones are in Node.Hyperparams.
	Hyperparams map[string]any
	// ModelVersion is the request's, else the pipeline's model_version, else
	// the global default_model_version.
	ModelVersion string
	// SparkConfig is the global spark_config overridden by the pipeline's.
	SparkConfig map[string]string
	// BreakerThreshold stops the run after this many node failures in a
	// row (global circuit_breaker_threshold, else 5).
	BreakerThreshold int
	// StreamTimeout, when set (the pipeline's stream_timeout), ends each
	// streaming query that long after it started, after its current
	// micro-batch; the node then succeeds. 0 lets queries run until the
	// run is stopped.
	StreamTimeout time.Duration
	// MaxActiveRuns is how many runs of this pipeline in this environment
	// may execute at once (the pipeline's max_active_runs, default 1);
	// further runs wait in the queue.
	MaxActiveRuns int
	// Config is the pipeline's configuration as plain values, for Python
	// nodes' ml_context.
	Config map[string]any
	// Isolation is the request's: set for an experiment's runs, whose
	// paths it has already moved.
	Isolation *Isolation
}

// Upstream is a dependency a selection left out: its name and its outputs.
type Upstream struct {
	Name    string
	Outputs []OutputSpec
}

// Node is one node, resolved.
type Node struct {
	Name string
	// Index is the node's position in the pipeline's nodes list, whatever
	// the selection.
	Index int
	// Kind is KindPython, KindSQL or KindPassthrough.
	Kind string
	// Module and Function name the Python function; a dotted
	// function ("pkg.mod.fn") is split at its last dot.
	Module, Function string
	SQL              string
	// Dependencies are the nodes this one waits for, explicit and automatic
	// (an input written by another node), de-duplicated, in declaration
	// order. A dependency on a node left out by the selection is dropped
	// here and kept in Outside: a selected run assumes the unselected
	// upstream already ran and reads what it wrote.
	Dependencies []string
	// Outside are the dependencies the selection left out, with their
	// outputs: the node's SQL reads their results by name, read back from
	// what they wrote.
	Outside []Upstream
	// Inputs are input keys as written: keys of the input config, or output
	// keys written by another node of the pipeline (see ProducedBy).
	Inputs []string
	// InputSpecs are Inputs resolved: who produces each and how to read it.
	InputSpecs []Input
	// InlineInput is tauro's streaming form, an input configuration written
	// in the node itself ({format: kafka, options: ...}).
	InlineInput *config.Map
	// ProducedBy maps each input written by another node of the pipeline to
	// that node (selected or not). Nil when there are none.
	ProducedBy map[string]string
	// ReadAs maps, for a streaming node, each input written by another node
	// to the streaming format that reads it (parquet via file_stream, delta
	// via delta_stream). Nil when there are none.
	ReadAs map[string]string
	// Outputs are the output keys as written; OutputKeys[i] is Outputs[i]
	// parsed.
	Outputs    []string
	OutputKeys []config.OutputKey
	// OutputSpecs[i] is where and how Outputs[i] is written.
	OutputSpecs []OutputSpec
	// Stream is how a streaming node runs; nil for batch nodes.
	Stream *StreamSpec
	// InlineOutput is tauro's streaming form of an output.
	InlineOutput *config.Map
	Streaming    bool
	// Trigger, OutputMode and Checkpoint are set for streaming nodes.
	Trigger    Trigger
	OutputMode string
	Checkpoint string
	// Retry is the node's retry policy: its max_retries, retry_delay,
	// retry_backoff and retry_max_delay, else the global ones.
	Retry retry.Policy
	// Timeout is the node's timeout_seconds, else the global
	// node_timeout_seconds; 0 means none. Streaming nodes have none unless
	// they set one, since a stream is meant to keep running.
	Timeout time.Duration
	// Hyperparams are the node's effective hyperparameters: the run's
	// (Pipeline.Hyperparams) overridden by the node's own.
	Hyperparams map[string]any
	// ML marks an ML node, as tauro tells them: one with an ml section or
	// hyperparams of its own, or any node of an ml pipeline, unless it
	// says mlops_enabled: false. Its attempts are MLflow runs when the
	// mlops block is on.
	ML bool
	// EarlyCall lets a batch Python node's function be called while its
	// upstreams write (the node's early_call, else the global
	// early_function_calls; see the Spark backend's early.go).
	EarlyCall   bool
	Description string
	// Expectations are the node's row rules and Checks its whole-result
	// checks, in the order written.
	Expectations []Expectation
	Checks       []Check
	// Quarantine is where rows its drop and fail expectations leave out
	// are written; nil when they are only counted.
	Quarantine *OutputSpec
	// Config is the node's configuration, the pipeline entry's overrides
	// applied, as plain values for Python nodes' ml_context.
	Config map[string]any
	// raw is the same configuration as read, for resolution.
	raw *config.Map
}

// MaxRetries is tauro's max_retries: the attempts after the first.
func (n *Node) MaxRetries() int { return max(n.Retry.MaxAttempts-1, 0) }

// FunctionInputs are the views a Python node's function gets as its
// DataFrames, in order: a streaming node's sources (its inline input, which
// tauro hands a streaming function, or its input keys), else the node's
// input keys.
func (n *Node) FunctionInputs() []string {
	if n.Stream == nil {
		return n.Inputs
	}
	keys := make([]string, len(n.Stream.Sources))
	for i, src := range n.Stream.Sources {
		keys[i] = src.Key
	}
	return keys
}

// Plan is the order the selected nodes run in.
type Plan struct {
	// Order is a topological order: of the nodes whose dependencies are
	// done, the one declared first comes next.
	Order []string
	// Stages[i] holds the nodes whose longest dependency chain has length i,
	// in declaration order. The scheduler does not wait for a stage to end
	// (a node starts when its own dependencies are done); stages say what
	// may run together.
	Stages [][]string
	// CriticalPath is a longest dependency chain; of several, the one ending
	// at the first-declared node and, from there back, taking the
	// first-declared dependency at each step.
	CriticalPath []string
	// Batch and Streaming split Order.
	Batch, Streaming []string
}

// Resolve validates the pipeline req names and builds its plan. It returns
// every problem found at once, as a problem.List, not only the first.
func Resolve(p *config.Project, req Request) (*Pipeline, error) {
	r := &resolver{proj: p, req: req}
	out := r.resolve()
	if err := r.probs.Err(); err != nil {
		return nil, err
	}
	return out, nil
}
