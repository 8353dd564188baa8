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
	"runtime"
	"sync"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/config"
	"github.com/tauro-exec/tauro-exec/internal/engine/experiment"
	"github.com/tauro-exec/tauro-exec/internal/engine/observe"
	"github.com/tauro-exec/tauro-exec/internal/engine/plan"
	"github.com/tauro-exec/tauro-exec/internal/engine/problem"
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

// Abandoner is a Backend that can end a streaming query a killed execd
// left running, found by where its STREAMING event said it runs.
type Abandoner interface {
	Abandon(ctx context.Context, q run.QueryRef) error
}

// RunContext is what a backend needs to know about a run: everything it
// runs with was decided by planning and is in the Pipeline.
type RunContext struct {
	RunID    string
	Pipeline *plan.Pipeline
	// Stop is closed when the run is asked to stop gracefully (StopRun):
	// streaming queries end after their current micro-batch, and a node
	// ended that way succeeds. Batch nodes do not watch it.
	Stop <-chan struct{}
	// Journal is the run's durable record for a Resumer backend: what it
	// needs to take the run up after execd was killed. It is empty when an
	// execution begins and cleared when it ends; nil for other backends.
	Journal Journal
	// Live lists, for a run taken up after a restart (Resumer.ResumeRun),
	// the node attempts the killed execd left under way.
	Live []run.LiveAttempt
}

// Journal is a run's durable key-value space for its backend. Save is
// committed when it returns, so a record made before a Spark operation
// starts survives execd being killed while it runs.
type Journal interface {
	Load(ctx context.Context, key string) ([]byte, error)
	Save(ctx context.Context, key string, value []byte) error
	// List returns the entries whose keys start with prefix.
	List(ctx context.Context, prefix string) (map[string][]byte, error)
}

// Resumer is a Backend whose work can outlive execd: on a Spark Connect
// server execd did not start, a run's session, the operations in flight
// and the streaming queries go on when execd is killed. At the next start
// the engine asks it to take each run it left RUNNING up instead of
// interrupting it.
type Resumer interface {
	// ResumeRun reopens the run's executor as the killed execd left it,
	// from rc.Journal. An error means the run cannot be taken up (the
	// backend does not outlive execd, the server lost the session): the
	// run is then INTERRUPTED, as without a Resumer.
	ResumeRun(ctx context.Context, rc RunContext) (ResumedRun, error)
}

// ResumedRun is a run's executor taken up after a restart.
type ResumedRun interface {
	RunExecutor
	// Continues reports whether an attempt that was under way goes on
	// where it was: RunNode with its attempt number takes its Spark work
	// up. Otherwise the attempt is ended as interrupted and the node runs
	// again as its next attempt.
	Continues(ctx context.Context, a run.LiveAttempt) bool
}

// ErrNotResumable is returned (wrapped) by a resumed RunExecutor's RunNode
// when the Spark work of an attempt it was to take up is gone: the server
// interrupted it after its detached timeout. The run then ends INTERRUPTED,
// as a run that could not be taken up at all does.
var ErrNotResumable = errors.New("the Spark work of the run can no longer be taken up")

// RunExecutor runs the nodes of one run.
type RunExecutor interface {
	// RunNode runs one attempt of a node. emit reports messages and metrics
	// of the attempt; they are stored before they are streamed.
	RunNode(ctx context.Context, node *plan.Node, attempt int, emit func(run.Event)) error
	// Close releases what the run held. When every node succeeded it is
	// called after the run's end is recorded, so it must not write; else
	// before.
	Close(ctx context.Context) error
}

// Options configure an Engine.
type Options struct {
	// Projects are the projects served. Nil serves one, from ProjectDir,
	// Env and CodeRoots, named after its folder.
	Projects Projects
	// ProjectDir is the one project's folder when Projects is nil.
	ProjectDir string
	// Env is used when a request names none (the one project's).
	Env     string
	Store   store.Store
	Backend Backend
	Logger  *slog.Logger
	// Clock drives timeouts and backoff; nil means the real clock.
	Clock schedule.Clock
	// BreakerThreshold stops a run after this many consecutive node
	// failures; 0 uses the plan's (global circuit_breaker_threshold, or 5).
	BreakerThreshold int
	// MaxConcurrentRuns caps the runs executing at once; more wait QUEUED.
	// 0 means DefaultMaxConcurrentRuns.
	MaxConcurrentRuns int
	// Now is the wall clock for records; nil means time.Now.
	Now func() time.Time
	// Environ is what ${NAME} reads; nil means every variable of the
	// process.
	Environ *config.Environment
	// Observer follows runs and node attempts for metrics and traces; nil
	// observes nothing.
	Observer observe.Observer
	// CodeRoots are the one project's (see Project.CodeRoots).
	CodeRoots []string
	// Suggester proposes experiments' trials; nil refuses experiments.
	Suggester experiment.Suggester
	// Replica names this execd among those sharing the store (see
	// replica.go); "" means DefaultReplica.
	Replica string
	// Address is where this replica serves, for ListReplicas.
	Address string
	// LeaseTTL is how long a replica's heartbeat keeps its runs its own;
	// 0 means DefaultLeaseTTL.
	LeaseTTL time.Duration
	// Tracker records runs in an experiment tracking server (the MLflow
	// mirror); nil records none.
	Tracker Tracker
}

// Tracker is told of every execution of a run (a first one, a repair,
// one taken up after a restart) before its nodes run, and records it in
// an experiment tracking server when the pipeline asks for it. It must
// not fail the run for a server that does not answer.
type Tracker interface {
	Track(ctx context.Context, runID string, p *plan.Pipeline) error
	// TrackExperiment is told of an experiment of p when it is created,
	// before its first trial.
	TrackExperiment(ctx context.Context, x experiment.Record, p *plan.Pipeline) error
}

// Engine executes pipelines and answers questions about runs.
type Engine struct {
	opt Options
	log *slog.Logger

	checked checked // function checks that passed

	mu      sync.Mutex
	active  map[string]*activeRun
	queue   []*ticket
	seq     uint64 // orders tickets of equal priority
	exps    map[string]*activeExperiment
	closing bool
	wg      sync.WaitGroup

	replica replicaLoop // heartbeats, adoption, control requests
}

// DefaultMaxConcurrentRuns is the machine's cores, at least 2: the runs of
// one execd share one Spark, and more runs than cores only take turns.
var DefaultMaxConcurrentRuns = max(2, runtime.NumCPU())

type activeRun struct {
	ticket   *ticket
	key      string   // pipelineKey
	writes   []string // writeLocations
	cancel   context.CancelCauseFunc
	done     chan struct{}
	stop     chan struct{} // closed by Stop
	stopOnce sync.Once
}

// ErrShutdown is the cause of a run's context when execd is shutting down:
// the run is recorded INTERRUPTED, and backends may end their work
// gracefully (a streaming query after its current micro-batch).
var ErrShutdown = errors.New("execd is shutting down")

// New returns an Engine. Call Recover once before serving.
func New(opt Options) *Engine {
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Observer == nil {
		opt.Observer = observe.Nop{}
	}
	if opt.Replica == "" {
		opt.Replica = DefaultReplica
	}
	if opt.LeaseTTL <= 0 {
		opt.LeaseTTL = DefaultLeaseTTL
	}
	if opt.Projects == nil {
		opt.Projects = OneProject{Name: ProjectNameOf(opt.ProjectDir), Dir: opt.ProjectDir, Env: opt.Env, CodeRoots: opt.CodeRoots}
	}
	return &Engine{opt: opt, log: opt.Logger, active: map[string]*activeRun{}}
}

// Recover deals with the runs a previous execd left running. A run whose
// backend outlived that execd (a Resumer: a remote Spark) is taken up where
// it was: its nodes' Spark operations and streaming queries go on and are
// recorded once. Any other is marked INTERRUPTED, and the streaming
// queries it had running on a backend that outlived that execd are ended
// (a stream never ends by itself, and a run that is not active can no
// longer be stopped, so it would go on writing while its record says it
// was interrupted). Then the runs it left QUEUED are queued again.
//
// With several replicas on one store, a replica recovers only the runs it
// can claim: its own (a replica restarted under the same name) and those
// whose owner's heartbeats have lapsed. It then goes on doing so while it
// serves (replica.go).
func (e *Engine) Recover(ctx context.Context) error {
	if _, err := e.opt.Store.Heartbeat(ctx, e.opt.Replica, e.opt.Address, e.opt.LeaseTTL); err != nil {
		return err
	}
	ids, err := e.opt.Store.Unfinished(ctx)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if err := e.recoverRun(ctx, id); err != nil {
			return err
		}
	}
	if err := e.requeue(ctx); err != nil {
		return err
	}
	if err := e.resumeExperiments(ctx); err != nil {
		return err
	}
	e.serveReplica()
	return nil
}

// recoverRun takes up or interrupts a PENDING or RUNNING run another
// execd left, once it has claimed it. A run a live replica owns is left
// to it.
func (e *Engine) recoverRun(ctx context.Context, id string) error {
	lease, err := e.claimIdle(ctx, id)
	if errors.Is(err, store.ErrLeaseHeld) || errors.Is(err, store.ErrRunEnded) {
		return nil
	}
	if err != nil {
		return err
	}
	if e.resume(ctx, lease) {
		return nil
	}
	interrupted, err := e.opt.Store.Interrupt(ctx, id)
	if err != nil || !interrupted {
		return err
	}
	e.log.Warn("run interrupted by a previous stop; RepairRun finishes it", "run_id", id)
	e.abandon(ctx, id)
	if err := e.opt.Store.JournalClear(ctx, lease); err != nil {
		e.log.Warn("clearing the journal of an interrupted run", "run_id", id, "err", err)
	}
	return nil
}

// claimIdle claims run id unless this replica executes or queues it: a
// replica whose own heartbeats lapsed (a store write held up past the
// lease) finds its own runs among the orphans, and claiming one it
// executes would fence that execution. Such a run is ErrLeaseHeld.
func (e *Engine) claimIdle(ctx context.Context, id string) (store.Lease, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.active[id]; ok || e.queuedLocked(id) {
		return store.Lease{}, fmt.Errorf("%w: run %s executes on this replica", store.ErrLeaseHeld, id)
	}
	return e.opt.Store.Claim(ctx, id, e.opt.Replica)
}

// abandonTimeout bounds how long ending one left-over query may hold up
// the start.
const abandonTimeout = 20 * time.Second

// abandon ends the streaming queries run id had running when it was
// interrupted. A query that cannot be reached is gone already or stays
// for Spark to end; either way the start goes on.
func (e *Engine) abandon(ctx context.Context, id string) {
	ab, ok := e.opt.Backend.(Abandoner)
	if !ok {
		return
	}
	queries, err := e.opt.Store.InterruptedQueries(ctx, id)
	if err != nil {
		e.log.Warn("reading the streaming queries of an interrupted run", "run_id", id, "err", err)
		return
	}
	for _, q := range queries {
		qctx, cancel := context.WithTimeout(ctx, abandonTimeout)
		err := ab.Abandon(qctx, q)
		cancel()
		if err != nil {
			e.log.Warn("could not end a streaming query a previous execd left running", "run_id", id, "query", q.ID, "session", q.Session, "err", err)
			continue
		}
		e.log.Info("ended a streaming query a previous execd left running", "run_id", id, "query", q.ID, "session", q.Session)
	}
}

// Close stops every active run (they become INTERRUPTED, so RepairRun can
// finish them) and waits for them to record it. Queued runs stay queued
// for the next execd.
func (e *Engine) Close(ctx context.Context) error {
	e.mu.Lock()
	e.closing = true
	for _, a := range e.active {
		a.cancel(ErrShutdown)
	}
	for _, t := range e.queue {
		e.opt.Observer.RunEnded(t.ctx, t.observed(), observe.End{State: run.Queued,
			Message: "execd stopped before the run started; the next execd queues it again"})
	}
	for _, x := range e.exps {
		x.cancel(ErrShutdown)
	}
	e.mu.Unlock()
	e.stopReplica()
	done := make(chan struct{})
	go func() { e.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Load is how many runs wait QUEUED for admission and how many execute.
func (e *Engine) Load() (queued, executing int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.queue), len(e.active)
}

// load reads the configuration of a project ("" the only one) for env
// ("" the project's default).
func (e *Engine) load(project, env string) (*config.Project, Project, error) {
	pr, err := e.project(project)
	if err != nil {
		return nil, Project{}, err
	}
	if env == "" {
		env = pr.Env
	}
	var proj *config.Project
	if e.opt.Environ != nil {
		proj, err = config.LoadFrom(pr.Dir, env, e.opt.Environ)
	} else {
		proj, err = config.Load(pr.Dir, env)
	}
	return proj, pr, err
}

// plan loads the project and resolves the pipeline params ask for. The
// result holds every value the run is executed with.
func (e *Engine) plan(params run.Params) (*plan.Pipeline, error) {
	proj, pr, err := e.load(params.Project, params.Env)
	if err != nil {
		return nil, err
	}
	req := plan.Request{
		Pipeline:        params.Pipeline,
		StartDate:       params.StartDate,
		EndDate:         params.EndDate,
		Select:          params.Select,
		MaxWorkers:      params.MaxWorkers,
		Hyperparams:     params.Hyperparams,
		ModelVersion:    params.ModelVersion,
		FullRefresh:     params.FullRefresh,
		ResetCheckpoint: params.ResetCheckpoint,
	}
	if iso := params.Isolation; iso != nil {
		req.Isolate = &plan.Isolation{Writes: iso.Writes, Reads: iso.Reads, Shared: iso.Shared, Experiment: iso.Experiment, Trial: iso.Trial}
	}
	p, err := plan.Resolve(proj, req)
	if p != nil {
		p.Project = pr.Name
	}
	return p, err
}

// decided is what a run record keeps of its plan: the request as planning
// resolved it (dates, workers, hyperparameters and model version made
// effective), so that a repair runs with the same values.
func decided(params run.Params, p *plan.Pipeline) run.Params {
	return run.Params{
		Project:         p.Project,
		Pipeline:        p.Name,
		Env:             p.Env,
		StartDate:       plan.FormatDate(p.StartDate),
		EndDate:         plan.FormatDate(p.EndDate),
		MaxWorkers:      p.MaxWorkers,
		Hyperparams:     p.Hyperparams,
		ModelVersion:    p.ModelVersion,
		Select:          params.Select,
		FailFast:        params.FailFast,
		Priority:        params.Priority,
		Isolation:       params.Isolation,
		FullRefresh:     params.FullRefresh,
		ResetCheckpoint: params.ResetCheckpoint,
	}
}
