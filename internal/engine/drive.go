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
// a cancelled or failed run runs on after it is recorded as ended).
func (e *Engine) drive(ctx context.Context, rc RunContext, failFast bool, prior *repairState, obs observe.Run, log *slog.Logger) (end observe.End, release func()) {
	recCtx := context.WithoutCancel(ctx)
	exec, err := e.opt.Backend.OpenRun(ctx, rc)
	if err != nil {
		return e.endState(ctx, fmt.Sprintf("opening the run's Spark session: %v", err)), func() {}
	}
	release = func() {
		if err := exec.Close(recCtx); err != nil {
			log.Warn("closing the run's session", "err", err)
		}
	}
	return e.schedule(ctx, rc, exec, failFast, prior, obs, log), release
}

// schedule runs the nodes on exec and says how the run ended.
func (e *Engine) schedule(ctx context.Context, rc RunContext, exec RunExecutor, failFast bool, prior *repairState, obs observe.Run, log *slog.Logger) observe.End {
	recCtx := context.WithoutCancel(ctx)
	runID, p := rc.RunID, rc.Pipeline

	byName := make(map[string]*plan.Node, len(p.Nodes))
	tasks := make([]schedule.Task, 0, len(p.Nodes))
	for _, n := range p.Nodes {
		byName[n.Name] = n
		tasks = append(tasks, schedule.Task{
			Name:          n.Name,
			Deps:          n.Dependencies,
			Retry:         n.Retry,
			Timeout:       n.Timeout,
			Done:          prior.done(n.Name),
			PriorAttempts: prior.attempts(n.Name),
		})
	}
	observed := newAttempts(e.opt.Observer, obs, byName)
	runner := schedule.RunnerFunc(func(ctx context.Context, a schedule.Attempt) error {
		ctx = observed.start(ctx, a)
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
		if err == nil {
			observed.end(t)
		}
		return err
	})
	threshold := e.opt.BreakerThreshold
	if threshold == 0 {
		threshold = p.BreakerThreshold
	}
	res, err := schedule.Run(ctx, tasks, runner, recorder, schedule.Options{
		MaxWorkers: p.MaxWorkers,
		FailFast:   failFast,
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
