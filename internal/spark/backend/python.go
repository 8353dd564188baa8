package backend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"strconv"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/plan"
	"github.com/tauro-exec/tauro-exec/internal/engine/problem"
	"github.com/tauro-exec/tauro-exec/internal/engine/pycall"
	"github.com/tauro-exec/tauro-exec/internal/engine/retry"
	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	sparkconnect "github.com/tauro-exec/tauro-exec/internal/spark/connect"
)

// SetPython makes the backend run every project's Python nodes with py
// (the worker pool). Without one they fail as unsupported.
func (b *Backend) SetPython(py pycall.Runner) {
	b.python = func(string) pycall.Runner { return py }
}

// SetPythonFor makes the backend run each project's Python nodes with the
// runner py returns for it (the project's worker pool); nil from py means
// that project runs SQL nodes only.
func (b *Backend) SetPythonFor(py func(project string) pycall.Runner) { b.python = py }

// pythonFor is the runner of project's Python nodes, nil if none.
func (b *Backend) pythonFor(project string) pycall.Runner {
	if b.python == nil {
		return nil
	}
	return b.python(project)
}

// AttemptTracker gives a Python node attempt its MLflow run before the
// call (the mlops mirror).
type AttemptTracker interface {
	// Attempt returns nil for an attempt that is not tracked, and an
	// error only when tracking is required and could not be done.
	Attempt(ctx context.Context, runID string, p *plan.Pipeline, n *plan.Node, attempt int) (*pycall.MLflow, error)
}

// SetTracker makes every Python ML node attempt get its MLflow run from t.
func (b *Backend) SetTracker(t AttemptTracker) { b.tracker = t }

// CheckFunctions implements engine.FunctionChecker: every Python node's
// function must import and take the node's inputs positionally and
// start_date and end_date as keywords, or, for a streaming node, be in
// tauro's streaming form; a foreachBatch sink's function must import and
// take (batch_df, batch_id).
func (b *Backend) CheckFunctions(ctx context.Context, p *plan.Pipeline) (problem.List, error) {
	var fns []pycall.Function
	batchField := map[string]string{} // node -> its batch_function's field
	for _, n := range p.Nodes {
		if n.Kind == plan.KindPython {
			fns = append(fns, pycall.Function{Node: n.Name, Module: n.Module, Function: n.Function,
				Inputs: len(n.FunctionInputs()), Streaming: n.Stream != nil})
		}
		if n.Stream != nil && n.Stream.Sink.BatchFunction != nil {
			bf := n.Stream.Sink.BatchFunction
			fns = append(fns, pycall.Function{Node: n.Name, Module: bf.Module, Function: bf.Function, BatchFunction: true})
			batchField[n.Name] = bf.Field
		}
	}
	py := b.pythonFor(p.Project)
	if py == nil || len(fns) == 0 {
		return nil, nil // without workers, such nodes fail as unsupported when they run
	}
	found, err := py.CheckFunctions(ctx, fns, p.Settings.AllowedModulePrefixes)
	if err != nil {
		return nil, err
	}
	var probs problem.List
	for _, pr := range found {
		if pr.BatchFunction {
			probs.Add(batchField[pr.Node], problem.CodeInvalidFunction, "node %q's foreachBatch function: %s", pr.Node, pr.Message)
			continue
		}
		probs.Add("nodes."+pr.Node+".function", problem.CodeInvalidFunction, "node %q: %s", pr.Node, pr.Message)
	}
	return probs, nil
}

// runPython runs a Python node in a worker. Its inputs reach the worker as
// global views, and its result comes back as one that becomes the node's
// result in this session, as a SQL node's does; outputs are written here.
func (r *runExec) runPython(ctx context.Context, s *sparkconnect.Session, n *plan.Node, attempt int, emit func(run.Event)) error {
	// An attempt taken up after a restart whose function had returned
	// has its result view on the server: the function is not called again;
	// nor is one that was called early (see early.go).
	keep := r.keepOf(n)
	earlyCached := false
	if !r.pythonDone(ctx, n.Name, attempt) {
		called, cached, err := r.takeEarly(ctx, n, attempt, emit)
		earlyCached = cached
		if !called && err == nil { // err: a discarded call's cache was not released
			err = r.callPython(ctx, s, n, attempt, emit)
		}
		phase(ctx, "worker")
		if err != nil {
			return err
		}
		if err := r.notePythonDone(ctx, n.Name, attempt); err != nil {
			return err
		}
	}
	shared := r.cacheable(n)
	all := ""
	if keep != "" {
		var err error
		if all, err = s.KeepResult(ctx, n.Name, keep); err != nil {
			return err
		}
	}
	// A kept result's unfiltered rows are cached, not the filter over them.
	view, err := s.AdoptResult(ctx, n.Name, r.aliasesOf(n.Name), shared && all == "" && !earlyCached)
	if err != nil {
		return err
	}
	if all == "" {
		all = view
	} else if shared {
		if err := s.Cache(ctx, all); err != nil {
			return err
		}
	}
	r.markRan(ctx, s, n.Name, shared, all) // what is cached
	r.callEarly(s, n.Name)
	phase(ctx, "handback")
	// The worker refused a result without columns.
	return r.writeOutputs(ctx, s, n, all, attempt, emit)
}

// keepOf is the condition on the rows of n's result its dependents may
// read, when n has dependents and drop or fail expectations: its
// function's result is then made apart (UnfilteredName) and its result view
// keeps only those rows.
func (r *runExec) keepOf(n *plan.Node) string {
	if !r.hasDependents(n) {
		return ""
	}
	return plan.KeepCondition(n.Expectations)
}

// callPython calls n's function for attempt, its result left in the
// node's result view (or its unfiltered one, see keepOf).
func (r *runExec) callPython(ctx context.Context, s *sparkconnect.Session, n *plan.Node, attempt int, emit func(run.Event)) error {
	call, err := r.call(ctx, s, n, attempt)
	if err != nil {
		return err
	}
	phase(ctx, "inputs")
	nodeErr, err := r.b.pythonFor(r.rc.Pipeline.Project).Run(ctx, call, pythonEvents(emit))
	return pythonFailure(nodeErr, err)
}

// call is the call of n's function for attempt, its inputs global views.
func (r *runExec) call(ctx context.Context, s *sparkconnect.Session, n *plan.Node, attempt int) (pycall.Call, error) {
	views, err := r.globalInputs(ctx, s, n)
	if err != nil {
		return pycall.Call{}, err
	}
	call := r.pythonCall(s, n, attempt, views)
	if t := r.b.tracker; t != nil {
		if call.MLflow, err = t.Attempt(ctx, r.rc.RunID, r.rc.Pipeline, n, attempt); err != nil {
			return pycall.Call{}, &retry.Failure{Err: run.Error{Type: "MLflowUnavailable", Message: err.Error(), Retryable: true}, Cause: err}
		}
	}
	if r.keepOf(n) != "" {
		call.ResultView = s.UnfilteredName(n.Name)
	}
	return call, nil
}

// pythonEvents records what a running function reports.
func pythonEvents(emit func(run.Event)) func(pycall.Event) {
	return func(ev pycall.Event) {
		switch {
		case ev.Metric != nil:
			emit(run.Event{Kind: run.NodeMetric, MetricName: ev.Metric.Name, MetricValue: ev.Metric.Value, MetricStep: ev.Metric.Step})
		case ev.Log != nil:
			emit(run.Event{Kind: run.NodeMessage, Level: ev.Log.Level, Message: ev.Log.Text})
		}
	}
}

// pythonFailure is how a call failed as the scheduler sees it: a dead
// worker is worth another attempt; an exception in the function is retried
// only when it says so (tauro_exec.Retryable).
func pythonFailure(nodeErr *run.Error, err error) error {
	switch {
	case errors.Is(err, pycall.ErrWorkerDied):
		return &retry.Failure{Err: run.Error{Type: "WorkerDied", Message: err.Error(), Retryable: true}, Cause: err}
	case err != nil:
		return err
	case nodeErr != nil:
		return &retry.Failure{Err: *nodeErr}
	}
	return nil
}

// globalInputs returns a global view for each of batch node n's inputs, in
// order. An upstream result computed in this session is one already;
// config inputs and results read back from an earlier execution are
// session views, shared once per session.
func (r *runExec) globalInputs(ctx context.Context, s *sparkconnect.Session, n *plan.Node) ([]string, error) {
	if err := r.upstream(ctx, s, n); err != nil {
		return nil, err
	}
	r.mu.Lock()
	ran := maps.Clone(r.ran)
	r.mu.Unlock()
	views := make([]string, 0, len(n.InputSpecs))
	for _, in := range n.InputSpecs {
		if in.Producer != "" && ran[in.Producer] {
			views = append(views, s.ResultView(in.Producer))
			continue
		}
		if in.Producer == "" && r.pythonRead[in.Key] {
			err := r.once(ctx, "share:"+in.Key, func() error {
				return r.readSource(ctx, n, in.Key, func() error {
					_, err := s.RegisterShared(ctx, in.Read, r.inputParams(in.Read))
					return err
				})
			})
			if err != nil {
				return nil, err
			}
			views = append(views, s.SharedView(in.Key))
			continue
		}
		if in.Producer == "" {
			if err := r.registerSourceInput(ctx, s, n, in.Read); err != nil {
				return nil, err
			}
		}
		view, err := r.share(ctx, s, in.Key)
		if err != nil {
			return nil, err
		}
		views = append(views, view)
	}
	return views, nil
}

// sharedSources returns a global view for each of streaming node n's
// function inputs, an inline input too: runStream has made each a view of
// the session.
func (r *runExec) sharedSources(ctx context.Context, s *sparkconnect.Session, n *plan.Node) ([]string, error) {
	keys := n.FunctionInputs()
	views := make([]string, 0, len(keys))
	for _, key := range keys {
		view, err := r.share(ctx, s, key)
		if err != nil {
			return nil, err
		}
		views = append(views, view)
	}
	return views, nil
}

// share makes the session view name global, once per session.
func (r *runExec) share(ctx context.Context, s *sparkconnect.Session, name string) (string, error) {
	err := r.once(ctx, "share:"+name, func() error {
		_, err := s.Share(ctx, name)
		return err
	})
	return s.SharedView(name), err
}

// pythonCall is the call of n's function: everything in it was decided by
// planning. The worker's session gets the run's spark_config, as the run's
// session has it (the keys a session may not set skipped), so a function
// sees and plans under the settings tauro would give it; then the node's
// hyperparameters.
func (r *runExec) pythonCall(s *sparkconnect.Session, n *plan.Node, attempt int, views []string) pycall.Call {
	p := r.rc.Pipeline
	conf := make(map[string]string, len(r.conf)+len(n.Hyperparams))
	maps.Copy(conf, r.conf)
	for _, k := range s.Skipped() {
		delete(conf, k)
	}
	for k, v := range n.Hyperparams {
		conf["tauro.ml."+k] = confValue(v)
	}
	return pycall.Call{
		Node:                  n.Name,
		Module:                n.Module,
		Function:              n.Function,
		InputViews:            views,
		Streaming:             n.Stream != nil,
		StartDate:             p.StartDate,
		EndDate:               p.EndDate,
		ResultView:            s.ResultName(n.Name),
		SparkConf:             conf,
		AllowedModulePrefixes: p.Settings.AllowedModulePrefixes,
		SparkRemote:           r.b.remote(),
		Pipeline:              p.Name,
		RunID:                 r.rc.RunID,
		Attempt:               attempt,
		StartTime:             time.Now(),
		ModelVersion:          p.ModelVersion,
		Hyperparams:           n.Hyperparams,
		NodeConfig:            n.Config,
		PipelineConfig:        p.Config,
	}
}

// confValue renders a hyperparameter as Spark conf text: numbers as
// written (10, not 10.0), anything structured as JSON.
func confValue(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		if !math.IsInf(x, 0) && !math.IsNaN(x) && x == math.Trunc(x) && math.Abs(x) < 1e15 {
			return strconv.FormatInt(int64(x), 10)
		}
		return strconv.FormatFloat(x, 'g', -1, 64)
	case nil:
		return ""
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
