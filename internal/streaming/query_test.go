package streaming

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine"
	"github.com/tauro-exec/tauro-exec/internal/engine/retry"
	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	sparkconnect "github.com/tauro-exec/tauro-exec/internal/spark/connect"
)

// fakeQueries plays a query's side of the protocol from a script: the
// progress reports it has, whether it is active or mid-batch, and how it
// failed. A unit test of the lifecycle only; the integration tests in
// internal/spark/backend run real queries.
type fakeQueries struct {
	noBus
	mu          sync.Mutex
	reports     []string
	active      bool
	trigger     bool // a micro-batch is under way
	failure     *sparkconnect.QueryError
	stops       int
	interrupted int // stops that came while a micro-batch was under way
	reported    int // reports there were at the first stop
	started     sparkconnect.StreamStart
	statusErr   error
}

func (f *fakeQueries) StartStream(_ context.Context, q sparkconnect.StreamStart) (sparkconnect.QueryID, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.started, f.active = q, true
	return sparkconnect.QueryID{ID: "q1", RunID: "r1"}, nil
}

func (f *fakeQueries) QueryStatus(context.Context, sparkconnect.QueryID) (sparkconnect.QueryStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return sparkconnect.QueryStatus{Active: f.active, TriggerActive: f.trigger}, f.statusErr
}

func (f *fakeQueries) QueryProgress(context.Context, sparkconnect.QueryID) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.reports...), nil
}

func (f *fakeQueries) QueryLastProgress(context.Context, sparkconnect.QueryID) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.reports) == 0 {
		return "", nil
	}
	return f.reports[len(f.reports)-1], nil
}

func (f *fakeQueries) QueryException(context.Context, sparkconnect.QueryID) (*sparkconnect.QueryError, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failure, nil
}

func (f *fakeQueries) StopQuery(context.Context, sparkconnect.QueryID) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.trigger {
		f.interrupted++
	}
	if f.stops == 0 {
		f.reported = len(f.reports)
	}
	f.stops++
	f.active = false
	return nil
}

func (f *fakeQueries) Owner() (string, string) { return "session", "tauro-exec" }

func (f *fakeQueries) batch(id int64, ms int, start string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reports = append(f.reports, fmt.Sprintf(`{"batchId": %d, "timestamp": "2025-01-01T00:00:%02d.000Z",
		"durationMs": {"triggerExecution": %d, "addBatch": 1}, "eventTime": {"watermark": "2025-01-01T00:00:00.000Z"},
		"stateOperators": [{"numRowsTotal": 3}, {"numRowsTotal": 4}],
		"sources": [{"description": "FileStreamSource[in]", "numInputRows": 5, "startOffset": %s, "inputRowsPerSecond": NaN, "processedRowsPerSecond": 6.0},
		{"description": "rate", "numInputRows": 2, "startOffset": null, "processedRowsPerSecond": 4.0}]}`,
		id, len(f.reports), ms, start))
}

// noBus is a session whose server has no listener bus: the query is
// polled.
type noBus struct{}

func (noBus) ListenQueries(context.Context, func(), func(sparkconnect.QueryEvent)) error {
	return sparkconnect.ErrNoListenerBus
}

type recorder struct {
	mu  sync.Mutex
	evs []run.Event
}

func (r *recorder) emit(ev run.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.evs = append(r.evs, ev)
}

func (r *recorder) messages() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, ev := range r.evs {
		if ev.Kind == run.NodeMessage {
			out = append(out, ev.Level+" "+ev.Message)
		}
	}
	return out
}

// lags lists the lag events as "STATE reason (batch)".
func (r *recorder) lags() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, ev := range r.evs {
		if ev.Kind == run.NodeLag {
			batch := "none"
			if ev.Lag.BatchID != nil {
				batch = fmt.Sprint(*ev.Lag.BatchID)
			}
			out = append(out, fmt.Sprintf("%s %s (%s)", ev.Lag.State, ev.Lag.Reason, batch))
		}
	}
	return out
}

func (r *recorder) progress() []run.Progress {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []run.Progress
	for _, ev := range r.evs {
		if ev.Kind == run.NodeProgress {
			out = append(out, *ev.Progress)
		}
	}
	return out
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("never: %s", what)
}

func TestRun_ProgressBecomesEventsAndAFiniteQueryEndsTheNode(t *testing.T) {
	f, rec := &fakeQueries{}, &recorder{}
	f.batch(0, 1200, `{"logOffset": 4}`)
	done := make(chan error)
	go func() {
		done <- Run(context.Background(), f, sparkconnect.StreamStart{QueryName: "q"}, Options{Emit: rec.emit, Poll: 10 * time.Millisecond})
	}()
	eventually(t, "the first batch's progress", func() bool { return len(rec.progress()) == 1 })
	f.mu.Lock()
	f.active = false // available_now: everything processed
	f.mu.Unlock()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v; want nil for a query that ended by itself", err)
	}
	p := rec.progress()[0]
	if p.BatchID != 0 || p.InputRows != 7 || p.InputRate != 0 || p.ProcessRate != 10 || p.BatchDuration != 1200*time.Millisecond ||
		p.StateRows != 7 || p.Watermark != "2025-01-01T00:00:00.000Z" {
		t.Errorf("progress = %+v", p)
	}
	if msgs := rec.messages(); len(msgs) != 1 || !strings.Contains(msgs[0], `FileStreamSource[in] offset {"logOffset": 4}`) {
		t.Errorf("messages = %q; want where the query resumed", msgs)
	}
	if rec.evs[0].Kind != run.NodeStateChanged || rec.evs[0].NodeState != run.NodeStreaming {
		t.Errorf("first event %+v; want the node STREAMING", rec.evs[0])
	}
}

func TestRun_StopWaitsForTheBatchUnderWayThenStops(t *testing.T) {
	f, rec := &fakeQueries{trigger: true}, &recorder{}
	stop := make(chan struct{})
	done := make(chan error)
	go func() {
		done <- Run(context.Background(), f, sparkconnect.StreamStart{}, Options{Emit: rec.emit, Stop: stop, Poll: 10 * time.Millisecond})
	}()
	close(stop)
	time.Sleep(50 * time.Millisecond)
	f.mu.Lock()
	f.trigger = false // the batch ends
	f.mu.Unlock()
	if err := <-done; err != nil || f.stops != 1 || f.interrupted != 0 {
		t.Fatalf("Run = %v after %d stops (%d mid-batch); want nil after one stop between batches", err, f.stops, f.interrupted)
	}
}

func TestRun_StopWithBatchesBackToBackEndsTheQueryOnceTheBatchUnderWayCommits(t *testing.T) {
	// The trigger never goes idle: each batch outlasts the trigger
	// interval, so the next one starts as soon as one commits.
	f, rec := &fakeQueries{trigger: true}, &recorder{}
	f.batch(0, 1500, "null")
	stop := make(chan struct{})
	done := make(chan error)
	go func() {
		done <- Run(context.Background(), f, sparkconnect.StreamStart{}, Options{Emit: rec.emit, Stop: stop, Poll: 10 * time.Millisecond, Grace: time.Minute})
	}()
	eventually(t, "batch 0's progress", func() bool { return len(rec.progress()) == 1 })
	requested := time.Now()
	close(stop)
	time.Sleep(50 * time.Millisecond)
	f.batch(1, 1500, "null") // the batch under way at the stop commits; batch 2 starts
	if err := <-done; err != nil {
		t.Fatalf("Run = %v; want nil", err)
	}
	if took := time.Since(requested); took > time.Second {
		t.Errorf("the stop took %s; want it soon after batch 1 committed, not after Grace", took)
	}
	if f.stops != 1 || f.reported != 2 {
		t.Errorf("%d stops, the first with %d batches reported; want one, after batch 1", f.stops, f.reported)
	}
	var ids []int64
	for _, p := range rec.progress() {
		ids = append(ids, p.BatchID)
	}
	if fmt.Sprint(ids) != "[0 1]" {
		t.Errorf("progress events for batches %v; want [0 1]: every batch committed before the stop, once", ids)
	}
	if msgs := rec.messages(); len(msgs) != 0 {
		t.Errorf("messages %q; want none", msgs)
	}
}

func TestRun_StopInterruptsABatchThatOutlastsGraceAndSaysSo(t *testing.T) {
	f, rec := &fakeQueries{trigger: true}, &recorder{}
	stop := make(chan struct{})
	close(stop)
	err := Run(context.Background(), f, sparkconnect.StreamStart{}, Options{Emit: rec.emit, Stop: stop, Poll: 10 * time.Millisecond, Grace: 50 * time.Millisecond})
	if err != nil || f.interrupted != 1 {
		t.Fatalf("Run = %v after %d stops mid-batch; want nil after one", err, f.interrupted)
	}
	if msgs := rec.messages(); len(msgs) != 1 || !strings.HasPrefix(msgs[0], "warning the micro-batch under way did not commit within 50ms of the stop") {
		t.Errorf("messages %q; want a warning that the batch was interrupted", msgs)
	}
}

func TestRun_CancelStopsAtOnceShutdownAfterTheBatch(t *testing.T) {
	for _, c := range []struct {
		name  string
		cause error
	}{{"cancel", errors.New("cancelled by request")}, {"shutdown", engine.ErrShutdown}} {
		t.Run(c.name, func(t *testing.T) {
			f := &fakeQueries{}
			ctx, cancel := context.WithCancelCause(context.Background())
			done := make(chan error)
			go func() { done <- Run(ctx, f, sparkconnect.StreamStart{}, Options{Poll: 10 * time.Millisecond}) }()
			eventually(t, "the query started", func() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.active })
			f.mu.Lock()
			f.trigger = c.cause == engine.ErrShutdown
			f.mu.Unlock()
			cancel(c.cause)
			if c.cause == engine.ErrShutdown {
				time.Sleep(50 * time.Millisecond)
				f.mu.Lock()
				f.trigger = false
				f.mu.Unlock()
			}
			if err := <-done; !errors.Is(err, context.Canceled) || f.stops != 1 {
				t.Fatalf("Run = %v after %d stops; want ctx's error once the query is stopped", err, f.stops)
			}
		})
	}
}

func TestRun_AFailedQueryIsARetryableFailureWithSparksError(t *testing.T) {
	f := &fakeQueries{}
	done := make(chan error)
	go func() {
		done <- Run(context.Background(), f, sparkconnect.StreamStart{}, Options{Poll: 10 * time.Millisecond})
	}()
	eventually(t, "the query started", func() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.active })
	f.mu.Lock()
	f.active, f.failure = false, &sparkconnect.QueryError{Message: "boom\nat line 3", Class: "DIVIDE_BY_ZERO", Stack: "stack"}
	f.mu.Unlock()
	err := <-done
	var fail *retry.Failure
	if !errors.As(err, &fail) || !fail.Err.Retryable || fail.Err.Type != "DIVIDE_BY_ZERO" || fail.Err.Traceback != "stack" {
		t.Fatalf("Run = %#v; want a retryable failure with Spark's class and stack", err)
	}
}

func TestRun_LagRulesReportLaggingOnceAndCaughtUp(t *testing.T) {
	f, rec := &fakeQueries{}, &recorder{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		_ = Run(ctx, f, sparkconnect.StreamStart{}, Options{Emit: rec.emit, Poll: 10 * time.Millisecond,
			Lag: Lag{MaxBatchDuration: time.Second, MaxIdle: 150 * time.Millisecond}})
	}()
	f.batch(0, 3000, "null")
	eventually(t, "LAGGING for a slow batch", func() bool { return len(rec.lags()) == 1 })
	f.batch(1, 4000, "null") // still slow: said once
	eventually(t, "the second batch", func() bool { return len(rec.progress()) == 2 })
	f.batch(2, 200, "null")
	eventually(t, "CAUGHT UP", func() bool { return len(rec.lags()) == 2 })
	eventually(t, "LAGGING for no batch", func() bool { return len(rec.lags()) == 3 })
	lags := rec.lags()
	if !strings.HasPrefix(lags[0], "LAGGING batch 0 took 3s") || !strings.HasSuffix(lags[0], "(0)") ||
		!strings.HasPrefix(lags[1], "CAUGHT_UP batch 2 took 200ms (2)") ||
		!strings.HasPrefix(lags[2], "LAGGING no micro-batch for") || !strings.HasSuffix(lags[2], "(none)") {
		t.Errorf("lag events = %q", lags)
	}
	if msgs := rec.messages(); len(msgs) != 0 {
		t.Errorf("lag also said in messages %q", msgs)
	}
}
