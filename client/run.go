package client

import (
	"context"
	"crypto/rand"
	"fmt"
	"iter"
	"sync"

	execv1 "github.com/tauro-exec/tauro-exec/gen/tauro/exec/v1"
)

// Run is the handle of a run. Its calls are safe for concurrent use.
type Run struct {
	c       *Client
	id      string
	project string // sent on by-id calls only when the caller gave it

	mu   sync.Mutex
	snap *execv1.Run
}

// ID is the run's id.
func (r *Run) ID() string { return r.id }

// Snapshot is the run as last read (by Execute, Runs, Get, Wait or a call
// that changes it), or nil before any read.
func (r *Run) Snapshot() *execv1.Run {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.snap
}

func (r *Run) set(pr *execv1.Run) *execv1.Run {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.snap = pr
	return pr
}

// Get reads the run.
func (r *Run) Get(ctx context.Context) (*execv1.Run, error) {
	resp, err := retry(ctx, r.c, func(ctx context.Context) (*execv1.GetRunResponse, error) {
		return r.c.svc.GetRun(ctx, &execv1.GetRunRequest{RunId: r.id, Project: r.project})
	})
	if err != nil {
		return nil, err
	}
	return r.set(resp.GetRun()), nil
}

// Watch yields the run's events from the first, in order. See WatchAfter.
func (r *Run) Watch(ctx context.Context) iter.Seq2[Event, error] { return r.WatchAfter(ctx, 0) }

// WatchAfter yields the run's events with a sequence above after, in order:
// what is stored, then live. A dropped stream or a restarted execd is
// resumed after the last event yielded, with backoff, so each sequence comes
// exactly once. It ends after the run's terminal event, or with an error
// (ctx's, or the one that made it give up) as its last pair.
func (r *Run) WatchAfter(ctx context.Context, after int64) iter.Seq2[Event, error] {
	return follow(ctx, r.c, after,
		func(ctx context.Context, after int64) (func() (Event, int64, error), error) {
			stream, err := r.c.svc.WatchRun(ctx, &execv1.WatchRunRequest{RunId: r.id, AfterSequence: after, Project: r.project})
			if err != nil {
				return nil, err
			}
			return func() (Event, int64, error) {
				resp, err := stream.Recv()
				if err != nil {
					return Event{}, 0, err
				}
				return eventFromProto(resp.GetEvent()), resp.GetEvent().GetSequence(), nil
			}, nil
		},
		func(ctx context.Context) (bool, int64, error) {
			resp, err := r.c.svc.GetRun(ctx, &execv1.GetRunRequest{RunId: r.id, Project: r.project})
			if err != nil {
				return false, 0, err
			}
			pr := r.set(resp.GetRun())
			return RunTerminal(pr.GetState()), pr.GetLastSequence(), nil
		})
}

// Wait follows the run until it is terminal and returns it as it ended. A
// run that did not succeed is a *RunFailedError naming each failed node's
// error type, message and traceback. When ctx ends first, the error wraps
// ctx's.
func (r *Run) Wait(ctx context.Context) (*execv1.Run, error) {
	from := r.Snapshot().GetLastSequence()
	for _, err := range r.WatchAfter(ctx, from) {
		if err != nil {
			return nil, fmt.Errorf("wait for run %s (last seen %s): %w", r.id, runStateName(r.Snapshot().GetState()), err)
		}
	}
	pr := r.Snapshot()
	if pr.GetState() != RunSucceeded {
		return pr, runFailed(pr)
	}
	return pr, nil
}

func runFailed(pr *execv1.Run) *RunFailedError {
	e := &RunFailedError{RunID: pr.GetRunId(), Pipeline: pr.GetPipeline(), Project: pr.GetProject(), State: pr.GetState(), Message: pr.GetMessage()}
	for _, n := range pr.GetNodes() {
		// Only the nodes that failed themselves: skipped ones merely follow them.
		if s := n.GetState(); s != NodeFailed && s != NodeTimedOut {
			continue
		}
		ne := nodeError(n.GetError())
		if ne == nil {
			ne = &NodeError{Type: n.GetState().String(), Message: "no error was recorded"}
		}
		e.Failures = append(e.Failures, NodeFailure{Node: n.GetName(), Error: *ne})
	}
	return e
}

// Cancel asks execd to stop the run: running nodes are cancelled, pending
// ones never start. Wait follows it until it has stopped. It is not retried:
// execd may have acted on a call it did not answer.
func (r *Run) Cancel(ctx context.Context, reason string) (*execv1.Run, error) {
	resp, err := once(ctx, func(ctx context.Context) (*execv1.CancelRunResponse, error) {
		return r.c.svc.CancelRun(ctx, &execv1.CancelRunRequest{RunId: r.id, Reason: reason, Project: r.project})
	})
	if err != nil {
		return nil, err
	}
	return r.set(resp.GetRun()), nil
}

// Stop ends the run's streaming queries gracefully, each after its current
// micro-batch, and returns the run once it has ended. Not retried, as Cancel.
func (r *Run) Stop(ctx context.Context, reason string) (*execv1.Run, error) {
	resp, err := once(ctx, func(ctx context.Context) (*execv1.StopRunResponse, error) {
		return r.c.svc.StopRun(ctx, &execv1.StopRunRequest{RunId: r.id, Reason: reason, Project: r.project})
	})
	if err != nil {
		return nil, err
	}
	return r.set(resp.GetRun()), nil
}

// Repair runs again, in this run, the nodes that did not succeed and what
// depends on them; Wait waits for the repair. A request id makes it safe
// to retry.
func (r *Run) Repair(ctx context.Context) (*execv1.Run, error) {
	req := &execv1.RepairRunRequest{RunId: r.id, RequestId: rand.Text(), Project: r.project}
	resp, err := retry(ctx, r.c, func(ctx context.Context) (*execv1.RepairRunResponse, error) {
		return r.c.svc.RepairRun(ctx, req)
	})
	if err != nil {
		return nil, err
	}
	return r.set(resp.GetRun()), nil
}
