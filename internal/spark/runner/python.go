package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"strconv"
	"time"

	execv1 "github.com/tauro-exec/tauro-exec/gen/tauro/exec/v1"
	"github.com/tauro-exec/tauro-exec/internal/engine/config"
	"github.com/tauro-exec/tauro-exec/internal/engine/plan"
	"github.com/tauro-exec/tauro-exec/internal/engine/problem"
	"github.com/tauro-exec/tauro-exec/internal/engine/retry"
	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	"github.com/tauro-exec/tauro-exec/internal/pyworker"
	sparkconnect "github.com/tauro-exec/tauro-exec/internal/spark/connect"
)

// PythonPool runs Python node functions: a *pyworker.Pool.
type PythonPool interface {
	Run(ctx context.Context, req *execv1.RunNodeRequest, on func(*execv1.RunNodeResponse)) (*execv1.RunNodeResponse, error)
	CheckFunctions(ctx context.Context, req *execv1.CheckFunctionsRequest) (*execv1.CheckFunctionsResponse, error)
}

// SetPython makes the backend run Python nodes on pool. Without one they
// fail as unsupported.
func (b *Backend) SetPython(pool PythonPool) { b.python = pool }

// CheckFunctions implements engine.FunctionChecker: every Python node's
// function must import and take the node's inputs positionally and
// start_date and end_date as keywords.
func (b *Backend) CheckFunctions(ctx context.Context, p *plan.Pipeline) (problem.List, error) {
	if b.python == nil {
		return nil, nil
	}
	req := &execv1.CheckFunctionsRequest{AllowedModulePrefixes: p.Settings.AllowedModulePrefixes}
	for _, n := range p.Nodes {
		if n.Kind == plan.KindPython {
			req.Functions = append(req.Functions, &execv1.FunctionRef{
				Node: n.Name, Module: n.Module, Function: n.Function, Inputs: int32(len(n.Inputs)),
			})
		}
	}
	if len(req.Functions) == 0 {
		return nil, nil
	}
	resp, err := b.python.CheckFunctions(ctx, req)
	if err != nil {
		return nil, err
	}
	var probs problem.List
	for _, pr := range resp.GetProblems() {
		probs.Add("nodes."+pr.GetNode()+".function", problem.CodeInvalidFunction, "node %q: %s", pr.GetNode(), pr.GetMessage())
	}
	return probs, nil
}

// runPython runs a Python node in a worker. Its inputs reach the worker as
// global views, and its result comes back as one that becomes the node's
// result in this session, as a SQL node's does; outputs are written here.
func (r *runExec) runPython(ctx context.Context, s *sparkconnect.Session, n *plan.Node, attempt int, emit func(run.Event)) error {
	views, err := r.globalInputs(ctx, s, n)
	if err != nil {
		return err
	}
	req, err := r.pythonRequest(s, n, attempt, views)
	if err != nil {
		return err
	}
	final, err := r.b.python.Run(ctx, req, func(resp *execv1.RunNodeResponse) {
		if m := resp.GetMetric(); m != nil {
			emit(run.Event{Kind: run.NodeMetric, MetricName: m.GetName(), MetricValue: m.GetValue()})
		}
		if l := resp.GetLog(); l != nil {
			emit(run.Event{Kind: run.NodeMessage, Level: l.GetLevel(), Message: l.GetText()})
		}
	})
	var died *pyworker.DiedError
	switch {
	case errors.As(err, &died):
		return &retry.Failure{Err: run.Error{Type: "WorkerDied", Message: died.Error(), Retryable: true}, Cause: err}
	case err != nil:
		return err
	}
	if e := final.GetError(); e != nil {
		return &retry.Failure{Err: run.Error{Type: e.GetType(), Message: e.GetMessage(), Traceback: e.GetTraceback(), Retryable: e.GetRetryable()}}
	}
	keys := make([]string, len(n.OutputKeys))
	for i, k := range n.OutputKeys {
		keys[i] = k.String()
	}
	view, err := s.AdoptResult(ctx, n.Name, keys)
	if err != nil {
		return err
	}
	r.mu.Lock()
	shared := r.readers[n.Name] > 0
	r.mu.Unlock()
	if shared { // written and read by dependents: compute it once
		if err := s.Cache(ctx, view); err != nil {
			return err
		}
	}
	r.mu.Lock()
	if r.sess == s {
		r.ran[n.Name] = true
		if shared {
			r.cached[n.Name] = view
		}
	}
	r.mu.Unlock()
	for _, k := range n.OutputKeys {
		spec, err := r.outputSpec(k)
		if err != nil {
			return err
		}
		o, err := s.WriteOutput(ctx, view, spec)
		if err != nil {
			return err
		}
		if o.Warning != "" {
			emit(run.Event{Kind: run.NodeMessage, Level: "warning", Message: o.Warning})
		}
		if o.Rows >= 0 {
			emit(run.Event{Kind: run.NodeMetric, MetricName: "rows_written." + o.Key, MetricValue: float64(o.Rows)})
		}
	}
	return nil
}

// globalInputs returns a global view for each of n's inputs, in order. An
// upstream result computed in this session is one already; config inputs
// and results read back from an earlier execution are session views,
// shared once per session.
func (r *runExec) globalInputs(ctx context.Context, s *sparkconnect.Session, n *plan.Node) ([]string, error) {
	if err := r.upstream(ctx, s, n); err != nil {
		return nil, err
	}
	r.mu.Lock()
	ran := maps.Clone(r.ran)
	r.mu.Unlock()
	views := make([]string, 0, len(n.Inputs))
	for _, key := range n.Inputs {
		producer := n.ProducedBy[key]
		if producer != "" && producer != n.Name && ran[producer] {
			views = append(views, s.ResultView(producer))
			continue
		}
		if producer == "" || producer == n.Name {
			if err := r.registerInput(ctx, s, key); err != nil {
				return nil, err
			}
		}
		if err := r.once(ctx, "share:"+key, func() error {
			_, err := s.Share(ctx, key)
			return err
		}); err != nil {
			return nil, err
		}
		views = append(views, s.SharedView(key))
	}
	return views, nil
}

func (r *runExec) pythonRequest(s *sparkconnect.Session, n *plan.Node, attempt int, views []string) (*execv1.RunNodeRequest, error) {
	p := r.rc.Pipeline
	hp := Hyperparams(p, r.rc.Params, n)
	conf := make(map[string]string, len(hp))
	for k, v := range hp {
		conf["tauro.ml."+k] = confValue(v)
	}
	var pipeCfg any
	if v, ok := r.rc.Project.Pipelines.Get(p.Name); ok {
		pipeCfg = v
	}
	jsonOf := func(what string, v any) (string, error) {
		b, err := json.Marshal(plainValue(v))
		if err != nil {
			return "", &retry.Failure{Err: run.Error{Type: "ConfigError", Message: fmt.Sprintf("node %q: %s cannot be passed to Python: %v", n.Name, what, err)}}
		}
		return string(b), nil
	}
	hpJSON, err := jsonOf("hyperparams", hp)
	if err != nil {
		return nil, err
	}
	nodeJSON, err := jsonOf("its configuration", n.Raw)
	if err != nil {
		return nil, err
	}
	pipeJSON, err := jsonOf("the pipeline's configuration", pipeCfg)
	if err != nil {
		return nil, err
	}
	return &execv1.RunNodeRequest{
		Node:                  n.Name,
		Module:                n.Module,
		Function:              n.Function,
		InputViews:            views,
		StartDate:             p.StartDate,
		EndDate:               p.EndDate,
		ResultView:            s.ResultName(n.Name),
		SparkConf:             conf,
		AllowedModulePrefixes: p.Settings.AllowedModulePrefixes,
		SparkRemote:           r.b.remote(),
		Context: &execv1.NodeContext{
			Pipeline:           p.Name,
			RunId:              r.rc.RunID,
			Attempt:            int32(attempt),
			StartTime:          time.Now().UTC().Format(time.RFC3339Nano),
			ModelVersion:       ModelVersion(p, r.rc.Params),
			HyperparamsJson:    hpJSON,
			NodeConfigJson:     nodeJSON,
			PipelineConfigJson: pipeJSON,
		},
	}, nil
}

// Hyperparams are a node's effective hyperparameters; later wins: global
// default_hyperparams, the pipeline's hyperparams (both already merged in
// p.Hyperparams), the request's, the node's.
func Hyperparams(p *plan.Pipeline, params run.Params, n *plan.Node) map[string]any {
	out := make(map[string]any, len(p.Hyperparams)+len(params.Hyperparams)+len(n.Hyperparams))
	maps.Copy(out, p.Hyperparams)
	maps.Copy(out, params.Hyperparams)
	maps.Copy(out, n.Hyperparams)
	return out
}

// ModelVersion is the request's model_version, else the pipeline's, else
// the global default (the last two already resolved in p.ModelVersion).
func ModelVersion(p *plan.Pipeline, params run.Params) string {
	if params.ModelVersion != "" {
		return params.ModelVersion
	}
	return p.ModelVersion
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
	b, err := json.Marshal(plainValue(v))
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// plainValue turns a config tree into values encoding/json takes.
func plainValue(v any) any {
	switch x := v.(type) {
	case *config.Map:
		if x == nil {
			return nil
		}
		out := make(map[string]any, x.Len())
		for _, k := range x.Keys {
			out[k] = plainValue(x.Values[k])
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = plainValue(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = plainValue(e)
		}
		return out
	}
	return v
}
