// Package engine ties the parts of tauro-exec together: it loads the project,
// resolves and plans a pipeline, records runs in the store, drives the
// scheduler with a node backend, and answers questions about runs. The gRPC
// layer calls one Engine method per request and nothing else.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/breaker"
	"github.com/tauro-exec/tauro-exec/internal/engine/config"
	"github.com/tauro-exec/tauro-exec/internal/engine/plan"
	"github.com/tauro-exec/tauro-exec/internal/engine/problem"
	"github.com/tauro-exec/tauro-exec/internal/engine/retry"
	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	"github.com/tauro-exec/tauro-exec/internal/engine/schedule"
	"github.com/tauro-exec/tauro-exec/internal/engine/store"
)

// Error kinds the transport maps to status codes. Problems with the input are
// problem.List values.
var (
	ErrNotFound           = errors.New("not found")
	ErrFailedPrecondition = errors.New("failed precondition")
	ErrUnavailable        = errors.New("unavailable")
)

// Backend runs nodes. The Spark and Python runners implement it.
type Backend interface {
	// OpenRun prepares what the nodes of one run share (a Spark session).
	OpenRun(ctx context.Context, rc RunContext) (RunExecutor, error)
	// Ready reports whether new runs can start (Spark is reachable).
	Ready() error
}

// Checker is a Backend that can check a resolved pipeline against the
// backend itself (Spark analysing each SQL node, say) before anything runs.
type Checker interface {
	Check(ctx context.Context, rc RunContext) problem.List
}

// FunctionChecker is a Backend that can check Python node functions (each
// imports, and takes its inputs positionally and start_date and end_date as
// keywords) before anything runs. An error means it could not check.
type FunctionChecker interface {
	CheckFunctions(ctx context.Context, p *plan.Pipeline) (problem.List, error)
}

// RunContext is what a backend needs to know about a run.
type RunContext struct {
	RunID    string
	Project  *config.Project
	Pipeline *plan.Pipeline
	Params   run.Params
}

// RunExecutor runs the nodes of one run.
type RunExecutor interface {
	// RunNode runs one attempt of a node. emit reports messages and metrics
	// of the attempt; they are stored before they are streamed.
	RunNode(ctx context.Context, node *plan.Node, attempt int, emit func(run.Event)) error
	// Close releases what the run held.
	Close(ctx context.Context) error
}

// Options configure an Engine.
type Options struct {
	ProjectDir string
	// Env is used when a request names none.
	Env     string
	Store   *store.Store
	Backend Backend
	Logger  *slog.Logger
	// Clock drives timeouts and backoff; nil means the real clock.
	Clock schedule.Clock
	// BreakerThreshold stops a run after this many consecutive node
	// failures; 0 uses global settings' circuit_breaker_threshold or 5.
	BreakerThreshold int
	// Now is the wall clock for records; nil means time.Now.
	Now func() time.Time
}

// Engine executes pipelines and answers questions about runs.
type Engine struct {
	opt Options
	log *slog.Logger

	mu      sync.Mutex
	active  map[string]*activeRun
	closing bool
	wg      sync.WaitGroup
}

type activeRun struct {
	cancel context.CancelCauseFunc
	done   chan struct{}
}

var errShutdown = errors.New("execd is shutting down")

// New returns an Engine. Call Recover once before serving.
func New(opt Options) *Engine {
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	return &Engine{opt: opt, log: opt.Logger, active: map[string]*activeRun{}}
}

// Recover marks the runs a previous execd left running as INTERRUPTED.
func (e *Engine) Recover(ctx context.Context) error {
	ids, err := e.opt.Store.Recover(ctx)
	if err != nil {
		return err
	}
	for _, id := range ids {
		e.log.Warn("run interrupted by a previous stop; RepairRun finishes it", "run_id", id)
	}
	return nil
}

// Close stops every active run (they become INTERRUPTED, so RepairRun can
// finish them) and waits for them to record it.
func (e *Engine) Close(ctx context.Context) error {
	e.mu.Lock()
	e.closing = true
	for _, a := range e.active {
		a.cancel(errShutdown)
	}
	e.mu.Unlock()
	done := make(chan struct{})
	go func() { e.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (e *Engine) load(env string) (*config.Project, error) {
	if env == "" {
		env = e.opt.Env
	}
	return config.Load(e.opt.ProjectDir, env)
}

// ValidateRequest names a pipeline to check.
type ValidateRequest struct {
	Pipeline, Env, StartDate, EndDate string
	Select                            []string
}

// Validate resolves and plans a pipeline without side effects.
// When the backend is a Checker, the pipeline is checked against it too.
func (e *Engine) Validate(ctx context.Context, req ValidateRequest) (*plan.Pipeline, error) {
	params := run.Params{Pipeline: req.Pipeline, Env: req.Env, StartDate: req.StartDate, EndDate: req.EndDate, Select: req.Select}
	proj, p, err := e.resolve(params)
	if err != nil {
		return nil, err
	}
	probs, err := e.checkFunctions(ctx, p)
	if err != nil {
		return nil, err
	}
	if c, ok := e.opt.Backend.(Checker); ok {
		probs = append(probs, c.Check(ctx, RunContext{Project: proj, Pipeline: p, Params: params})...)
	}
	if len(probs) > 0 {
		return nil, probs
	}
	return p, nil
}

// checkFunctions asks a FunctionChecker backend about p's Python functions.
func (e *Engine) checkFunctions(ctx context.Context, p *plan.Pipeline) (problem.List, error) {
	fc, ok := e.opt.Backend.(FunctionChecker)
	if !ok {
		return nil, nil
	}
	probs, err := fc.CheckFunctions(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("%w: checking the Python node functions: %v", ErrUnavailable, err)
	}
	return probs, nil
}

func (e *Engine) resolve(params run.Params) (*config.Project, *plan.Pipeline, error) {
	proj, err := e.load(params.Env)
	if err != nil {
		return nil, nil, err
	}
	p, err := plan.Resolve(proj, plan.Request{
		Pipeline:   params.Pipeline,
		StartDate:  params.StartDate,
		EndDate:    params.EndDate,
		Select:     params.Select,
		MaxWorkers: params.MaxWorkers,
	})
	if err != nil {
		return nil, nil, err
	}
	return proj, p, nil
}

// PipelineSummary is one pipeline of the project.
type PipelineSummary struct {
	Name  string
	Type  string
	Nodes int
}

// Pipelines lists the project's pipelines in declaration order.
func (e *Engine) Pipelines(ctx context.Context, env string) ([]PipelineSummary, error) {
	proj, err := e.load(env)
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
func (e *Engine) Pipeline(ctx context.Context, name, env string) (*plan.Pipeline, error) {
	proj, err := e.load(env)
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
	return p, nil
}

// Execute validates the request, records a run and starts it. A request
// with a request id already used returns that run instead.
func (e *Engine) Execute(ctx context.Context, requestID string, params run.Params) (run.Run, error) {
	if requestID != "" {
		if r, err := e.opt.Store.RunByRequestID(ctx, requestID); err == nil {
			return r, nil
		} else if !errors.Is(err, store.ErrNotFound) {
			return run.Run{}, err
		}
	}
	proj, p, err := e.resolve(params)
	if err != nil {
		return run.Run{}, err
	}
	if probs, err := e.checkFunctions(ctx, p); err != nil || len(probs) > 0 {
		return run.Run{}, errors.Join(err, probs.Err())
	}
	if err := e.opt.Backend.Ready(); err != nil {
		return run.Run{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	params.StartDate, params.EndDate = p.StartDate, p.EndDate
	// The run records its effective ML settings; a node's own hyperparams
	// still win over these when it runs.
	if hp := maps.Clone(p.Hyperparams); len(hp)+len(params.Hyperparams) > 0 {
		params.Hyperparams = mergeInto(hp, params.Hyperparams)
	}
	if params.ModelVersion == "" {
		params.ModelVersion = p.ModelVersion
	}
	params.MaxWorkers = p.MaxWorkers
	if params.Env == "" {
		params.Env = proj.Env
	}
	rec := run.Run{
		ID:         newRunID(),
		RequestID:  requestID,
		Params:     params,
		State:      run.Pending,
		CreateTime: e.opt.Now(),
	}
	for _, n := range p.Nodes {
		rec.Nodes = append(rec.Nodes, run.Node{Name: n.Name, State: run.NodePending})
	}
	stored, created, err := e.opt.Store.CreateRun(ctx, rec)
	if err != nil {
		return run.Run{}, err
	}
	if !created {
		return stored, nil
	}
	if err := e.start(stored.ID, proj, p, params, nil); err != nil {
		return run.Run{}, err
	}
	return stored, nil
}

// repairState is what a repair carries over from earlier executions.
type repairState struct {
	kept map[string]bool // succeeded nodes that are not run again
	made map[string]int  // attempts made so far, per node
}

func (r *repairState) done(node string) bool { return r != nil && r.kept[node] }

func (r *repairState) attempts(node string) int {
	if r == nil {
		return 0
	}
	return r.made[node]
}

// start runs a recorded run in the background. prior is nil for a new run.
func (e *Engine) start(runID string, proj *config.Project, p *plan.Pipeline, params run.Params, prior *repairState) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closing {
		return fmt.Errorf("%w: %v", ErrUnavailable, errShutdown)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	a := &activeRun{cancel: cancel, done: make(chan struct{})}
	e.active[runID] = a
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		defer close(a.done)
		defer func() {
			e.mu.Lock()
			delete(e.active, runID)
			e.mu.Unlock()
			cancel(nil)
		}()
		e.execute(ctx, runID, proj, p, params, prior)
	}()
	return nil
}

// execute drives one run from RUNNING to its terminal state. Records are
// written with a context that outlives cancellation, so a cancelled run
// still records how it ended.
func (e *Engine) execute(ctx context.Context, runID string, proj *config.Project, p *plan.Pipeline, params run.Params, prior *repairState) {
	recCtx := context.WithoutCancel(ctx)
	log := e.log.With("run_id", runID, "pipeline", p.Name)
	if _, err := e.opt.Store.Append(recCtx, runID, run.Event{Kind: run.RunStateChanged, RunState: run.Running}); err != nil {
		log.Error("recording run start", "err", err)
		return
	}
	state, msg := e.drive(ctx, runID, proj, p, params, prior, log)
	if _, err := e.opt.Store.Append(recCtx, runID, run.Event{Kind: run.RunStateChanged, RunState: state, Message: msg}); err != nil {
		log.Error("recording run end", "err", err)
	}
	log.Info("run ended", "state", state, "message", msg)
}

func (e *Engine) drive(ctx context.Context, runID string, proj *config.Project, p *plan.Pipeline, params run.Params, prior *repairState, log *slog.Logger) (run.State, string) {
	recCtx := context.WithoutCancel(ctx)
	exec, err := e.opt.Backend.OpenRun(ctx, RunContext{RunID: runID, Project: proj, Pipeline: p, Params: params})
	if err != nil {
		return e.endState(ctx, fmt.Sprintf("opening the run's Spark session: %v", err))
	}
	defer func() {
		if err := exec.Close(recCtx); err != nil {
			log.Warn("closing the run's session", "err", err)
		}
	}()

	byName := make(map[string]*plan.Node, len(p.Nodes))
	tasks := make([]schedule.Task, 0, len(p.Nodes))
	for _, n := range p.Nodes {
		byName[n.Name] = n
		tasks = append(tasks, schedule.Task{
			Name:          n.Name,
			Deps:          n.Dependencies,
			Retry:         retryPolicy(n),
			Timeout:       n.Timeout,
			Done:          prior.done(n.Name),
			PriorAttempts: prior.attempts(n.Name),
		})
	}
	runner := schedule.RunnerFunc(func(ctx context.Context, a schedule.Attempt) error {
		emit := func(ev run.Event) {
			ev.Node, ev.Attempt = a.Node, a.Attempt
			if _, err := e.opt.Store.Append(recCtx, runID, ev); err != nil {
				log.Warn("recording a node event", "node", a.Node, "err", err)
			}
		}
		return exec.RunNode(ctx, byName[a.Node], a.Attempt, emit)
	})
	recorder := schedule.RecorderFunc(func(ctx context.Context, t schedule.Transition) error {
		_, err := e.opt.Store.Append(recCtx, runID, run.Event{
			Kind:      run.NodeStateChanged,
			Node:      t.Node,
			NodeState: t.State,
			Attempt:   t.Attempt,
			Error:     t.Err,
			RetryIn:   t.RetryIn,
			Duration:  t.Duration,
		})
		return err
	})
	threshold := e.opt.BreakerThreshold
	if threshold == 0 {
		threshold = globalInt(proj, "circuit_breaker_threshold", 5)
	}
	res, err := schedule.Run(ctx, tasks, runner, recorder, schedule.Options{
		MaxWorkers: p.MaxWorkers,
		FailFast:   params.FailFast,
		Breaker:    breaker.Policy{Threshold: threshold},
		Clock:      e.opt.Clock,
	})
	if err != nil {
		return run.Failed, fmt.Sprintf("scheduler: %v", err)
	}
	if ctx.Err() != nil {
		return e.endState(ctx, "")
	}
	if res.Tripped {
		return run.Failed, res.Reason
	}
	var failed []string
	for _, n := range p.Nodes {
		if res.States[n.Name] != run.NodeSucceeded {
			failed = append(failed, fmt.Sprintf("%s %s", n.Name, res.States[n.Name]))
		}
	}
	if len(failed) > 0 {
		sort.Strings(failed)
		return run.Failed, "nodes did not succeed: " + strings.Join(failed, ", ")
	}
	return run.Succeeded, ""
}

// endState says how a run that stopped early ended: cancelled by a user,
// interrupted by shutdown, or failed.
func (e *Engine) endState(ctx context.Context, msg string) (run.State, string) {
	switch cause := context.Cause(ctx); {
	case errors.Is(cause, errShutdown):
		return run.Interrupted, errShutdown.Error() + "; RepairRun finishes the run"
	case cause != nil:
		var c cancelCause
		if errors.As(cause, &c) {
			return run.Cancelled, c.reason
		}
		return run.Cancelled, cause.Error()
	}
	return run.Failed, msg
}

type cancelCause struct{ reason string }

func (c cancelCause) Error() string { return c.reason }

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

// Cancel stops an active run. Cancelling a run that has ended fails with
// ErrFailedPrecondition.
func (e *Engine) Cancel(ctx context.Context, id, reason string) (run.Run, error) {
	r, err := e.Get(ctx, id)
	if err != nil {
		return run.Run{}, err
	}
	e.mu.Lock()
	a := e.active[id]
	e.mu.Unlock()
	if a == nil || r.State.Terminal() {
		return run.Run{}, fmt.Errorf("run %s is %s, not running: %w", id, r.State, ErrFailedPrecondition)
	}
	if reason == "" {
		reason = "cancelled by request"
	}
	a.cancel(cancelCause{reason: reason})
	select {
	case <-a.done:
	case <-ctx.Done():
		return run.Run{}, ctx.Err()
	}
	return e.Get(ctx, id)
}

// Repair re-runs, in the same record, every node that did not succeed and
// everything downstream of it. Succeeded nodes upstream are kept.
// A repeated call with the same requestID returns the run instead of
// repairing it again.
func (e *Engine) Repair(ctx context.Context, id, requestID string) (run.Run, error) {
	if requestID != "" {
		owner, err := e.opt.Store.RepairRequest(ctx, requestID)
		switch {
		case err == nil && owner == id:
			return e.Get(ctx, id)
		case err == nil:
			return run.Run{}, problem.List{{Field: "request_id", Code: problem.CodeInvalidValue,
				Message: fmt.Sprintf("request_id %q was already used to repair run %s; use a new one", requestID, owner)}}
		case !errors.Is(err, store.ErrNotFound):
			return run.Run{}, err
		}
	}
	r, err := e.Get(ctx, id)
	if err != nil {
		return run.Run{}, err
	}
	e.mu.Lock()
	_, isActive := e.active[id]
	e.mu.Unlock()
	if isActive || !r.State.Terminal() {
		return run.Run{}, fmt.Errorf("run %s is %s; only ended runs can be repaired: %w", id, r.State, ErrFailedPrecondition)
	}
	if r.State == run.Succeeded {
		return run.Run{}, fmt.Errorf("run %s succeeded; there is nothing to repair: %w", id, ErrFailedPrecondition)
	}
	proj, p, err := e.resolve(r.Params)
	if err != nil {
		return run.Run{}, err
	}
	if err := e.opt.Backend.Ready(); err != nil {
		return run.Run{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	reset := RepairSet(p, r)
	prior := &repairState{kept: map[string]bool{}, made: map[string]int{}}
	for _, n := range p.Nodes {
		if !reset[n.Name] {
			prior.kept[n.Name] = true
		}
	}
	for _, n := range r.Nodes {
		prior.made[n.Name] = n.Attempt
	}
	names := make([]string, 0, len(reset))
	for _, n := range p.Nodes {
		if reset[n.Name] {
			names = append(names, n.Name)
		}
	}
	stored, repeated, err := e.opt.Store.PrepareRepair(ctx, id, names, requestID)
	if err != nil {
		return run.Run{}, err
	}
	if repeated { // a concurrent call with the same request id won
		return stored, nil
	}
	if err := e.start(id, proj, p, stored.Params, prior); err != nil {
		return run.Run{}, err
	}
	return stored, nil
}

// RepairSet is the nodes a repair runs again: those that did not succeed
// (or are missing from the record) and everything downstream of them. A
// succeeded node that one of those reads is kept only if it wrote an output
// to read its result back from; one without outputs runs again too.
func RepairSet(p *plan.Pipeline, r run.Run) map[string]bool {
	state := make(map[string]run.NodeState, len(r.Nodes))
	for _, n := range r.Nodes {
		state[n.Name] = n.State
	}
	reset := map[string]bool{}
	// Nodes are in declaration order, which may put a dependent before its
	// dependency, so walk in plan order.
	byName := make(map[string]*plan.Node, len(p.Nodes))
	for _, n := range p.Nodes {
		byName[n.Name] = n
	}
	for _, name := range p.Plan.Order {
		n, ok := byName[name]
		if !ok {
			continue
		}
		if state[name] != run.NodeSucceeded {
			reset[name] = true
			continue
		}
		for _, d := range n.Dependencies {
			if reset[d] {
				reset[name] = true
				break
			}
		}
	}
	for i := len(p.Plan.Order) - 1; i >= 0; i-- {
		n, ok := byName[p.Plan.Order[i]]
		if !ok || !reset[n.Name] {
			continue
		}
		for _, d := range n.Dependencies {
			if dn := byName[d]; dn != nil && !reset[d] && len(dn.Outputs) == 0 {
				reset[d] = true
			}
		}
	}
	return reset
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

// retryPolicy turns a node's tauro retry settings into a policy value:
// max_retries counts retries, so attempts are one more.
func retryPolicy(n *plan.Node) retry.Policy {
	return retry.Policy{
		Initial:     n.RetryDelay,
		Coefficient: n.RetryBackoff,
		Max:         n.RetryMaxDelay,
		MaxAttempts: n.MaxRetries + 1,
		Jitter:      0.2,
	}
}

// globalInt reads an integer global setting, or def when it is not set.
func globalInt(proj *config.Project, key string, def int) int {
	switch v := proj.Global.Values[key].(type) {
	case int64:
		return int(v)
	case float64:
		return int(v)
	}
	return def
}

// mergeInto copies src over dst, which may be nil, and returns it.
func mergeInto(dst, src map[string]any) map[string]any {
	if dst == nil {
		dst = make(map[string]any, len(src))
	}
	maps.Copy(dst, src)
	return dst
}
