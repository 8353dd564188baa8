package engine

import (
	"context"
	"errors"
	"fmt"

	"github.com/tauro-exec/tauro-exec/internal/engine/config"
	"github.com/tauro-exec/tauro-exec/internal/engine/plan"
	"github.com/tauro-exec/tauro-exec/internal/engine/problem"
	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	"github.com/tauro-exec/tauro-exec/internal/engine/store"
)

// The engine's read-only calls: validation, the project's pipelines and
// the runs on record.

// ValidateRequest names a pipeline to check.
type ValidateRequest struct {
	Project, Pipeline, Env, StartDate, EndDate string
	Select                                     []string
}

// Validate resolves and plans a pipeline without side effects.
// When the backend is a Checker, the pipeline is checked against it too.
func (e *Engine) Validate(ctx context.Context, req ValidateRequest) (*plan.Pipeline, error) {
	p, err := e.plan(run.Params{Project: req.Project, Pipeline: req.Pipeline, Env: req.Env, StartDate: req.StartDate, EndDate: req.EndDate, Select: req.Select})
	if err != nil {
		return nil, err
	}
	probs, err := e.checkFunctions(ctx, p)
	if err != nil {
		return nil, err
	}
	if c, ok := e.opt.Backend.(Checker); ok {
		probs = append(probs, c.Check(ctx, RunContext{Pipeline: p})...)
	}
	if len(probs) > 0 {
		return nil, probs
	}
	return p, nil
}

// checkFunctions asks a FunctionChecker backend about p's Python functions.
// A check that found nothing is not repeated while nothing it depended on
// changed (see fncheck.go).
func (e *Engine) checkFunctions(ctx context.Context, p *plan.Pipeline) (problem.List, error) {
	fc, ok := e.opt.Backend.(FunctionChecker)
	if !ok {
		return nil, nil
	}
	pr, err := e.project(p.Project)
	if err != nil {
		return nil, err
	}
	key, python := checkKey(p, codeRoots(pr))
	if !python || e.checked.has(key) {
		return nil, nil
	}
	probs, err := fc.CheckFunctions(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("%w: checking the Python node functions: %v", ErrUnavailable, err)
	}
	if len(probs) == 0 {
		e.checked.add(key)
	}
	return probs, nil
}

// PipelineSummary is one pipeline of the project.
type PipelineSummary struct {
	Name  string
	Type  string
	Nodes int
}

// Pipelines lists a project's pipelines in declaration order.
func (e *Engine) Pipelines(ctx context.Context, project, env string) ([]PipelineSummary, error) {
	proj, _, err := e.load(project, env)
	if err != nil {
		return nil, err
	}
	out := make([]PipelineSummary, 0, proj.Pipelines.Len())
	for _, name := range proj.Pipelines.Keys {
		s := PipelineSummary{Name: name, Type: "batch"}
		if m, ok := proj.Pipelines.Values[name].(*config.Map); ok {
			if t, ok := m.Values["type"].(string); ok {
				s.Type = t
			}
			if nodes, ok := m.Values["nodes"].([]any); ok {
				s.Nodes = len(nodes)
			}
		}
		out = append(out, s)
	}
	return out, nil
}

// Pipeline resolves one pipeline with its global date defaults, for display.
// Date problems are ignored here: a pipeline is shown even when it needs
// dates that only a run request gives.
func (e *Engine) Pipeline(ctx context.Context, project, name, env string) (*plan.Pipeline, error) {
	proj, pr, err := e.load(project, env)
	if err != nil {
		return nil, err
	}
	if _, ok := proj.Pipelines.Get(name); !ok {
		return nil, fmt.Errorf("pipeline %q: %w", name, ErrNotFound)
	}
	p, err := plan.Resolve(proj, plan.Request{Pipeline: name, StartDate: "1970-01-01", EndDate: "1970-01-01"})
	if err != nil {
		return nil, err
	}
	p.Project = pr.Name
	return p, nil
}

// Get returns a run.
func (e *Engine) Get(ctx context.Context, id string) (run.Run, error) {
	r, err := e.opt.Store.GetRun(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return run.Run{}, fmt.Errorf("run %q: %w", id, ErrNotFound)
	}
	return r, err
}

// ListRuns pages through runs, newest first.
func (e *Engine) ListRuns(ctx context.Context, f store.ListFilter, pageSize int, pageToken string) ([]run.Run, string, error) {
	runs, next, err := e.opt.Store.ListRuns(ctx, f, pageSize, pageToken)
	if errors.Is(err, store.ErrBadPageToken) {
		return nil, "", problem.List{{Field: "page_token", Code: problem.CodeInvalidValue,
			Message: "page_token is not one this server returned for these filters; start again without it"}}
	}
	return runs, next, err
}

// Watch streams a run's events after the given sequence.
func (e *Engine) Watch(ctx context.Context, id string, after int64) (*store.Watcher, error) {
	w, err := e.opt.Store.Watch(ctx, id, after)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("run %q: %w", id, ErrNotFound)
	}
	return w, err
}

// Ready reports whether new runs can start.
func (e *Engine) Ready() error { return e.opt.Backend.Ready() }
