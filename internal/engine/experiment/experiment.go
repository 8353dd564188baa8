// Package experiment holds what a hyperparameter search is made of: its
// specification (a pipeline, a search space, an objective, a budget), the
// records of the experiment and its trials, the events that describe every
// change, and the Suggester that proposes each trial. It decides nothing
// about running: the engine orchestrates trials as runs, the store keeps the
// records, and a Python worker's optimiser implements Suggester.
package experiment

import (
	"context"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/run"
)

// Kind is what values a dimension takes.
type Kind string

const (
	Real        Kind = "real"
	Integer     Kind = "integer"
	Categorical Kind = "categorical"
)

// Prior is how a numeric dimension is sampled.
type Prior string

const (
	Uniform    Prior = "uniform"
	LogUniform Prior = "log-uniform"
)

// Dimension is one searched hyperparameter, tauro's (and skopt's) Real,
// Integer or Categorical.
type Dimension struct {
	Name       string  `json:"name"`
	Kind       Kind    `json:"kind"`
	Low        float64 `json:"low,omitempty"`
	High       float64 `json:"high,omitempty"`
	Prior      Prior   `json:"prior,omitempty"`
	Categories []any   `json:"categories,omitempty"`
}

// Direction says whether the objective is minimised or maximised.
type Direction string

const (
	Minimize Direction = "minimize"
	Maximize Direction = "maximize"
)

// Sampler is how trials are proposed: TPE (Bayesian) or random.
type Sampler string

const (
	TPE    Sampler = "tpe"
	Random Sampler = "random"
)

// Objective is the metric a trial is judged by: what Node logs with
// ml_context["log_metric"] under Metric.
type Objective struct {
	Metric    string    `json:"metric"`
	Node      string    `json:"node,omitempty"`
	Direction Direction `json:"direction,omitempty"`
}

// Better reports whether a beats b under d.
func (d Direction) Better(a, b float64) bool {
	if d == Maximize {
		return a > b
	}
	return a < b
}

// Spec is an experiment as asked for, and, once the engine has decided it,
// as it runs: every field is then set (the node, the dates, the seed).
type Spec struct {
	// Name is the declared experiment it came from, if any.
	Name string `json:"name,omitempty"`
	// Project names the project of the pipeline; the store keeps it in a
	// column of its own, which is what a stored experiment reads back.
	Project     string         `json:"project,omitempty"`
	Pipeline    string         `json:"pipeline"`
	Env         string         `json:"env,omitempty"`
	Select      []string       `json:"select,omitempty"`
	Space       []Dimension    `json:"space"`
	Objective   Objective      `json:"objective"`
	NTrials     int            `json:"n_trials"`
	MaxParallel int            `json:"max_parallel_trials"`
	Seed        int64          `json:"seed"`
	Sampler     Sampler        `json:"sampler,omitempty"`
	StartDate   string         `json:"start_date,omitempty"`
	EndDate     string         `json:"end_date,omitempty"`
	Hyperparams map[string]any `json:"hyperparams,omitempty"`
}

// State is the state of an experiment.
type State string

const (
	Pending   State = "PENDING"
	Running   State = "RUNNING"
	Succeeded State = "SUCCEEDED"
	Failed    State = "FAILED"
	Cancelled State = "CANCELLED"
)

// States lists every experiment state, for code that must stay in step
// with them (the contract's enum).
var States = []State{Pending, Running, Succeeded, Failed, Cancelled}

// Terminal reports whether the experiment has ended.
func (s State) Terminal() bool { return s == Succeeded || s == Failed || s == Cancelled }

// TrialState is the state of a trial.
type TrialState string

const (
	TrialRunning   TrialState = "RUNNING"
	TrialSucceeded TrialState = "SUCCEEDED"
	TrialFailed    TrialState = "FAILED"
	TrialCancelled TrialState = "CANCELLED"
)

// TrialStates lists every trial state.
var TrialStates = []TrialState{TrialRunning, TrialSucceeded, TrialFailed, TrialCancelled}

// Ended reports whether the trial has its outcome.
func (s TrialState) Ended() bool { return s != TrialRunning && s != "" }

// Trial is one proposal and the run that tried it.
type Trial struct {
	Number int            `json:"number"`
	State  TrialState     `json:"state"`
	Params map[string]any `json:"params"`
	// Value is the objective's value of a succeeded trial.
	Value *float64 `json:"value,omitempty"`
	// RunID is the trial's run; a trial a restart cut short is repaired in
	// the same run.
	RunID     string    `json:"run_id,omitempty"`
	StartTime time.Time `json:"start_time,omitzero"`
	EndTime   time.Time `json:"end_time,omitzero"`
	Message   string    `json:"message,omitempty"`
	// MLflow is the trial's run in MLflow (its execd run's, nested under
	// the experiment's); nil when not tracked. The store fills it.
	MLflow *run.MLflowRun `json:"-"`
}

// Record is an experiment as stored.
type Record struct {
	ID        string
	RequestID string
	Spec      Spec
	State     State
	Message   string
	// SharedNodes run once, in SharedRunID; trials read back what they
	// wrote. TrialNodes run in every trial.
	SharedNodes []string
	TrialNodes  []string
	SharedRunID string
	CreateTime  time.Time
	StartTime   time.Time
	EndTime     time.Time
	// Trials by number.
	Trials       []Trial
	LastSequence int64
	// Owner is the replica that drives the experiment.
	Owner string
	// MLflow is the experiment's parent run in MLflow; nil when not
	// tracked.
	MLflow *run.MLflowRun
}

// Best is the succeeded trial with the best value, nil before one.
func (r Record) Best() *Trial {
	var best *Trial
	for i := range r.Trials {
		t := &r.Trials[i]
		if t.State != TrialSucceeded || t.Value == nil {
			continue
		}
		if best == nil || r.Spec.Objective.Direction.Better(*t.Value, *best.Value) {
			best = t
		}
	}
	return best
}

// EventKind says which fields of an Event are set.
type EventKind string

const (
	StateChanged     EventKind = "experiment_state"
	TrialChanged     EventKind = "trial_state"
	SharedRunChanged EventKind = "shared_run"
)

// Event is one entry of an experiment's append-only log; Sequence is
// assigned by the store: 1, 2, 3... per experiment.
type Event struct {
	ExperimentID string    `json:"-"`
	Sequence     int64     `json:"-"`
	Time         time.Time `json:"-"`
	Kind         EventKind `json:"kind"`

	// StateChanged
	State State `json:"state,omitempty"`
	// StateChanged reason, or SharedRunChanged message.
	Message string `json:"message,omitempty"`

	// TrialChanged: the trial as it now is, and whether it became the best.
	Trial *Trial `json:"trial,omitempty"`
	Best  bool   `json:"best,omitempty"`

	// SharedRunChanged
	RunID    string `json:"run_id,omitempty"`
	RunState string `json:"run_state,omitempty"`
}

// Terminal reports whether e ends the experiment's event stream.
func (e Event) Terminal() bool { return e.Kind == StateChanged && e.State.Terminal() }

// Observation is a trial as the optimiser is told it.
type Observation struct {
	Params map[string]any
	State  TrialState
	Value  float64
}

// Proposal asks for the parameters of trial Number.
type Proposal struct {
	Space     []Dimension
	Trials    []Observation
	Number    int
	Seed      int64
	NTrials   int
	Direction Direction
	Sampler   Sampler
}

// Suggester proposes trials. It holds no state between calls: every call
// is told every trial so far, so an optimiser rebuilt after a restart
// proposes as one that never stopped.
type Suggester interface {
	Suggest(ctx context.Context, p Proposal) (map[string]any, error)
}
