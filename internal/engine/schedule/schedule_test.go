package schedule

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/breaker"
	"github.com/tauro-exec/tauro-exec/internal/engine/clock"
	"github.com/tauro-exec/tauro-exec/internal/engine/retry"
	"github.com/tauro-exec/tauro-exec/internal/engine/run"
)

func TestScheduler_StartsNodeAsSoonAsItsLastDependencyCompletes(t *testing.T) {
	// b depends on fast only. A wave scheduler would hold b until slow, its
	// sibling in the first wave, finished; slow here finishes only after b ran.
	tasks := []Task{
		{Name: "fast"},
		{Name: "slow"},
		{Name: "b", Deps: []string{"fast"}},
	}
	releaseSlow := make(chan struct{})
	bRan := make(chan struct{})
	log := newLog()
	done := start(t.Context(), tasks, script{
		"slow": func(context.Context, Attempt) error { <-releaseSlow; return nil },
		"b":    func(context.Context, Attempt) error { close(bRan); return nil },
	}, log, Options{MaxWorkers: 3, Clock: clock.NewFake(epoch)})

	awaitSignal(t, bRan, "b starting while slow still runs")
	if log.has("slow", run.NodeSucceeded, 1) {
		t.Fatal("slow finished before b started")
	}
	close(releaseSlow)
	res, err := await(t, done)
	if err != nil {
		t.Fatal(err)
	}
	wantStates(t, res, map[string]run.NodeState{"fast": run.NodeSucceeded, "slow": run.NodeSucceeded, "b": run.NodeSucceeded})
	checkTransitions(t, tasks, log.all())
}

func TestScheduler_RunsExactlyMaxWorkersAtOnceOnAWideDAG(t *testing.T) {
	tests := []struct {
		width, maxWorkers, want int
	}{
		{width: 50, maxWorkers: 4, want: 4},
		{width: 50, maxWorkers: 1, want: 1},
		{width: 50, maxWorkers: 0, want: 1}, // below 1 means 1
		{width: 10, maxWorkers: 64, want: 10},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("width %d max %d", tt.width, tt.maxWorkers), func(t *testing.T) {
			var tasks []Task
			for i := range tt.width {
				tasks = append(tasks, Task{Name: fmt.Sprintf("n%02d", i)})
			}
			var inFlight, peak atomic.Int64
			started := make(chan struct{}, tt.width)
			release := make(chan struct{})
			r := RunnerFunc(func(context.Context, Attempt) error {
				now := inFlight.Add(1)
				for p := peak.Load(); now > p && !peak.CompareAndSwap(p, now); p = peak.Load() {
				}
				started <- struct{}{}
				<-release
				inFlight.Add(-1)
				return nil
			})
			log := newLog()
			done := start(t.Context(), tasks, r, log, Options{MaxWorkers: tt.maxWorkers, Clock: clock.NewFake(epoch)})

			// Let the first batch fill every slot before anything finishes,
			// so the peak must reach the limit; then finish one at a time.
			for range tt.want {
				awaitSignal(t, started, "a node starting")
			}
			for range tt.width {
				release <- struct{}{}
			}
			res, err := await(t, done)
			if err != nil {
				t.Fatal(err)
			}
			if got := peak.Load(); got != int64(tt.want) {
				t.Errorf("peak concurrency = %d, want %d", got, tt.want)
			}
			if res.State() != run.Succeeded {
				t.Errorf("run ended %s: %v", res.State(), res.States)
			}
			checkTransitions(t, tasks, log.all())
		})
	}
}

func TestScheduler_LaunchesReadyNodesInDeclarationOrder(t *testing.T) {
	tests := []struct {
		name  string
		tasks []Task
		want  []string
	}{
		{
			name:  "independent nodes run as declared",
			tasks: []Task{{Name: "z"}, {Name: "y"}, {Name: "x"}},
			want:  []string{"z", "y", "x"},
		},
		{
			name: "a node declared first runs first once ready",
			tasks: []Task{
				{Name: "c", Deps: []string{"a"}},
				{Name: "a"},
				{Name: "b"},
				{Name: "d", Deps: []string{"b", "c"}},
			},
			want: []string{"a", "c", "b", "d"},
		},
		{
			name: "diamond",
			tasks: []Task{
				{Name: "src"},
				{Name: "right", Deps: []string{"src"}},
				{Name: "left", Deps: []string{"src"}},
				{Name: "sink", Deps: []string{"left", "right"}},
			},
			want: []string{"src", "right", "left", "sink"},
		},
		{
			name: "repeated and reversed dependencies",
			tasks: []Task{
				{Name: "e", Deps: []string{"d", "d"}},
				{Name: "d", Deps: []string{"b"}},
				{Name: "c"},
				{Name: "b"},
			},
			want: []string{"c", "b", "d", "e"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range 20 {
				calls := &callLog{}
				log := newLog()
				if _, err := Run(t.Context(), tt.tasks, calls, log, Options{MaxWorkers: 1, Clock: clock.NewFake(epoch)}); err != nil {
					t.Fatal(err)
				}
				if got := calls.nodes(); !slices.Equal(got, tt.want) {
					t.Fatalf("launch order = %v, want %v", got, tt.want)
				}
				checkTransitions(t, tt.tasks, log.all())
			}
		})
	}
}

func TestScheduler_RetriesWaitExactlyThePolicysBackoff(t *testing.T) {
	policy := retry.Policy{Initial: time.Second, Coefficient: 2, Max: 3 * time.Second, MaxAttempts: 4, Jitter: 0.5}
	// With Rand fixed at 0.75 jitter adds a quarter: 1s·1.25, 2s·1.25, then
	// 4s capped at 3s, jitter included.
	wantDelays := []time.Duration{1250 * time.Millisecond, 2500 * time.Millisecond, 3 * time.Second}
	tasks := []Task{{Name: "flaky", Retry: policy}}
	fake := clock.NewFake(epoch)
	var attempts atomic.Int64
	log := newLog()
	done := start(t.Context(), tasks, script{
		"flaky": func(_ context.Context, a Attempt) error {
			attempts.Add(1)
			if a.Attempt < 4 {
				return errors.New("connection reset")
			}
			return nil
		},
	}, log, Options{Clock: fake, Rand: func() float64 { return 0.75 }})

	for i, want := range wantDelays {
		failed := i + 1
		retrying := log.waitFor(t, "flaky", run.NodeRetrying, failed)
		if retrying.RetryIn != want {
			t.Fatalf("attempt %d: RetryIn = %v, want %v", failed, retrying.RetryIn, want)
		}
		if retrying.Err == nil || !retrying.Err.Retryable || retrying.Err.Message != "connection reset" {
			t.Fatalf("attempt %d: Err = %+v", failed, retrying.Err)
		}
		blockUntilTimers(t, fake, 1)
		fake.Advance(want - time.Nanosecond)
		if fake.Pending() != 1 || attempts.Load() != int64(failed) {
			t.Fatalf("attempt %d: the backoff ended before %v had passed", failed, want)
		}
		fake.Advance(time.Nanosecond)
		next := log.waitFor(t, "flaky", run.NodeRunning, failed+1)
		if gap := next.At.Sub(retrying.At); gap != want {
			t.Fatalf("attempt %d started %v after RETRYING, want %v", failed+1, gap, want)
		}
	}
	res, err := await(t, done)
	if err != nil {
		t.Fatal(err)
	}
	if res.States["flaky"] != run.NodeSucceeded || res.Attempts["flaky"] != 4 {
		t.Fatalf("flaky ended %s after %d attempts, want SUCCEEDED after 4", res.States["flaky"], res.Attempts["flaky"])
	}
	checkTransitions(t, tasks, log.all())
}

func TestScheduler_EndsFailedWhenTransientErrorsOutlastTheAttempts(t *testing.T) {
	tasks := []Task{{Name: "down", Retry: retry.Policy{MaxAttempts: 3}}, {Name: "after", Deps: []string{"down"}}}
	log := newLog()
	res, err := Run(t.Context(), tasks, script{
		"down": func(context.Context, Attempt) error { return errors.New("cluster unreachable") },
	}, log, Options{Clock: clock.NewFake(epoch)})
	if err != nil {
		t.Fatal(err)
	}
	wantStates(t, res, map[string]run.NodeState{"down": run.NodeFailed, "after": run.NodeSkipped})
	if res.Attempts["down"] != 3 {
		t.Errorf("down made %d attempts, want 3", res.Attempts["down"])
	}
	checkTransitions(t, tasks, log.all())
}

func TestScheduler_PermanentErrorFailsAtOnce(t *testing.T) {
	tasks := []Task{{Name: "bad_sql", Retry: retry.Policy{MaxAttempts: 5}}}
	log := newLog()
	res, err := Run(t.Context(), tasks, script{
		"bad_sql": func(context.Context, Attempt) error {
			return retry.Permanent(&retry.Failure{Err: run.Error{Type: "AnalysisException", Message: "table x not found"}})
		},
	}, log, Options{Clock: clock.NewFake(epoch)})
	if err != nil {
		t.Fatal(err)
	}
	if res.States["bad_sql"] != run.NodeFailed || res.Attempts["bad_sql"] != 1 {
		t.Fatalf("bad_sql ended %s after %d attempts, want FAILED after 1", res.States["bad_sql"], res.Attempts["bad_sql"])
	}
	got := log.of("bad_sql")[1].Err
	want := run.Error{Type: "AnalysisException", Message: "table x not found"}
	if got == nil || *got != want {
		t.Errorf("Err = %+v, want %+v", got, want)
	}
}

func TestScheduler_TimeoutCancelsTheAttemptAndCountsAsTimedOut(t *testing.T) {
	const timeout = 5 * time.Second
	policy := retry.Policy{Initial: time.Second, MaxAttempts: 2}
	tests := []struct {
		name         string
		secondTimes  bool // whether attempt 2 also runs past its timeout
		wantState    run.NodeState
		wantAttempts int
	}{
		{"retried after a timeout and succeeds", false, run.NodeSucceeded, 2},
		{"timing out on the last attempt ends TIMED_OUT", true, run.NodeTimedOut, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tasks := []Task{{Name: "slow", Timeout: timeout, Retry: policy}}
			fake := clock.NewFake(epoch)
			causes := make(chan error, 2)
			log := newLog()
			done := start(t.Context(), tasks, script{
				"slow": func(ctx context.Context, a Attempt) error {
					if a.Attempt == 2 && !tt.secondTimes {
						return nil
					}
					<-ctx.Done()
					causes <- context.Cause(ctx)
					return ctx.Err()
				},
			}, log, Options{Clock: fake})

			log.waitFor(t, "slow", run.NodeRunning, 1)
			blockUntilTimers(t, fake, 1)
			fake.Advance(timeout - time.Nanosecond)
			if fake.Pending() != 1 || log.has("slow", run.NodeRetrying, 1) {
				t.Fatal("attempt 1 timed out before its timeout")
			}
			fake.Advance(time.Nanosecond)
			if cause := awaitSignal(t, causes, "attempt 1 being cancelled"); !errors.Is(cause, context.DeadlineExceeded) {
				t.Errorf("context.Cause = %v, want a DeadlineExceeded", cause)
			}
			first := log.waitFor(t, "slow", run.NodeRetrying, 1)
			if first.Err == nil || first.Err.Type != "timed_out" || !first.Err.Retryable || first.Duration != timeout {
				t.Errorf("RETRYING = %+v (Err %+v), want a retryable timed_out after %v", first, first.Err, timeout)
			}

			blockUntilTimers(t, fake, 1)
			fake.Advance(policy.Initial)
			log.waitFor(t, "slow", run.NodeRunning, 2)
			if tt.secondTimes {
				blockUntilTimers(t, fake, 1)
				fake.Advance(timeout)
			}
			res, err := await(t, done)
			if err != nil {
				t.Fatal(err)
			}
			if res.States["slow"] != tt.wantState || res.Attempts["slow"] != tt.wantAttempts {
				t.Errorf("slow ended %s after %d attempts, want %s after %d",
					res.States["slow"], res.Attempts["slow"], tt.wantState, tt.wantAttempts)
			}
			if n := fake.Pending(); n != 0 {
				t.Errorf("%d timers left armed after Run returned", n)
			}
			checkTransitions(t, tasks, log.all())
		})
	}
}

func TestScheduler_FailureSkipsDownstreamWhileIndependentBranchesContinue(t *testing.T) {
	tasks := []Task{
		{Name: "extract"},
		{Name: "clean", Deps: []string{"extract"}},
		{Name: "report", Deps: []string{"clean", "lookup"}},
		{Name: "lookup"},
		{Name: "audit", Deps: []string{"lookup"}},
	}
	log := newLog()
	calls := &callLog{next: script{
		"extract": func(context.Context, Attempt) error { return retry.Permanent(errors.New("ZeroDivisionError")) },
	}}
	res, err := Run(t.Context(), tasks, calls, log, Options{MaxWorkers: 1, Clock: clock.NewFake(epoch)})
	if err != nil {
		t.Fatal(err)
	}
	wantStates(t, res, map[string]run.NodeState{
		"extract": run.NodeFailed,
		"clean":   run.NodeSkipped,
		"report":  run.NodeSkipped,
		"lookup":  run.NodeSucceeded,
		"audit":   run.NodeSucceeded,
	})
	if got, want := calls.nodes(), []string{"extract", "lookup", "audit"}; !slices.Equal(got, want) {
		t.Errorf("ran %v, want %v", got, want)
	}
	for _, name := range []string{"clean", "report"} {
		tr := log.of(name)
		if len(tr) != 1 || tr[0].Err == nil || !strings.Contains(tr[0].Err.Message, `"extract"`) {
			t.Errorf("%s: transitions %+v, want one SKIPPED naming extract", name, tr)
		}
	}
	if res.Reason != "" || res.State() != run.Failed {
		t.Errorf("run: state %s, reason %q; want FAILED without stopping early", res.State(), res.Reason)
	}
	checkTransitions(t, tasks, log.all())
}

func TestScheduler_FailFastCancelsRunningAndPendingNodes(t *testing.T) {
	tasks := []Task{
		{Name: "long"},
		{Name: "broken"},
		{Name: "after_broken", Deps: []string{"broken"}},
		{Name: "unrelated"},
	}
	log := newLog()
	calls := &callLog{next: script{
		"long":   untilCancelled,
		"broken": func(context.Context, Attempt) error { return retry.Permanent(errors.New("KeyError")) },
	}}
	res, err := await(t, start(t.Context(), tasks, calls, log, Options{MaxWorkers: 2, FailFast: true, Clock: clock.NewFake(epoch)}))
	if err != nil {
		t.Fatal(err)
	}
	wantStates(t, res, map[string]run.NodeState{
		"long":         run.NodeCancelled,
		"broken":       run.NodeFailed,
		"after_broken": run.NodeSkipped,
		"unrelated":    run.NodeCancelled,
	})
	if slices.Contains(calls.nodes(), "unrelated") {
		t.Error("unrelated started after the run failed fast")
	}
	if !strings.Contains(res.Reason, "fail_fast") || !strings.Contains(res.Reason, `"broken"`) {
		t.Errorf("Reason = %q, want fail_fast naming broken", res.Reason)
	}
	checkTransitions(t, tasks, log.all())
}

func TestScheduler_Breaker(t *testing.T) {
	fail := func(context.Context, Attempt) error { return retry.Permanent(errors.New("boom")) }
	tests := []struct {
		name       string
		tasks      []Task
		runner     script
		threshold  int
		maxWorkers int // 1 where the order of outcomes matters
		want       map[string]run.NodeState
		wantReason string
	}{
		{
			name: "trips after consecutive failures and cancels the rest",
			tasks: []Task{
				{Name: "long"}, {Name: "a"}, {Name: "b"}, {Name: "c"}, {Name: "d"},
				{Name: "after_long", Deps: []string{"long"}},
			},
			runner:     script{"long": untilCancelled, "a": fail, "b": fail, "c": fail},
			threshold:  3,
			maxWorkers: 2, // long holds one worker until the breaker cancels it
			want: map[string]run.NodeState{
				"long": run.NodeCancelled, "a": run.NodeFailed, "b": run.NodeFailed, "c": run.NodeFailed,
				"d": run.NodeCancelled, "after_long": run.NodeCancelled,
			},
			wantReason: "circuit breaker open after 3 consecutive node failures: a, b, c",
		},
		{
			name:       "a success between failures keeps it closed",
			tasks:      []Task{{Name: "a"}, {Name: "ok"}, {Name: "b"}, {Name: "c"}, {Name: "d"}},
			runner:     script{"a": fail, "b": fail, "c": fail},
			threshold:  3,
			maxWorkers: 1,
			want: map[string]run.NodeState{
				"a": run.NodeFailed, "ok": run.NodeSucceeded, "b": run.NodeFailed, "c": run.NodeFailed, "d": run.NodeSucceeded,
			},
		},
		{
			name:       "a timeout counts as a failure",
			tasks:      []Task{{Name: "a"}, {Name: "b"}, {Name: "c"}},
			runner:     script{"a": fail, "b": func(context.Context, Attempt) error { return context.DeadlineExceeded }},
			threshold:  2,
			maxWorkers: 1,
			want:       map[string]run.NodeState{"a": run.NodeFailed, "b": run.NodeTimedOut, "c": run.NodeCancelled},
			wantReason: "circuit breaker open after 2 consecutive node failures: a, b",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log := newLog()
			opt := Options{MaxWorkers: tt.maxWorkers, Breaker: breaker.Policy{Threshold: tt.threshold}, Clock: clock.NewFake(epoch)}
			res, err := await(t, start(t.Context(), tt.tasks, tt.runner, log, opt))
			if err != nil {
				t.Fatal(err)
			}
			wantStates(t, res, tt.want)
			if res.Tripped != (tt.wantReason != "") || res.Reason != tt.wantReason {
				t.Errorf("Tripped = %v, Reason = %q; want reason %q", res.Tripped, res.Reason, tt.wantReason)
			}
			for _, tr := range log.all() {
				if tr.State == run.NodeCancelled && (tr.Err == nil || tr.Err.Message != tt.wantReason) {
					t.Errorf("%s CANCELLED with Err %+v, want the breaker's reason", tr.Node, tr.Err)
				}
			}
			checkTransitions(t, tt.tasks, log.all())
		})
	}
}

func TestScheduler_CancelStopsRunningNodesPromptlyAndCancelsTheRest(t *testing.T) {
	tasks := []Task{
		{Name: "a"},
		{Name: "b"},
		{Name: "flaky", Retry: retry.Policy{Initial: time.Hour, MaxAttempts: 3}},
		{Name: "after_a", Deps: []string{"a"}},
	}
	ctx, cancel := context.WithCancelCause(t.Context())
	defer cancel(nil)
	var returned atomic.Int64
	block := func(ctx context.Context, a Attempt) error {
		defer returned.Add(1)
		return untilCancelled(ctx, a)
	}
	log := newLog()
	done := start(ctx, tasks, script{
		"a":     block,
		"b":     block,
		"flaky": func(context.Context, Attempt) error { return errors.New("busy") },
	}, log, Options{MaxWorkers: 3, Clock: clock.NewFake(epoch)})

	log.waitFor(t, "a", run.NodeRunning, 1)
	log.waitFor(t, "b", run.NodeRunning, 1)
	log.waitFor(t, "flaky", run.NodeRetrying, 1)
	cancel(errors.New("cancelled by alice"))

	// The fake clock never moves, so only cancellation can end this run.
	res, err := await(t, done)
	if err != nil {
		t.Fatal(err)
	}
	if returned.Load() != 2 {
		t.Errorf("%d running attempts returned before Run did, want 2", returned.Load())
	}
	wantStates(t, res, map[string]run.NodeState{
		"a": run.NodeCancelled, "b": run.NodeCancelled, "flaky": run.NodeCancelled, "after_a": run.NodeCancelled,
	})
	if !res.Cancelled || res.State() != run.Cancelled || res.Reason != "run cancelled: cancelled by alice" {
		t.Errorf("Cancelled = %v, State() = %s, Reason = %q", res.Cancelled, res.State(), res.Reason)
	}
	if tr := log.of("flaky"); tr[len(tr)-1].Attempt != 1 {
		t.Errorf("flaky was cancelled during its backoff, but recorded %+v", tr[len(tr)-1])
	}
	checkTransitions(t, tasks, log.all())
}

func TestScheduler_AlreadyCancelledContextRunsNothing(t *testing.T) {
	tasks := []Task{{Name: "a"}, {Name: "b", Deps: []string{"a"}}}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	calls := &callLog{}
	log := newLog()
	res, err := Run(ctx, tasks, calls, log, Options{Clock: clock.NewFake(epoch)})
	if err != nil {
		t.Fatal(err)
	}
	if len(calls.nodes()) != 0 {
		t.Errorf("ran %v", calls.nodes())
	}
	wantStates(t, res, map[string]run.NodeState{"a": run.NodeCancelled, "b": run.NodeCancelled})
	if got := len(log.all()); got != 2 {
		t.Errorf("recorded %d transitions, want 2 (a cancelled context must not stop the recording)", got)
	}
	checkTransitions(t, tasks, log.all())
}

func TestScheduler_RepairRunsOnlyTheNodesNotDone(t *testing.T) {
	tasks := []Task{
		{Name: "load", Done: true},
		{Name: "clean", Deps: []string{"load"}, Done: true},
		{Name: "train", Deps: []string{"clean"}},
		{Name: "lookup", Done: true},
		{Name: "score", Deps: []string{"train", "lookup"}},
		{Name: "export", Deps: []string{"load"}},
	}
	calls := &callLog{}
	log := newLog()
	res, err := Run(t.Context(), tasks, calls, log, Options{MaxWorkers: 1, Clock: clock.NewFake(epoch)})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := calls.nodes(), []string{"train", "score", "export"}; !slices.Equal(got, want) {
		t.Errorf("ran %v, want %v", got, want)
	}
	for _, name := range []string{"load", "clean", "lookup"} {
		if res.States[name] != run.NodeSucceeded || res.Attempts[name] != 0 {
			t.Errorf("Done task %s: %s after %d attempts, want SUCCEEDED after 0", name, res.States[name], res.Attempts[name])
		}
	}
	if res.State() != run.Succeeded {
		t.Errorf("run ended %s", res.State())
	}
	checkTransitions(t, tasks, log.all())
}

func TestScheduler_RecoversAPanickingRunnerAsAPermanentFailure(t *testing.T) {
	tasks := []Task{
		{Name: "buggy", Retry: retry.Policy{MaxAttempts: 3}},
		{Name: "after", Deps: []string{"buggy"}},
		{Name: "other"},
	}
	log := newLog()
	res, err := Run(t.Context(), tasks, script{
		"buggy": func(context.Context, Attempt) error { panic("nil map write") },
	}, log, Options{Clock: clock.NewFake(epoch)})
	if err != nil {
		t.Fatal(err)
	}
	wantStates(t, res, map[string]run.NodeState{"buggy": run.NodeFailed, "after": run.NodeSkipped, "other": run.NodeSucceeded})
	if res.Attempts["buggy"] != 1 {
		t.Errorf("buggy made %d attempts, want 1: a panic is not retried", res.Attempts["buggy"])
	}
	e := log.of("buggy")[1].Err
	if e == nil || e.Type != "panic" || e.Retryable || !strings.Contains(e.Message, "nil map write") ||
		!strings.Contains(e.Traceback, "TestScheduler_RecoversAPanickingRunnerAsAPermanentFailure") {
		t.Errorf("Err = %+v, want a permanent panic with the stack", e)
	}
	checkTransitions(t, tasks, log.all())
}

func TestScheduler_RunnerCallingGoexitFailsItsNode(t *testing.T) {
	tasks := []Task{{Name: "quits", Retry: retry.Policy{MaxAttempts: 3}}}
	res, err := await(t, start(t.Context(), tasks, script{
		"quits": func(context.Context, Attempt) error { runtime.Goexit(); return nil },
	}, nil, Options{Clock: clock.NewFake(epoch)}))
	if err != nil {
		t.Fatal(err)
	}
	if res.States["quits"] != run.NodeFailed || res.Attempts["quits"] != 1 {
		t.Errorf("quits ended %s after %d attempts, want FAILED after 1", res.States["quits"], res.Attempts["quits"])
	}
}

func TestScheduler_RecorderFailureStopsTheRun(t *testing.T) {
	tasks := []Task{
		{Name: "a"},
		{Name: "b", Deps: []string{"a"}},
		{Name: "c"},
	}
	storeDown := errors.New("disk full")
	var recorded []Transition
	rec := RecorderFunc(func(_ context.Context, t Transition) error {
		recorded = append(recorded, t)
		if t.Node == "b" && t.State == run.NodeRunning {
			return storeDown
		}
		return nil
	})
	calls := &callLog{}
	res, err := Run(t.Context(), tasks, calls, rec, Options{MaxWorkers: 1, Clock: clock.NewFake(epoch)})
	if !errors.Is(err, storeDown) {
		t.Fatalf("Run error = %v, want the recorder's", err)
	}
	if got, want := calls.nodes(), []string{"a"}; !slices.Equal(got, want) {
		t.Errorf("ran %v, want %v: nothing runs once its start cannot be recorded", got, want)
	}
	if n := len(recorded); n != 3 {
		t.Errorf("Record called %d times, want 3 (a RUNNING, a SUCCEEDED, the failed b RUNNING)", n)
	}
	wantStates(t, res, map[string]run.NodeState{"a": run.NodeSucceeded, "b": run.NodeCancelled, "c": run.NodeCancelled})
	if !strings.Contains(res.Reason, "disk full") {
		t.Errorf("Reason = %q, want the recorder's error", res.Reason)
	}
}

func TestScheduler_RecordsEachTransitionBeforeActingOnIt(t *testing.T) {
	// The runner checks that its own RUNNING was recorded before it was
	// called; checkTransitions checks that every dependent's start came after
	// its dependencies' SUCCEEDED.
	tasks := []Task{{Name: "a"}, {Name: "b", Deps: []string{"a"}}, {Name: "c", Deps: []string{"a", "b"}}}
	log := newLog()
	var unrecorded atomic.Int64
	r := RunnerFunc(func(_ context.Context, a Attempt) error {
		if !log.has(a.Node, run.NodeRunning, a.Attempt) {
			unrecorded.Add(1)
		}
		return nil
	})
	if _, err := Run(t.Context(), tasks, r, log, Options{MaxWorkers: 4, Clock: clock.NewFake(epoch)}); err != nil {
		t.Fatal(err)
	}
	if unrecorded.Load() != 0 {
		t.Errorf("%d attempts ran before their RUNNING was recorded", unrecorded.Load())
	}
	checkTransitions(t, tasks, log.all())
}

func TestScheduler_RejectsTasksThatAreNotADAG(t *testing.T) {
	tests := []struct {
		name  string
		tasks []Task
		want  string
	}{
		{"unknown dependency", []Task{{Name: "a", Deps: []string{"ghost"}}}, `"a" depends on unknown task "ghost"`},
		{"repeated name", []Task{{Name: "a"}, {Name: "a"}}, `"a" is declared twice`},
		{"empty name", []Task{{Name: "a"}, {}}, "task 1 has no name"},
		{"self dependency", []Task{{Name: "a", Deps: []string{"a"}}}, "cycle among tasks a"},
		{"cycle and what waits on it", []Task{
			{Name: "ok"},
			{Name: "x", Deps: []string{"y"}},
			{Name: "y", Deps: []string{"x", "ok"}},
			{Name: "z", Deps: []string{"y"}},
		}, "cycle among tasks x, y, z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := &callLog{}
			log := newLog()
			_, err := Run(t.Context(), tt.tasks, calls, log, Options{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want one containing %q", err, tt.want)
			}
			if len(calls.nodes()) > 0 || len(log.all()) > 0 {
				t.Errorf("something ran or was recorded before the tasks were rejected")
			}
		})
	}
}

func TestScheduler_EmptyRunSucceedsAtOnce(t *testing.T) {
	res, err := Run(t.Context(), nil, &callLog{}, nil, Options{})
	if err != nil || res.State() != run.Succeeded {
		t.Fatalf("Run(nil tasks) = %+v, %v", res, err)
	}
}

// TestScheduler_RandomDAGsRecordValidHistories runs many random DAGs whose
// nodes succeed, fail for a while or fail for good, under random options,
// and checks every history against the rules in checkTransitions.
func TestScheduler_RandomDAGsRecordValidHistories(t *testing.T) {
	for seed := range uint64(60) {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			rnd := newSplitMix(seed)
			n := 5 + rnd.intn(40)
			tasks := make([]Task, n)
			for i := range tasks {
				tasks[i] = Task{
					Name:  fmt.Sprintf("n%d", i),
					Retry: retry.Policy{MaxAttempts: 1 + rnd.intn(3)},
					Done:  rnd.intn(10) == 0,
				}
				for j := range i {
					if rnd.intn(6) == 0 {
						tasks[i].Deps = append(tasks[i].Deps, tasks[j].Name)
					}
				}
			}
			// Declare in a shuffled order so ties are not also topological.
			for i := len(tasks) - 1; i > 0; i-- {
				j := rnd.intn(i + 1)
				tasks[i], tasks[j] = tasks[j], tasks[i]
			}
			fate := map[string]int{} // 0 ok, 1 fails once, 2 permanent
			for _, task := range tasks {
				fate[task.Name] = rnd.intn(5) % 3
			}
			opt := Options{
				MaxWorkers: 1 + rnd.intn(8),
				FailFast:   rnd.intn(5) == 0,
				Breaker:    breaker.Policy{Threshold: rnd.intn(4)},
				Clock:      clock.NewFake(epoch),
			}
			log := newLog()
			var mu sync.Mutex
			ran := map[string]int{}
			r := RunnerFunc(func(_ context.Context, a Attempt) error {
				mu.Lock()
				ran[a.Node]++
				mu.Unlock()
				switch {
				case !log.has(a.Node, run.NodeRunning, a.Attempt):
					return retry.Permanent(fmt.Errorf("%s attempt %d ran before it was recorded", a.Node, a.Attempt))
				case fate[a.Node] == 1 && a.Attempt == 1:
					return errors.New("transient")
				case fate[a.Node] == 2:
					return retry.Permanent(errors.New("permanent"))
				}
				return nil
			})
			res, err := await(t, start(t.Context(), tasks, r, log, opt))
			if err != nil {
				t.Fatal(err)
			}
			ts := log.all()
			checkTransitions(t, tasks, ts)
			for _, tr := range ts {
				if tr.Err != nil && strings.Contains(tr.Err.Message, "before it was recorded") {
					t.Fatal(tr.Err.Message)
				}
			}
			for _, task := range tasks {
				if ran[task.Name] != res.Attempts[task.Name] {
					t.Errorf("%s: runner called %d times, Attempts says %d", task.Name, ran[task.Name], res.Attempts[task.Name])
				}
				if task.Done {
					continue
				}
				recorded := log.of(task.Name)
				if last := recorded[len(recorded)-1].State; res.States[task.Name] != last {
					t.Errorf("%s: result says %s, last recorded %s", task.Name, res.States[task.Name], last)
				}
			}
		})
	}
}

// splitMix is a tiny seeded generator, so each seed is one fixed DAG.
type splitMix struct{ s uint64 }

func newSplitMix(seed uint64) *splitMix { return &splitMix{s: seed} }

func (r *splitMix) intn(n int) int {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return int((z ^ (z >> 31)) % uint64(n))
}

func TestScheduler_EachAttemptHasItsOwnTimeout(t *testing.T) {
	tasks := []Task{
		{Name: "long", Timeout: 10 * time.Second},
		{Name: "short", Timeout: 2 * time.Second},
		{Name: "quick", Timeout: time.Second},
	}
	fake := clock.NewFake(epoch)
	log := newLog()
	done := start(t.Context(), tasks, script{"long": untilCancelled, "short": untilCancelled},
		log, Options{MaxWorkers: 3, Clock: fake})

	log.waitFor(t, "quick", run.NodeSucceeded, 1)
	log.waitFor(t, "long", run.NodeRunning, 1)
	log.waitFor(t, "short", run.NodeRunning, 1)
	blockUntilTimers(t, fake, 1)
	fake.Advance(2 * time.Second)
	log.waitFor(t, "short", run.NodeTimedOut, 1)
	if len(log.of("long")) != 1 {
		t.Fatalf("long moved on when short timed out: %+v", log.of("long"))
	}
	blockUntilTimers(t, fake, 1)
	fake.Advance(8*time.Second - time.Nanosecond)
	if fake.Pending() != 1 {
		t.Fatal("long timed out before its own timeout")
	}
	fake.Advance(time.Nanosecond)
	res, err := await(t, done)
	if err != nil {
		t.Fatal(err)
	}
	wantStates(t, res, map[string]run.NodeState{"long": run.NodeTimedOut, "short": run.NodeTimedOut, "quick": run.NodeSucceeded})
	if d := log.of("long")[1].Duration; d != 10*time.Second {
		t.Errorf("long's attempt lasted %v, want 10s", d)
	}
	checkTransitions(t, tasks, log.all())
}

func TestScheduler_RequiresARunner(t *testing.T) {
	if _, err := Run(t.Context(), []Task{{Name: "a"}}, nil, nil, Options{}); err == nil {
		t.Fatal("Run with a nil Runner returned no error")
	}
}

func TestScheduler_RepairContinuesAttemptNumbersButRetriesAfresh(t *testing.T) {
	var mu sync.Mutex
	var got []Attempt
	r := RunnerFunc(func(ctx context.Context, a Attempt) error {
		mu.Lock()
		got = append(got, a)
		mu.Unlock()
		if a.Attempt < 4 {
			return errors.New("transient")
		}
		return nil
	})
	tasks := []Task{{Name: "n", PriorAttempts: 2, Retry: retry.Policy{MaxAttempts: 2}}}
	res, err := Run(context.Background(), tasks, r, nil, Options{MaxWorkers: 1, Clock: clock.NewFake(time.Unix(0, 0))})
	if err != nil {
		t.Fatal(err)
	}
	if res.States["n"] != run.NodeSucceeded {
		t.Fatalf("state %v, want SUCCEEDED", res.States["n"])
	}
	want := []Attempt{{"n", 3}, {"n", 4}}
	if !slices.Equal(got, want) {
		t.Errorf("attempts %v, want %v", got, want)
	}
}
