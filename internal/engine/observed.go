package engine

import (
	"context"
	"sync"

	"github.com/tauro-exec/tauro-exec/internal/engine/observe"
	"github.com/tauro-exec/tauro-exec/internal/engine/plan"
	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	"github.com/tauro-exec/tauro-exec/internal/engine/schedule"
)

// attempts pairs each node attempt's start, which the runner sees, with its
// end, which the recorder sees once the scheduler has classified it
// (RETRYING, TIMED_OUT...), and tells the Observer both.
type attempts struct {
	obs   observe.Observer
	run   observe.Run
	nodes map[string]*plan.Node

	mu   sync.Mutex
	open map[schedule.Attempt]context.Context
}

func newAttempts(obs observe.Observer, r observe.Run, nodes map[string]*plan.Node) *attempts {
	return &attempts{obs: obs, run: r, nodes: nodes, open: map[schedule.Attempt]context.Context{}}
}

func (a *attempts) describe(node string, attempt int) observe.Attempt {
	oa := observe.Attempt{Run: a.run, Node: node, Attempt: attempt}
	if n := a.nodes[node]; n != nil {
		oa.Kind = n.Kind
	}
	return oa
}

// start is called by the runner as an attempt begins; the context returned
// is the attempt's.
func (a *attempts) start(ctx context.Context, at schedule.Attempt) context.Context {
	ctx = a.obs.AttemptStarted(ctx, a.describe(at.Node, at.Attempt))
	a.mu.Lock()
	a.open[at] = ctx
	a.mu.Unlock()
	return ctx
}

// end is called with every recorded transition; one that follows an
// attempt's start ends that attempt. (The scheduler calls the runner only
// after recording RUNNING, and records the attempt's end only after the
// runner returned, so start always comes first.)
func (a *attempts) end(t schedule.Transition) {
	if t.State == run.NodeRunning || t.Attempt == 0 {
		return
	}
	a.finish(schedule.Attempt{Node: t.Node, Attempt: t.Attempt}, observe.AttemptEnd{State: t.State, Duration: t.Duration, Error: t.Err})
}

func (a *attempts) finish(at schedule.Attempt, end observe.AttemptEnd) {
	a.mu.Lock()
	ctx, ok := a.open[at]
	delete(a.open, at)
	a.mu.Unlock()
	if ok {
		a.obs.AttemptEnded(ctx, a.describe(at.Node, at.Attempt), end)
	}
}

// endRest ends the attempts whose end was never recorded (the recorder
// failed), with the states the scheduler reached.
func (a *attempts) endRest(res schedule.Result) {
	a.mu.Lock()
	var rest []schedule.Attempt
	for at := range a.open {
		rest = append(rest, at)
	}
	a.mu.Unlock()
	for _, at := range rest {
		a.finish(at, observe.AttemptEnd{State: res.States[at.Node],
			Error: &run.Error{Type: "unrecorded", Message: "the attempt's end could not be recorded"}})
	}
}
