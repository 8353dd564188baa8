package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"

	"github.com/tauro-exec/tauro-exec/internal/engine/breaker"
	"github.com/tauro-exec/tauro-exec/internal/engine/plan"
	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	"github.com/tauro-exec/tauro-exec/internal/engine/schedule"
)

// drive runs p's nodes on the backend through the scheduler and says how
// the run ended.
func (e *Engine) drive(ctx context.Context, rc RunContext, t *ticket, log *slog.Logger) (run.State, string) {
	recCtx := context.WithoutCancel(ctx)
	runID, p, prior := rc.RunID, rc.Pipeline, t.prior
	// A run taken up whose Spark work turns out to be gone ends as an
	// interrupted one: the cause says so.
	ctx, interrupt := context.WithCancelCause(ctx)
	defer interrupt(nil)
	var exec RunExecutor
	if t.resume != nil {
		exec = t.resume.exec
	} else {
		var err error
		if exec, err = e.opt.Backend.OpenRun(ctx, rc); err != nil {
			return e.endState(ctx, fmt.Sprintf("opening the run's Spark session: %v", err))
		}
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
		task := schedule.Task{
			Name:          n.Name,
			Deps:          n.Dependencies,
			Retry:         n.Retry,
			Timeout:       n.Timeout,
			Done:          prior.done(n.Name),
			Ended:         prior.endedAs(n.Name),
			PriorAttempts: prior.attempts(n.Name),
		}
		if a, ok := t.resume.attempt(n.Name); ok {
			task.Resume, task.PriorAttempts, task.Started = true, a.Attempt-1, a.Started
		}
		tasks = append(tasks, task)
	}
	runner := schedule.RunnerFunc(func(ctx context.Context, a schedule.Attempt) error {
		emit := func(ev run.Event) {
			ev.Node, ev.Attempt = a.Node, a.Attempt
			if _, err := e.opt.Store.Append(recCtx, runID, ev); err != nil {
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
		threshold = p.BreakerThreshold
	}
	res, err := schedule.Run(ctx, tasks, runner, recorder, schedule.Options{
		MaxWorkers: p.MaxWorkers,
		FailFast:   t.failFast,
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
	case errors.Is(cause, ErrShutdown):
		return run.Interrupted, ErrShutdown.Error() + "; RepairRun finishes the run"
	case errors.Is(cause, ErrNotResumable):
		return run.Interrupted, cause.Error() + "; RepairRun finishes the run"
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

// attempt returns the attempt of node a run taken up continues, if any.
func (r *resumption) attempt(node string) (run.LiveAttempt, bool) {
	if r == nil {
		return run.LiveAttempt{}, false
	}
	a, ok := r.live[node]
	return a, ok
}
