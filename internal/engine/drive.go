package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"

	"github.com/tauro-exec/tauro-exec/internal/engine/breaker"
	"github.com/tauro-exec/tauro-exec/internal/engine/observe"
	"github.com/tauro-exec/tauro-exec/internal/engine/plan"
	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	"github.com/tauro-exec/tauro-exec/internal/engine/schedule"
)

// drive runs p's nodes on the backend through the scheduler and says how
// the run ended. The run's executor is closed by release, which the caller
// calls once: after recording the end of a run every node of which
// succeeded (nothing of it still runs, so the end may be told at once and
// the cleanup follow), before recording any other end (so that nothing of
// a cancelled or failed run runs on after it is recorded as ended). A run
// taken up after a restart comes with its executor.
func (e *Engine) drive(ctx context.Context, rc RunContext, t *ticket, obs observe.Run, log *slog.Logger) (end observe.End, release func()) {
	recCtx := context.WithoutCancel(ctx)
	// A run taken up whose Spark work turns out to be gone ends as an
	// interrupted one: the cause says so.
	ctx, interrupt := context.WithCancelCause(ctx)
	defer interrupt(nil)
	if tr := e.opt.Tracker; tr != nil {
		// Only the store can fail this; the run goes on untracked.
		if err := tr.Track(recCtx, rc.RunID, rc.Pipeline); err != nil {
			log.Warn("recording the run for MLflow", "err", err)
		}
	}
	var exec RunExecutor
	if t.resume != nil {
		exec = t.resume.exec
	} else {
		var err error
		if exec, err = e.opt.Backend.OpenRun(ctx, rc); err != nil {
			return e.endState(ctx, fmt.Sprintf("opening the run's Spark session: %v", err)), func() {}
		}
	}
	release = func() {
		if err := exec.Close(recCtx); err != nil {
			log.Warn("closing the run's session", "err", err)
		}
	}
	return e.schedule(ctx, rc, exec, t, obs, log, interrupt), release
}

// schedule runs the nodes on exec and says how the run ended. interrupt
// ends the run INTERRUPTED.
func (e *Engine) schedule(ctx context.Context, rc RunContext, exec RunExecutor, tk *ticket, obs observe.Run, log *slog.Logger, interrupt context.CancelCauseFunc) observe.End {
	recCtx := context.WithoutCancel(ctx)
	p, prior := rc.Pipeline, tk.prior

	byName := make(map[string]*plan.Node, len(p.Nodes))
	tasks := make([]schedule.Task, 0, len(p.Nodes))
	for _, n := range p.Nodes {
		byName[n.Name] = n
		task := schedule.Task{
			Name:          n.Name,
			Deps:          n.Dependencies,
			Retry:         n.Retry,
			Timeout:       n.Timeout,
			Done:          prior.done(n.Name),
			Ended:         prior.endedAs(n.Name),
			PriorAttempts: prior.attempts(n.Name),
		}
		if a, ok := tk.resume.attempt(n.Name); ok {
			task.Resume, task.PriorAttempts, task.Started = true, a.Attempt-1, a.Started
		}
		tasks = append(tasks, task)
	}
	observed := newAttempts(e.opt.Observer, obs, byName)
	runner := schedule.RunnerFunc(func(ctx context.Context, a schedule.Attempt) error {
		ctx = observed.start(ctx, a)
		emit := func(ev run.Event) {
			ev.Node, ev.Attempt = a.Node, a.Attempt
			if _, err := e.opt.Store.AppendAs(recCtx, tk.lease, ev); err != nil {
				tk.fenced(err)
				log.Warn("recording a node event", "node", a.Node, "err", err)
			}
		}
		err := exec.RunNode(ctx, byName[a.Node], a.Attempt, emit)
		if errors.Is(err, ErrNotResumable) {
			log.Warn("a node's Spark work could not be taken up; the run is interrupted", "node", a.Node, "err", err)
			interrupt(fmt.Errorf("%w: node %s: %v", ErrNotResumable, a.Node, err))
		}
		return err
	})
	recorder := schedule.RecorderFunc(func(ctx context.Context, t schedule.Transition) error {
		_, err := e.opt.Store.AppendAs(recCtx, tk.lease, run.Event{
			Kind:      run.NodeStateChanged,
			Node:      t.Node,
			NodeState: t.State,
			Attempt:   t.Attempt,
			Error:     t.Err,
			RetryIn:   t.RetryIn,
			Duration:  t.Duration,
		})
		if err == nil {
			observed.end(t)
		}
		tk.fenced(err)
		return err
	})
	threshold := e.opt.BreakerThreshold
	if threshold == 0 {
		threshold = p.BreakerThreshold
	}
	res, err := schedule.Run(ctx, tasks, runner, recorder, schedule.Options{
		MaxWorkers: p.MaxWorkers,
		FailFast:   tk.failFast,
		Breaker:    breaker.Policy{Threshold: threshold},
		Clock:      e.opt.Clock,
	})
	observed.endRest(res)
	if err != nil {
		return observe.End{State: run.Failed, Message: fmt.Sprintf("scheduler: %v", err)}
	}
	if ctx.Err() != nil {
		return e.endState(ctx, "")
	}
	if res.Tripped {
		return observe.End{State: run.Failed, Message: res.Reason, Tripped: true}
	}
	var failed []string
	for _, n := range p.Nodes {
		if res.States[n.Name] != run.NodeSucceeded {
			failed = append(failed, fmt.Sprintf("%s %s", n.Name, res.States[n.Name]))
		}
	}
	if len(failed) > 0 {
		sort.Strings(failed)
		return observe.End{State: run.Failed, Message: "nodes did not succeed: " + strings.Join(failed, ", ")}
	}
	return observe.End{State: run.Succeeded}
}

// endState says how a run that stopped early ended: cancelled by a user,
// interrupted by shutdown, or failed.
func (e *Engine) endState(ctx context.Context, msg string) observe.End {
	switch cause := context.Cause(ctx); {
	case errors.Is(cause, ErrShutdown):
		return observe.End{State: run.Interrupted, Message: ErrShutdown.Error() + "; RepairRun finishes the run"}
	case errors.Is(cause, ErrLeaseLost):
		return observe.End{State: run.Interrupted, Message: cause.Error()}
	case errors.Is(cause, ErrNotResumable):
		return observe.End{State: run.Interrupted, Message: cause.Error() + "; RepairRun finishes the run"}
	case cause != nil:
		var c cancelCause
		if errors.As(cause, &c) {
			return observe.End{State: run.Cancelled, Message: c.reason}
		}
		return observe.End{State: run.Cancelled, Message: cause.Error()}
	}
	return observe.End{State: run.Failed, Message: msg}
}

type cancelCause struct{ reason string }

func (c cancelCause) Error() string { return c.reason }

// attempt returns the attempt of node a run taken up continues, if any.
func (r *resumption) attempt(node string) (run.LiveAttempt, bool) {
	if r == nil {
		return run.LiveAttempt{}, false
	}
	a, ok := r.live[node]
	return a, ok
}
