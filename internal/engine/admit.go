package engine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/observe"
	"github.com/tauro-exec/tauro-exec/internal/engine/plan"
	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	"github.com/tauro-exec/tauro-exec/internal/engine/store"
)

// Admission: every run waits QUEUED until it may execute, as Dagster's run
// coordinator and Airflow's max_active_runs have it. A run is admitted when
//   - fewer than Options.MaxConcurrentRuns runs execute,
//   - fewer than its pipeline's max_active_runs runs of the same pipeline
//     and environment execute, and
//   - no executing run writes where it writes (an output, a streaming sink
//     or checkpoint at, under or above one of its own).
// Queued runs are considered by priority, higher first, then in the order
// they were queued; one that cannot start yet does not hold back a later
// one that can. The queue lives in the store (the runs' QUEUED state), so
// it survives a restart.
//
// With several replicas on one store, each admits the runs in its own
// queue, against --max-concurrent-runs of its own; max_active_runs, where
// runs write and priority are judged against the runs executing and
// waiting on every replica, in the store's StartRun, which admits one run
// at a time across them: a run waits while a run ahead of it in the queue
// (on any replica) could start and would then block it. A replica looks at
// its queue again every admitPoll, since runs that end on another replica
// do not tell it.

// ticket is a queued run.
type ticket struct {
	id       string
	p        *plan.Pipeline
	failFast bool
	prior    *repairState
	resume   *resumption   // a run taken up after a restart
	stop     chan struct{} // nil: startLocked makes one
	priority int
	seq      uint64
	// created is when its run was created: its place among runs of equal
	// priority on every replica.
	created time.Time
	writes  []string
	// lease is the run's, held by this replica: every write for the run
	// is made under it.
	lease store.Lease
	// cancel ends the run's execution with a cause (set when it starts).
	cancel context.CancelCauseFunc
	// recovered is a run a previous execd left queued, or running on a
	// Spark that outlived it (taken up, resume.go).
	recovered bool
	// ctx is the context the run executes under, from the Observer.
	ctx context.Context
}

func (e *Engine) newTicket(id string, p *plan.Pipeline, params run.Params, prior *repairState) *ticket {
	e.seq++
	return &ticket{id: id, p: p, failFast: params.FailFast, prior: prior, priority: params.Priority, seq: e.seq, writes: writeLocations(p),
		ctx: context.Background()}
}

// observed names t's execution to the Observer.
func (t *ticket) observed() observe.Run {
	return observe.Run{ID: t.id, Project: t.p.Project, Pipeline: t.p.Name, Env: t.p.Env, Repair: t.prior != nil, Recovered: t.recovered}
}

// pipelineKey names the runs one max_active_runs counts together. An
// experiment's runs count apart ("" : never): they write beside the
// pipeline's outputs, and the experiment's max_parallel_trials bounds them.
func pipelineKey(p *plan.Pipeline) string {
	if p.Isolation != nil {
		return ""
	}
	return p.Project + "\x1f" + p.Env + "\x1f" + p.Name // no NUL: a database text column may not hold one
}

// writeLocations are the places a run writes to: every selected node's
// outputs, and its streaming sink and checkpoint.
func writeLocations(p *plan.Pipeline) []string {
	var out []string
	add := func(loc string) {
		if loc != "" {
			out = append(out, strings.TrimRight(filepath.ToSlash(loc), "/"))
		}
	}
	for _, n := range p.Nodes {
		for _, o := range n.OutputSpecs {
			add(o.Path)
		}
		if n.Stream != nil {
			add(n.Stream.Sink.Path)
			add(n.Stream.Checkpoint)
		}
	}
	return out
}

// overlap finds a location of a that is, contains or lies inside one of b.
func overlap(a, b []string) (string, bool) {
	for _, x := range a {
		for _, y := range b {
			if x == y || strings.HasPrefix(x, y+"/") || strings.HasPrefix(y, x+"/") {
				return x, true
			}
		}
	}
	return "", false
}

// admitPoll is how often a replica with runs waiting looks at its queue
// again.
const admitPoll = time.Second

// blockerLocked says why t cannot start now, "" when it can, judged by the
// runs this replica executes. e.mu is held.
func (e *Engine) blockerLocked(t *ticket) string {
	if len(e.active) >= e.maxConcurrent() {
		return fmt.Sprintf("%d runs are executing, the most --max-concurrent-runs allows", len(e.active))
	}
	executing := make([]store.Admission, 0, len(e.active))
	for id, a := range e.active {
		executing = append(executing, store.Admission{RunID: id, Key: a.key, Writes: a.writes})
	}
	slices.SortFunc(executing, func(a, b store.Admission) int { return cmp.Compare(a.RunID, b.RunID) })
	return blocker(t.admission(), executing)
}

// admission is what t's admission is judged by.
func (t *ticket) admission() store.Admission {
	return store.Admission{RunID: t.id, Pipeline: t.p.Name, Key: pipelineKey(t.p), MaxActive: max(t.p.MaxActiveRuns, 1),
		Writes: t.writes, Priority: t.priority, Created: t.created}
}

// blocker says which of the executing runs keeps a from starting: one too
// many of its pipeline, or one that writes where it writes.
func blocker(a store.Admission, executing []store.Admission) string {
	same := 0
	for _, x := range executing {
		if a.Key != "" && x.Key == a.Key {
			if same++; same >= max(a.MaxActive, 1) {
				return fmt.Sprintf("pipeline %s already has %d run(s) executing (max_active_runs %d; the latest is %s)", a.Pipeline, same, max(a.MaxActive, 1), x.RunID)
			}
		}
		if loc, ok := overlap(a.Writes, x.Writes); ok {
			return fmt.Sprintf("run %s is writing %s", x.RunID, loc)
		}
	}
	return ""
}

// admissible says why a cannot start among the executing runs, or, when
// it could, which run waiting ahead of it in the queue could start too and
// would then block it: priority holds across replicas.
func admissible(a store.Admission, executing, waiting []store.Admission) string {
	if why := blocker(a, executing); why != "" {
		return why
	}
	for _, w := range waiting {
		if !ahead(w, a) || blocker(w, executing) != "" {
			continue
		}
		if blocker(a, append(slices.Clip(executing), w)) != "" {
			return fmt.Sprintf("run %s is ahead in the queue (priority %d) and would block it", w.RunID, w.Priority)
		}
	}
	return ""
}

// ahead reports whether w comes before a in the queue: higher priority
// first, then the earlier created.
func ahead(w, a store.Admission) bool {
	if w.Priority != a.Priority {
		return w.Priority > a.Priority
	}
	if !w.Created.Equal(a.Created) {
		return w.Created.Before(a.Created)
	}
	return w.RunID < a.RunID
}

func (e *Engine) maxConcurrent() int {
	if e.opt.MaxConcurrentRuns > 0 {
		return e.opt.MaxConcurrentRuns
	}
	return DefaultMaxConcurrentRuns
}

// enqueueLocked records t's run QUEUED (unless it already is, after a
// restart) and admits what can start. e.mu is held.
func (e *Engine) enqueueLocked(ctx context.Context, t *ticket, record bool) error {
	if record {
		if err := e.opt.Store.Queue(context.WithoutCancel(ctx), t.lease, t.admission()); err != nil {
			return err
		}
	}
	t.ctx = context.WithoutCancel(e.opt.Observer.RunQueued(ctx, t.observed()))
	e.queue = append(e.queue, t)
	e.admitLocked()
	return nil
}

// admitLocked starts every queued run that may start, best first. e.mu is
// held.
func (e *Engine) admitLocked() {
	if e.closing || len(e.queue) == 0 {
		return
	}
	slices.SortStableFunc(e.queue, func(a, b *ticket) int {
		if a.priority != b.priority {
			return cmp.Compare(b.priority, a.priority) // higher first
		}
		return cmp.Compare(a.seq, b.seq)
	})
	kept := e.queue[:0]
	for _, t := range e.queue {
		if e.blockerLocked(t) != "" {
			kept = append(kept, t)
			continue
		}
		a := t.admission()
		why, err := e.opt.Store.StartRun(context.WithoutCancel(t.ctx), t.lease, a,
			func(executing, waiting []store.Admission) string { return admissible(a, executing, waiting) })
		switch {
		case errors.Is(err, store.ErrFenced):
			e.log.Warn("a queued run passed to another replica", "run_id", t.id, "err", err)
			continue
		case err != nil:
			e.log.Warn("admitting a run; it stays queued", "run_id", t.id, "err", err)
			kept = append(kept, t)
			continue
		case why != "":
			kept = append(kept, t)
			continue
		}
		e.startLocked(t)
	}
	clear(e.queue[len(kept):])
	e.queue = kept
}

// admit admits what can start now that a run has ended.
func (e *Engine) admit() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.admitLocked()
}

// dequeueLocked takes run id out of the queue; nil when it is not there.
func (e *Engine) dequeueLocked(id string) *ticket {
	for i, t := range e.queue {
		if t.id == id {
			e.queue = slices.Delete(e.queue, i, i+1)
			return t
		}
	}
	return nil
}

// requeue puts the runs a previous execd left QUEUED back in the queue, in
// their order. A run whose pipeline no longer resolves is failed with the
// reason.
func (e *Engine) requeue(ctx context.Context) error {
	ids, err := e.opt.Store.Queued(ctx)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if err := e.requeueRun(ctx, id); err != nil {
			return err
		}
	}
	return nil
}

// requeueRun queues a QUEUED run again once it has claimed it; one a
// live replica owns is left to it.
func (e *Engine) requeueRun(ctx context.Context, id string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.active[id]; ok || e.queuedLocked(id) {
		return nil
	}
	lease, err := e.opt.Store.Claim(ctx, id, e.opt.Replica)
	if errors.Is(err, store.ErrLeaseHeld) || errors.Is(err, store.ErrRunEnded) {
		return nil
	}
	if err != nil {
		return err
	}
	r, err := e.Get(ctx, id)
	if err != nil {
		return err
	}
	p, err := e.plan(r.Params)
	if err != nil {
		e.log.Warn("a queued run no longer resolves; failing it", "run_id", id, "err", err)
		_, err := e.opt.Store.AppendAs(ctx, lease, run.Event{Kind: run.RunStateChanged, RunState: run.Failed,
			Message: "the pipeline no longer resolves after a restart: " + err.Error()})
		return err
	}
	var prior *repairState
	if r.RepairCount > 0 {
		prior = priorOf(p, r)
	}
	e.log.Info("run queued by a previous execd is queued again", "run_id", id)
	t := e.newTicket(id, p, r.Params, prior)
	t.recovered, t.lease, t.created = true, lease, r.CreateTime
	return e.enqueueLocked(ctx, t, false)
}

// queuedLocked reports whether run id waits in this replica's queue. e.mu
// is held.
func (e *Engine) queuedLocked(id string) bool {
	for _, t := range e.queue {
		if t.id == id {
			return true
		}
	}
	return false
}
