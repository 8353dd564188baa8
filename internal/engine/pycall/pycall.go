// Package pycall describes one call of a Python node function as the Spark
// backend asks for it and a Python worker pool carries it out. The values
// are the domain's (dates as dates, hyperparameters as values); turning them
// into the worker protocol is the pool's business.
package pycall

import (
	"context"
	"errors"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/plan"
	"github.com/tauro-exec/tauro-exec/internal/engine/run"
)

// Call is one attempt of a Python node.
type Call struct {
	Node             string
	Module, Function string
	// InputViews are global temp views, passed to the function positionally.
	InputViews []string
	// Streaming marks a streaming node's call: a function in tauro's
	// streaming form, fn(input_df, node_config), is called that way.
	Streaming bool
	// StartDate and EndDate are the run's window; zero when the pipeline
	// has none. The function receives them as YYYY-MM-DD strings, as in tauro.
	StartDate, EndDate time.Time
	// ResultView is the global view the worker leaves the result in.
	ResultView string
	// SparkConf is set on the worker's session for the call: the run's
	// spark_config and tauro.ml.<name> for each hyperparameter.
	SparkConf             map[string]string
	AllowedModulePrefixes []string
	// SparkRemote is the server's current sc:// address; empty means the
	// pool's default.
	SparkRemote string

	// What ml_context tells the function.
	Pipeline     string
	RunID        string
	Attempt      int
	StartTime    time.Time
	ModelVersion string
	Hyperparams  map[string]any
	// NodeConfig and PipelineConfig are the node's and the pipeline's
	// configuration as plain JSON values.
	NodeConfig     map[string]any
	PipelineConfig map[string]any
	// MLflow is the attempt's own MLflow run, for an ML node of a tracked
	// run; nil otherwise.
	MLflow *MLflow
	// IfIdle makes the call only when a worker is free now; otherwise Run
	// returns ErrBusy at once. For calls made ahead of time, which must
	// not take a worker from a node that is due.
	IfIdle bool
}

// MLflow is where a node attempt's tracker writes in MLflow. RunID is ""
// when the tracking server could not make the attempt's run in time.
type MLflow struct {
	TrackingURI  string
	ExperimentID string
	RunID        string
	ParentRunID  string
	Required     bool
}

// Event is something a running call reports: exactly one field is set.
type Event struct {
	Metric *Metric
	Log    *Log
}

// Metric is a value the function logged through ml_context["log_metric"].
type Metric struct {
	Name  string
	Value float64
	// Step is the step the function gave (MLflow's); 0 when none.
	Step int64
}

// Log is a line the function printed or logged; Level is info or warning.
type Log struct {
	Level, Text string
}

// Function names one Python node's function for a check.
type Function struct {
	Node             string
	Module, Function string
	// Inputs is how many DataFrames the node passes positionally.
	Inputs int
	// Streaming: the function may also be in tauro's streaming form.
	Streaming bool
	// BatchFunction: it is the node's foreachBatch function (its output's
	// batch_function), called fn(batch_df, batch_id); Inputs and Streaming
	// do not apply.
	BatchFunction bool
	// Split, set for PickleBatchFunction only, asks for the worker's own
	// foreachBatch function instead of Module.Function: see QuarantineSplit.
	Split *QuarantineSplit
	// CDC, for a foreachBatch function, makes it tauro_exec's own change
	// data capture for these settings instead of Module.Function.
	CDC *plan.ChangeCapture
}

// QuarantineSplit is the foreachBatch sink of a streaming node with a
// quarantine: each micro-batch's rows meeting Keep are appended to Sink,
// the others to Quarantine.
type QuarantineSplit struct {
	Keep             string
	Sink, Quarantine BatchWrite
}

// BatchWrite is where a micro-batch's rows are appended. TxnAppID, for a
// delta output, makes a replayed micro-batch write nothing twice.
type BatchWrite struct {
	Format, Path string
	Options      map[string]string
	PartitionBy  []string
	TxnAppID     string
}

// Problem is what a check found wrong with one node's function.
type Problem struct {
	Node, Message string
	// BatchFunction: the problem is with the node's foreachBatch function.
	BatchFunction bool
}

// PickledFunction is a foreachBatch function as Spark Connect's
// WriteStreamOperationStart takes it: the server's own Python workers
// unpickle and call it.
type PickledFunction struct {
	Command []byte
	// PythonVer is the pickling Python's major.minor.
	PythonVer string
}

// ErrRefused is matched (errors.Is) by a PickleBatchFunction call the
// worker refused: the function cannot be loaded or called as asked, and
// asking again will not help until the project's code changes.
var ErrRefused = errors.New("the python worker refused the function")

// ErrBusy is returned by Run for a Call with IfIdle when every worker is
// busy; nothing was called.
var ErrBusy = errors.New("every python worker is busy")

// ErrWorkerDied is matched (errors.Is) by a call whose worker died under
// it. Another worker may well succeed, so the attempt is retryable.
var ErrWorkerDied = errors.New("the python worker died")

// Runner runs Python node functions.
type Runner interface {
	// Run runs one call, reporting events as they come. It returns the
	// node's own failure (an exception in the function) as *run.Error, and
	// a failure to run the call at all (a dead worker, a cancelled ctx) as
	// error; both nil mean the result is in ResultView.
	Run(ctx context.Context, c Call, on func(Event)) (*run.Error, error)
	// CheckFunctions imports each function and checks that it takes its
	// inputs positionally and start_date and end_date as keywords (or, for
	// a streaming node, tauro's input_df and node_config), with modules
	// limited to allowed (empty allows all).
	CheckFunctions(ctx context.Context, fns []Function, allowed []string) ([]Problem, error)
	// PickleBatchFunction imports fn, a foreachBatch function, checks that
	// it takes (batch_df, batch_id), and returns it pickled; a function
	// that cannot be is an error saying why.
	PickleBatchFunction(ctx context.Context, fn Function, allowed []string) (PickledFunction, error)
}
