package backend

import (
	"context"
	"errors"
	"testing"

	"github.com/tauro-exec/tauro-exec/internal/engine/plan"
	"github.com/tauro-exec/tauro-exec/internal/engine/pycall"
	"github.com/tauro-exec/tauro-exec/internal/engine/retry"
	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	sparkconnect "github.com/tauro-exec/tauro-exec/internal/spark/connect"
)

// earlyRun is a run's executor with session s and node d reading the
// results of u (a dependency) and v (an input it produces), none made yet.
func earlyRun(s *sparkconnect.Session) (*runExec, *plan.Node) {
	d := &plan.Node{Name: "d", Kind: plan.KindPython, Dependencies: []string{"u"},
		InputSpecs: []plan.Input{{Key: "o.v", Producer: "v"}}}
	r := &runExec{sess: s, ran: map[string]bool{}, gen: map[string]int{}, early: map[string]*earlyCall{}}
	return r, d
}

// made records that the session has a (new) result of node.
func made(r *runExec, node string) {
	r.mu.Lock()
	r.ran[node] = true
	r.gen[node]++
	r.mu.Unlock()
}

// finish ends early call e as a worker would: with events, and the
// function's failure or the call's.
func finish(e *earlyCall, nodeErr *run.Error, err error, events ...pycall.Event) {
	for _, ev := range events {
		e.record(ev)
	}
	e.nodeErr, e.err = nodeErr, err
	close(e.done)
	e.cancel()
}

// earlyCalled is an early call of d under way, both of its upstreams'
// results made.
func earlyCalled() (*runExec, *plan.Node, *earlyCall) {
	s := &sparkconnect.Session{}
	r, d := earlyRun(s)
	made(r, "u")
	made(r, "v")
	return r, d, newEarlyLocked(r, s, d)
}

func newEarlyLocked(r *runExec, s *sparkconnect.Session, d *plan.Node) *earlyCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.newEarly(s, d)
}

// A node's function is called early once every result it reads is made,
// once while a call is under way or still good, and again when one of
// those results is made anew (an upstream's retry).
func TestNewEarly_OnceEveryResultItReadsIsMadeAndAgainWhenOneIsRemade(t *testing.T) {
	s := &sparkconnect.Session{}
	r, d := earlyRun(s)
	made(r, "u")
	if e := newEarlyLocked(r, s, d); e != nil {
		t.Fatal("an early call before v, whose output d reads, made its result")
	}
	made(r, "v")
	if e := newEarlyLocked(r, &sparkconnect.Session{}, d); e != nil {
		t.Fatal("an early call for a session that is not the run's")
	}
	e := newEarlyLocked(r, s, d)
	if e == nil {
		t.Fatal("no early call once u and v made their results")
	}
	if again := newEarlyLocked(r, s, d); again != nil {
		t.Fatal("a second early call while the first is under way")
	}
	finish(e, nil, nil)
	if again := newEarlyLocked(r, s, d); again != nil {
		t.Fatal("a second early call while the first is still good")
	}
	made(r, "u") // u's retry makes its result again
	again := newEarlyLocked(r, s, d)
	if again == nil || r.early["d"] != again {
		t.Fatal("no new early call after u made its result again")
	}
	finish(again, nil, nil)
	r.closing = true
	made(r, "v")
	if e := newEarlyLocked(r, s, d); e != nil {
		t.Fatal("an early call once the run is closing")
	}
}

// A good early call is the first attempt's function call: its events are
// emitted then, and the function's failure is the attempt's.
func TestTakeEarly_AGoodCallIsTheFirstAttemptsWithItsEventsAndFailure(t *testing.T) {
	r, d, e := earlyCalled()
	finish(e, &run.Error{Type: "ValueError", Message: "no rows"}, nil,
		pycall.Event{Log: &pycall.Log{Level: "info", Text: "called early"}},
		pycall.Event{Metric: &pycall.Metric{Name: "rows", Value: 3}})
	var got []run.Event
	called, _, err := r.takeEarly(context.Background(), d, 1, func(ev run.Event) { got = append(got, ev) })
	var f *retry.Failure
	if !called || !errors.As(err, &f) || f.Err.Type != "ValueError" {
		t.Fatalf("takeEarly = %v, %v; want the call taken with the function's ValueError", called, err)
	}
	if len(got) != 2 || got[0].Message != "called early" || got[1].MetricName != "rows" || got[1].MetricValue != 3 {
		t.Errorf("events %+v, want the call's log line and metric", got)
	}
	if r.early["d"] != nil {
		t.Error("the early call is still there after it was taken")
	}
}

// An early call is discarded, its events unseen, when it is not good for
// the attempt: a later attempt, a result it read made anew, a session
// lost, or a call that could not be made (no free worker).
func TestTakeEarly_DiscardsACallThatIsNotGoodForTheAttempt(t *testing.T) {
	cases := map[string]func(r *runExec, e *earlyCall) (attempt int){
		"second attempt": func(r *runExec, e *earlyCall) int { finish(e, nil, nil); return 2 },
		"u made anew":    func(r *runExec, e *earlyCall) int { finish(e, nil, nil); made(r, "u"); return 1 },
		"u remade while the call runs": func(r *runExec, e *earlyCall) int {
			made(r, "u")
			go func() { <-e.ctx.Done(); finish(e, nil, e.ctx.Err()) }() // stops when cancelled
			return 1
		},
		"session lost": func(r *runExec, e *earlyCall) int {
			finish(e, nil, nil)
			r.sess = &sparkconnect.Session{}
			return 1
		},
		"no free worker": func(r *runExec, e *earlyCall) int { finish(e, nil, pycall.ErrBusy); return 1 },
	}
	for name, setup := range cases {
		t.Run(name, func(t *testing.T) {
			r, d, e := earlyCalled()
			e.record(pycall.Event{Log: &pycall.Log{Level: "info", Text: "called early"}})
			attempt := setup(r, e)
			var got []run.Event
			called, _, err := r.takeEarly(context.Background(), d, attempt, func(ev run.Event) { got = append(got, ev) })
			if called || err != nil || len(got) != 0 {
				t.Errorf("takeEarly = %v, %v with events %v; want the call discarded, nothing emitted", called, err, got)
			}
		})
	}
}

// An attempt that ends while its early call is under way (its timeout,
// the run cancelled) stops the call first and ends with ctx's error.
func TestTakeEarly_AnAttemptThatEndsStopsItsCallUnderWay(t *testing.T) {
	r, d, e := earlyCalled()
	stopped := make(chan struct{})
	go func() {
		<-e.ctx.Done()
		close(stopped)
		finish(e, nil, e.ctx.Err())
	}()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	called, _, err := r.takeEarly(ctx, d, 1, func(run.Event) {})
	if !called || !errors.Is(err, context.Canceled) {
		t.Fatalf("takeEarly = %v, %v; want the attempt ended with ctx's error", called, err)
	}
	select {
	case <-stopped:
	default:
		t.Fatal("the attempt ended before its early call was stopped")
	}
}
