package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/tauro-exec/tauro-exec/internal/engine/experiment"
	"github.com/tauro-exec/tauro-exec/internal/engine/plan"
	"github.com/tauro-exec/tauro-exec/internal/engine/problem"
	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	"github.com/tauro-exec/tauro-exec/internal/engine/store"
)

// Experiments: a hyperparameter search whose trials are ordinary runs.
//
// RunExperiment decides everything an experiment runs with (the pipeline
// resolved and checked, the objective's node, the nodes every trial runs and
// those that run once) and records it; a goroutine the Engine owns then
// drives it (experiment_drive.go). The optimiser is a Suggester that keeps
// no state, so the record is all there is: after a restart the same drive
// resumes from it.

// activeExperiment is an experiment driven by this execd.
type activeExperiment struct {
	cancel context.CancelCauseFunc
	done   chan struct{}
}

// RunExperiment validates an experiment, records it and starts it. req.Name
// names a declared experiment whose settings fill what req leaves unset
// (seedSet says whether req's Seed is set). A request id already used
// returns that experiment.
func (e *Engine) RunExperiment(ctx context.Context, requestID string, req experiment.Spec, seedSet bool) (experiment.Record, error) {
	pr, err := e.project(req.Project)
	if err != nil {
		return experiment.Record{}, err
	}
	req.Project = pr.Name
	if requestID != "" {
		if x, err := e.opt.Store.ExperimentByRequestID(ctx, pr.Name, requestID); err == nil {
			return x, nil
		} else if !errors.Is(err, store.ErrNotFound) {
			return experiment.Record{}, err
		}
	}
	x, p, err := e.decideExperiment(req, seedSet)
	if err != nil {
		return experiment.Record{}, err
	}
	if e.opt.Suggester == nil {
		return experiment.Record{}, fmt.Errorf("%w: experiments need the Python workers, which propose their trials; start execd with --workers 1 or more", ErrFailedPrecondition)
	}
	if probs, err := e.checkFunctions(ctx, p); err != nil || len(probs) > 0 {
		return experiment.Record{}, errors.Join(err, probs.Err())
	}
	if err := e.opt.Backend.Ready(); err != nil {
		return experiment.Record{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	x.ID, x.RequestID, x.Owner = newID("exp-"), requestID, e.opt.Replica
	stored, created, err := e.opt.Store.CreateExperiment(ctx, x)
	if err != nil {
		return experiment.Record{}, err
	}
	if created {
		if tr := e.opt.Tracker; tr != nil {
			// Only the store can fail this; the experiment goes on untracked.
			if err := tr.TrackExperiment(ctx, stored, p); err != nil {
				e.log.Warn("recording the experiment for MLflow", "experiment_id", stored.ID, "err", err)
			}
		}
		e.startExperiment(stored)
	}
	return stored, nil
}

// decideExperiment merges req over its declared experiment, checks it and
// the pipeline, and splits the pipeline's nodes into shared and trial ones.
func (e *Engine) decideExperiment(req experiment.Spec, seedSet bool) (experiment.Record, *plan.Pipeline, error) {
	proj, pr, err := e.load(req.Project, req.Env)
	if err != nil {
		return experiment.Record{}, nil, err
	}
	spec := req
	if req.Name != "" {
		decl, ok, probs := experiment.Declared(proj.Experiments, req.Name)
		if !ok {
			avail := "the project declares none (add an experiments file: env_config's experiments_config_path)"
			if proj.Experiments.Len() > 0 {
				avail = "declared: " + strings.Join(proj.Experiments.Keys, ", ")
			}
			return experiment.Record{}, nil, problem.List{{Field: "experiment", Code: problem.CodeInvalidValue,
				Message: fmt.Sprintf("experiment %q is not declared in the experiments config; %s", req.Name, avail)}}
		}
		if len(probs) > 0 {
			return experiment.Record{}, nil, probs
		}
		spec = decl.Merge(req, seedSet)
	}
	spec.Defaults()
	// Every problem at once: the experiment's own, then the pipeline's.
	probs := spec.Check("")
	p, err := plan.Resolve(proj, plan.Request{
		Pipeline: spec.Pipeline, StartDate: spec.StartDate, EndDate: spec.EndDate,
		Select: spec.Select, Hyperparams: spec.Hyperparams,
	})
	if err != nil {
		if pl, ok := problem.From(err); ok && spec.Pipeline != "" {
			return experiment.Record{}, nil, append(probs, pl...)
		}
		if len(probs) > 0 {
			return experiment.Record{}, nil, probs
		}
		return experiment.Record{}, nil, err
	}
	if len(p.Plan.Streaming) > 0 {
		probs.Add("pipeline", problem.CodeIncompatible,
			"pipeline %q has streaming nodes (%s); experiments run batch pipelines, whose trials end", p.Name, strings.Join(p.Plan.Streaming, ", "))
		return experiment.Record{}, nil, probs
	}
	names := make([]string, len(spec.Space))
	for i, d := range spec.Space {
		names[i] = d.Name
	}
	split := splitNodes(p, names)
	if len(split.trial) == 0 && len(names) > 0 {
		probs.Add("space", problem.CodeIncompatible,
			"no node of pipeline %q reads the searched hyperparameters (%s): only Python nodes receive them, through ml_context, and a node whose own hyperparams set them all ignores the search", p.Name, strings.Join(names, ", "))
	}
	if len(probs) > 0 {
		if _, prob := objectiveNode(p, spec.Objective, split.trial); prob != nil && spec.Objective.Metric != "" {
			probs = append(probs, *prob)
		}
		return experiment.Record{}, nil, probs
	}
	node, prob := objectiveNode(p, spec.Objective, split.trial)
	if prob != nil {
		return experiment.Record{}, nil, problem.List{*prob}
	}
	spec.Objective.Node = node
	p.Project = pr.Name
	spec.Project, spec.Pipeline, spec.Env = pr.Name, p.Name, p.Env
	spec.StartDate, spec.EndDate = "", ""
	if !p.StartDate.IsZero() {
		spec.StartDate, spec.EndDate = plan.FormatDate(p.StartDate), plan.FormatDate(p.EndDate)
	}
	return experiment.Record{Spec: spec, SharedNodes: split.shared, TrialNodes: split.trial}, p, nil
}

// nodeSplit is which nodes run once per experiment and which in every
// trial.
type nodeSplit struct {
	// shared run once, before the trials: the nodes whose inputs and
	// hyperparameters are the same in every trial and that write an output
	// to read them back from, with what they need upstream.
	shared []string
	// trial run in every trial: the nodes that read a searched
	// hyperparameter or depend on one that does, and the unchanging nodes
	// without outputs they need (what is not stored must be computed).
	trial []string
}

// splitNodes decides nodeSplit for p when the names are searched. A node
// varies between trials when it can see a searched hyperparameter (a
// Python node, unless its own hyperparams set every searched name; SQL
// nodes receive none) or when one of its dependencies varies.
func splitNodes(p *plan.Pipeline, searched []string) nodeSplit {
	byName := make(map[string]*plan.Node, len(p.Nodes))
	for _, n := range p.Nodes {
		byName[n.Name] = n
	}
	varies := map[string]bool{}
	for _, name := range p.Plan.Order {
		n := byName[name]
		varies[name] = seesSearch(n, searched) || slices.ContainsFunc(n.Dependencies, func(d string) bool { return varies[d] })
	}
	stored := func(name string) bool { return byName[name].Stored() }
	// Trial nodes: the varying ones and, walking up from them, every
	// unchanging dependency that cannot be read back.
	inTrial := map[string]bool{}
	for i := len(p.Plan.Order) - 1; i >= 0; i-- {
		name := p.Plan.Order[i]
		if varies[name] {
			inTrial[name] = true
		}
		if !inTrial[name] {
			continue
		}
		for _, d := range byName[name].Dependencies {
			if !varies[d] && !stored(d) {
				inTrial[d] = true
			}
		}
	}
	// Shared nodes: the stored unchanging nodes a trial node reads, and
	// everything they need.
	inShared := map[string]bool{}
	for _, name := range p.Plan.Order {
		if !inTrial[name] {
			continue
		}
		for _, d := range byName[name].Dependencies {
			if !varies[d] && stored(d) {
				inShared[d] = true
			}
		}
	}
	for i := len(p.Plan.Order) - 1; i >= 0; i-- {
		name := p.Plan.Order[i]
		if inShared[name] {
			for _, d := range byName[name].Dependencies {
				inShared[d] = true
			}
		}
	}
	var out nodeSplit
	for _, n := range p.Nodes { // declaration order
		if inShared[n.Name] {
			out.shared = append(out.shared, n.Name)
		}
		if inTrial[n.Name] {
			out.trial = append(out.trial, n.Name)
		}
	}
	return out
}

// seesSearch reports whether n can read a searched hyperparameter.
func seesSearch(n *plan.Node, searched []string) bool {
	if n.Kind != plan.KindPython {
		return false
	}
	own, _ := n.Config["hyperparams"].(map[string]any)
	for _, s := range searched {
		if _, set := own[s]; !set {
			return true
		}
	}
	return false
}

// objectiveNode finds the node that logs the objective's metric: the one
// named, or the one trial node that declares it in its metrics config.
func objectiveNode(p *plan.Pipeline, o experiment.Objective, trial []string) (string, *problem.Problem) {
	if o.Node != "" {
		var n *plan.Node
		for _, x := range p.Nodes {
			if x.Name == o.Node {
				n = x
			}
		}
		switch {
		case n == nil:
			return "", &problem.Problem{Field: "objective.node", Code: problem.CodeUnknownNode,
				Message: fmt.Sprintf("pipeline %q has no node %q (in the selection); name the node that logs %q", p.Name, o.Node, o.Metric)}
		case !slices.Contains(trial, o.Node):
			return "", &problem.Problem{Field: "objective.node", Code: problem.CodeIncompatible,
				Message: fmt.Sprintf("node %q does not read the searched hyperparameters, so its %q is the same in every trial; name a node that does (%s)", o.Node, o.Metric, strings.Join(trial, ", "))}
		}
		if declared, ok := metricsOf(n); ok && !slices.Contains(declared, o.Metric) {
			return "", &problem.Problem{Field: "objective.metric", Code: problem.CodeInvalidValue,
				Message: fmt.Sprintf("node %q declares the metrics %s, not %q; log it and add it to the node's metrics, or pick one of those", o.Node, strings.Join(declared, ", "), o.Metric)}
		}
		return o.Node, nil
	}
	var found []string
	for _, name := range trial {
		for _, n := range p.Nodes {
			if n.Name == name {
				if declared, _ := metricsOf(n); slices.Contains(declared, o.Metric) {
					found = append(found, name)
				}
			}
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return "", &problem.Problem{Field: "objective.metric", Code: problem.CodeInvalidValue,
			Message: fmt.Sprintf("no node of pipeline %q that reads the searched hyperparameters declares the metric %q; add it to the metrics of the node that logs it (metrics: [%s]) or set objective.node", p.Name, o.Metric, o.Metric)}
	}
	return "", &problem.Problem{Field: "objective.node", Code: problem.CodeRequired,
		Message: fmt.Sprintf("nodes %s all declare the metric %q; set objective.node to the one to optimise", strings.Join(found, ", "), o.Metric)}
}

// metricsOf reads a node's metrics config: a list of names, or a mapping
// whose keys are names. ok is false when the node declares none.
func metricsOf(n *plan.Node) ([]string, bool) {
	switch m := n.Config["metrics"].(type) {
	case []any:
		var out []string
		for _, v := range m {
			if s, ok := v.(string); ok {
				out = append(out, s)
			}
		}
		return out, true
	case map[string]any:
		out := make([]string, 0, len(m))
		for k := range m {
			out = append(out, k)
		}
		sort.Strings(out)
		return out, true
	case string:
		return []string{m}, true
	}
	return nil, false
}

// startExperiment drives x in the background until it ends or execd stops.
func (e *Engine) startExperiment(x experiment.Record) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closing {
		return
	}
	if e.exps == nil {
		e.exps = map[string]*activeExperiment{}
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	a := &activeExperiment{cancel: cancel, done: make(chan struct{})}
	e.exps[x.ID] = a
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		defer close(a.done)
		defer func() {
			e.mu.Lock()
			delete(e.exps, x.ID)
			e.mu.Unlock()
			cancel(nil)
		}()
		e.driveExperiment(ctx, x)
	}()
}

// resumeExperiments drives again the experiments a previous execd left
// running: finished trials are kept, unfinished ones run again.
func (e *Engine) resumeExperiments(ctx context.Context) error {
	ids, err := e.opt.Store.LiveExperiments(ctx)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if err := e.resumeExperiment(ctx, id); err != nil {
			return err
		}
	}
	return nil
}

// resumeExperiment drives an experiment another execd left, once it has
// claimed it; one a live replica drives is left to it.
func (e *Engine) resumeExperiment(ctx context.Context, id string) error {
	e.mu.Lock()
	_, driven := e.exps[id]
	e.mu.Unlock()
	if driven {
		return nil
	}
	err := e.opt.Store.ClaimExperiment(ctx, id, e.opt.Replica)
	if errors.Is(err, store.ErrLeaseHeld) || errors.Is(err, store.ErrRunEnded) {
		return nil
	}
	if err != nil {
		return err
	}
	x, err := e.opt.Store.GetExperiment(ctx, id)
	if err != nil {
		return err
	}
	e.log.Info("experiment left running by a previous execd is resumed", "experiment_id", id, "trials", len(x.Trials))
	e.startExperiment(x)
	return nil
}

// GetExperiment returns an experiment with its trials.
func (e *Engine) GetExperiment(ctx context.Context, id string) (experiment.Record, error) {
	x, err := e.opt.Store.GetExperiment(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return experiment.Record{}, fmt.Errorf("experiment %q: %w", id, ErrNotFound)
	}
	return x, err
}

// ListExperiments pages through experiments, newest first.
func (e *Engine) ListExperiments(ctx context.Context, f store.ListFilter, pageSize int, pageToken string) ([]experiment.Record, string, error) {
	xs, next, err := e.opt.Store.ListExperiments(ctx, f, pageSize, pageToken)
	if errors.Is(err, store.ErrBadPageToken) {
		return nil, "", problem.List{{Field: "page_token", Code: problem.CodeInvalidValue,
			Message: "page_token is not one this server returned for these filters; start again without it"}}
	}
	return xs, next, err
}

// CancelExperiment cancels every running trial, starts no new one, and
// returns the experiment once it has ended.
func (e *Engine) CancelExperiment(ctx context.Context, id, reason string) (experiment.Record, error) {
	if reason == "" {
		reason = "cancelled by request"
	}
	x, err := e.GetExperiment(ctx, id)
	if err != nil {
		return experiment.Record{}, err
	}
	if x.State.Terminal() {
		return experiment.Record{}, fmt.Errorf("experiment %s is %s, not running: %w", id, x.State, ErrFailedPrecondition)
	}
	e.mu.Lock()
	a := e.exps[id]
	e.mu.Unlock()
	if a == nil {
		return experiment.Record{}, fmt.Errorf("experiment %s is not driven by this execd: %w", id, ErrFailedPrecondition)
	}
	a.cancel(cancelCause{reason: reason})
	select {
	case <-a.done:
	case <-ctx.Done():
		return experiment.Record{}, ctx.Err()
	}
	return e.GetExperiment(ctx, id)
}

// WatchExperiment follows an experiment's events after sequence after,
// from the store and then as they are committed, until its terminal event:
// the same shape as Watch for a run.
func (e *Engine) WatchExperiment(ctx context.Context, id string, after int64) (*store.ExperimentWatcher, error) {
	w, err := store.WatchExperiment(ctx, e.opt.Store, id, after)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, fmt.Errorf("experiment %q: %w", id, ErrNotFound)
	case errors.Is(err, store.ErrInvalidArgument):
		return nil, problem.List{{Field: "after_sequence", Code: problem.CodeInvalidValue,
			Message: err.Error() + "; resume from a sequence this experiment sent"}}
	}
	return w, err
}

// newID returns prefix and an id that sorts by creation time.
func newID(prefix string) string { return prefix + strings.TrimPrefix(newRunID(), "run-") }

func trialRequestID(expID string, number int) string {
	return expID + "/trial/" + strconv.Itoa(number)
}

// trialParams are the run parameters of trial t: the experiment's fixed
// hyperparameters with the trial's over them, at request level, so the
// usual precedence holds (a node's own hyperparams still win).
func trialParams(x experiment.Record, t experiment.Trial) run.Params {
	hp := make(map[string]any, len(x.Spec.Hyperparams)+len(t.Params))
	for k, v := range x.Spec.Hyperparams {
		hp[k] = v
	}
	for k, v := range t.Params {
		hp[k] = v
	}
	return run.Params{
		Project:     x.Spec.Project,
		Pipeline:    x.Spec.Pipeline,
		Env:         x.Spec.Env,
		StartDate:   x.Spec.StartDate,
		EndDate:     x.Spec.EndDate,
		Hyperparams: hp,
		Select:      x.TrialNodes,
		Isolation: &run.Isolation{
			Writes:     x.ID + "/trial-" + strconv.Itoa(t.Number),
			Reads:      x.ID + "/shared",
			Shared:     x.SharedNodes,
			Experiment: x.ID,
			Trial:      strconv.Itoa(t.Number),
		},
	}
}

// sharedParams are the run parameters of the experiment's shared nodes.
func sharedParams(x experiment.Record) run.Params {
	return run.Params{
		Project:     x.Spec.Project,
		Pipeline:    x.Spec.Pipeline,
		Env:         x.Spec.Env,
		StartDate:   x.Spec.StartDate,
		EndDate:     x.Spec.EndDate,
		Hyperparams: x.Spec.Hyperparams,
		Select:      x.SharedNodes,
		Isolation:   &run.Isolation{Writes: x.ID + "/shared", Experiment: x.ID, Trial: "shared"},
	}
}
