package pyworker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/pycall"
	"github.com/tauro-exec/tauro-exec/internal/engine/retry"
	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	sparkconnect "github.com/tauro-exec/tauro-exec/internal/spark/connect"
	"github.com/tauro-exec/tauro-exec/internal/spark/server/sparktest"
)

func TestMain(m *testing.M) { os.Exit(sparktest.Main(m)) }

// startPool starts real workers on testdata/proj against the test Spark.
func startPool(t *testing.T, size int) (*Pool, string) {
	t.Helper()
	remote := sparktest.Remote(t)
	python, err := sparktest.Python()
	if err != nil {
		t.Skipf("no Python for workers: %v", err)
	}
	project, err := filepath.Abs("testdata/proj")
	if err != nil {
		t.Fatal(err)
	}
	level := slog.LevelWarn
	if testing.Verbose() {
		level = slog.LevelInfo
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	p, err := Start(ctx, Config{
		Python:      python,
		Project:     project,
		SocketDir:   t.TempDir(),
		Size:        size,
		SparkRemote: remote,
		Logger:      slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})),
		CancelGrace: 20 * time.Second,
		ReleaseSession: func(ctx context.Context, s SparkSession) error {
			return sparkconnect.ReleaseAbandoned(ctx, s.Remote, s.SessionID, s.UserID)
		},
	})
	if err != nil {
		t.Fatalf("start pool: %v", err)
	}
	if got := len(p.Pids()); got != size {
		t.Fatalf("%d workers live when Start returned; want all %d", got, size)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := p.Close(ctx); err != nil {
			t.Errorf("close pool: %v", err)
		}
	})
	return p, remote
}

func nodeCall(node, function string, inputs ...string) pycall.Call {
	return pycall.Call{
		Node:       node,
		Module:     "pwtest.nodes",
		Function:   function,
		InputViews: inputs,
		StartDate:  time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
		EndDate:    time.Date(2025, 1, 31, 0, 0, 0, 0, time.UTC),
		ResultView: "pwtest_" + strings.ReplaceAll(time.Now().Format("150405.000000"), ".", "_") + "_" + node,
		RunID:      "r1",
		Attempt:    1,
		StartTime:  time.Now(),
	}
}

// runNode runs c, which must not fail to run; the node may fail.
func runNode(t *testing.T, p *Pool, c pycall.Call) (*run.Error, []pycall.Event) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var events []pycall.Event
	nodeErr, err := p.Run(ctx, c, func(e pycall.Event) { events = append(events, e) })
	if err != nil {
		t.Fatalf("run %s: %v", c.Node, err)
	}
	return nodeErr, events
}

// resultSchema reads the schema of the global view a node left its result
// in, from a session of its own.
func resultSchema(t *testing.T, remote string, c pycall.Call) []sparkconnect.Field {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := sparkconnect.Connect(ctx, remote, sparkconnect.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	fields, err := s.Schema(ctx, "global_temp."+c.ResultView)
	if err != nil {
		t.Fatalf("%s's result: %v", c.Node, err)
	}
	return fields
}

// hasView reports whether the global view of c's result is on the server.
func hasView(t *testing.T, remote string, c pycall.Call) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := sparkconnect.Connect(ctx, remote, sparkconnect.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	_, err = s.Schema(ctx, "global_temp."+c.ResultView)
	return err == nil
}

func TestPool_RunsNodesOnSparkAndPassesResultsAsGlobalViews(t *testing.T) {
	p, remote := startPool(t, 1)
	numbers := nodeCall("numbers", "numbers")
	nodeErr, events := runNode(t, p, numbers)
	if nodeErr != nil {
		t.Fatalf("numbers failed: %+v", nodeErr)
	}
	if schema := resultSchema(t, remote, numbers); len(schema) != 1 || schema[0].Name != "id" {
		t.Fatalf("numbers' result schema = %v", schema)
	}
	var metric, warning bool
	for _, e := range events {
		if m := e.Metric; m != nil && m.Name == "made" && m.Value == 5 {
			metric = true
		}
		if l := e.Log; l != nil && l.Level == "warning" && strings.Contains(l.Text, "2025-01-01..2025-01-31") {
			warning = true
		}
	}
	if !metric || !warning {
		t.Errorf("events = %+v; want the metric made=5 and the warning with the dates", events)
	}

	double := nodeCall("double", "double", "global_temp."+numbers.ResultView)
	if nodeErr, _ := runNode(t, p, double); nodeErr != nil {
		t.Fatalf("double failed: %+v", nodeErr)
	}
	// Spark Connect's Go client names bigint Long.
	if schema := resultSchema(t, remote, double); len(schema) == 0 || schema[0].Name != "doubled" || schema[0].Type != "Long" {
		t.Fatalf("double's result schema = %v", schema)
	}
}

func TestPool_NodeErrorsCarryTypeMessageTracebackAndRetryable(t *testing.T) {
	p, remote := startPool(t, 1)
	tests := []struct {
		function, typ, msg, trace string
		retryable                 bool
	}{
		{"fails", "ValueError", "boom from fails", `raise ValueError("boom from fails")`, false},
		{"flaky", "Retryable", "try again", "nodes.py", true},
		{"not_a_frame", "ResultError", "returned a builtins.int", "", false},
		{"no_columns", "ResultError", "returned a DataFrame without columns", "", false},
		{"bad_column", "AnalysisException", "no_such_column", "", false},
		{"no_dates", "FunctionError", "start_date/end_date as keywords", "", false},
		{"missing", "FunctionError", "has no attribute 'missing'", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.function, func(t *testing.T) {
			c := nodeCall(tt.function, tt.function)
			e, _ := runNode(t, p, c)
			if e == nil {
				t.Fatalf("%s succeeded", tt.function)
			}
			if e.Type != tt.typ || !strings.Contains(e.Message, tt.msg) || !strings.Contains(e.Traceback, tt.trace) || e.Retryable != tt.retryable {
				t.Errorf("error = %+v", e)
			}
			if strings.Contains(e.Traceback, "tauro_exec/worker/") {
				t.Errorf("traceback shows the worker's own frames:\n%s", e.Traceback)
			}
			if hasView(t, remote, c) {
				t.Errorf("the failed node left its result view %s", c.ResultView)
			}
		})
	}
}

// runUntilLogged runs c and calls act once the node logs text.
func runUntilLogged(ctx context.Context, p *Pool, c pycall.Call, text string, act func()) (*run.Error, error) {
	return p.Run(ctx, c, func(e pycall.Event) {
		if l := e.Log; l != nil && strings.Contains(l.Text, text) {
			go act()
		}
	})
}

func TestPool_WorkerKilledMidNodeFailsTheAttemptRetryablyAndIsReplaced(t *testing.T) {
	p, _ := startPool(t, 1)
	before := p.Pids()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, err := runUntilLogged(ctx, p, nodeCall("sleepy", "sleepy"), "sleeping", func() {
		time.Sleep(500 * time.Millisecond) // let the Spark job start
		_ = syscall.Kill(before[0], syscall.SIGKILL)
	})
	var died *DiedError
	if !errors.As(err, &died) || !strings.Contains(died.Error(), "killed") {
		t.Fatalf("err = %v; want a DiedError saying the worker was killed", err)
	}
	if !errors.Is(err, pycall.ErrWorkerDied) {
		t.Errorf("err = %v; want it to be pycall.ErrWorkerDied", err)
	}
	if c := retry.Classify(err); !c.Retryable() {
		t.Errorf("class = %v; want retryable", c)
	}
	if nodeErr, _ := runNode(t, p, nodeCall("numbers", "numbers")); nodeErr != nil {
		t.Fatalf("the next node failed: %+v", nodeErr)
	}
	if after := p.Pids(); len(after) != 1 || slices.Contains(after, before[0]) {
		t.Errorf("workers %v after the kill, %v before; want a new one", after, before)
	}
	if n := p.Restarts(); n != 1 {
		t.Errorf("Restarts() = %d after one worker was killed and replaced; want 1", n)
	}
}

// A worker killed mid-node leaves its Spark job behind on the server; the
// pool ends the dead worker's session, so the job stops instead of holding
// a core until it finishes. The job records its progress where another
// session can read it (a JVM system property of the local server).
func TestPool_DeadWorkersSparkWorkIsStopped(t *testing.T) {
	p, _ := startPool(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	runID := "dead" + strconv.FormatInt(time.Now().UnixNano(), 36)
	ticking := nodeCall("ticking", "ticking")
	ticking.RunID = runID
	spark := sparktest.Session(ctx, t)
	_, err := runUntilLogged(ctx, p, ticking, "ticking", func() {
		// Killed once the job has ticked: on a loaded machine its first
		// task may take seconds to start.
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			df, err := spark.Sql(ctx, "SELECT reflect('java.lang.System', 'getProperty', 'tauro.pwtest.tick."+runID+"') AS t")
			if err != nil {
				continue
			}
			if rows, err := df.Collect(ctx); err == nil && len(rows) == 1 {
				if tick, _ := rows[0].At(0).(string); tick != "" && tick != "null" { // getProperty of a key not set
					break
				}
			}
		}
		_ = syscall.Kill(p.Pids()[0], syscall.SIGKILL)
	})
	var died *DiedError
	if !errors.As(err, &died) {
		t.Fatalf("err = %v; want a DiedError", err)
	}
	read := nodeCall("ticks", "ticks")
	read.RunID = runID
	_, events := runNode(t, p, read)
	var first, second int
	for _, e := range events {
		if l := e.Log; l != nil && strings.HasPrefix(l.Text, "ticks ") {
			if _, err := fmt.Sscanf(l.Text, "ticks %d %d", &first, &second); err != nil {
				t.Fatalf("reading %q: %v", l.Text, err)
			}
		}
	}
	if first == 0 {
		t.Fatalf("the job never ticked, so the test shows nothing; events %+v", events)
	}
	if second != first {
		t.Fatalf("the dead worker's job still runs: tick %d, then %d 1.5 s later", first, second)
	}
	t.Logf("the job stopped at tick %d of 1200", first)
}

func TestPool_CancelInterruptsTheNodesSparkWorkAndKeepsTheWorker(t *testing.T) {
	p, _ := startPool(t, 1)
	before := p.Pids()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var cancelled time.Time
	began := time.Now()
	_, err := runUntilLogged(ctx, p, nodeCall("sleepy", "sleepy"), "sleeping", func() {
		time.Sleep(time.Second)
		cancelled = time.Now()
		cancel()
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v; want context.Canceled", err)
	}
	// The job sleeps 60 s; Run returns only after the worker reports the
	// node's code ended, so a quick return means Spark was interrupted.
	if took := time.Since(began); took > 40*time.Second {
		t.Fatalf("Run took %s; the Spark job was not interrupted", took)
	}
	t.Logf("stopped %s after the cancel", time.Since(cancelled).Round(time.Millisecond))
	if nodeErr, _ := runNode(t, p, nodeCall("numbers", "numbers")); nodeErr != nil {
		t.Fatalf("the next node failed: %+v", nodeErr)
	}
	if after := p.Pids(); !slices.Equal(after, before) {
		t.Errorf("workers %v after the cancel, %v before; the worker should have stopped the node, not been killed", after, before)
	}
}

func TestPool_ANodeWaitingForAWorkerSaysSoAndGivesUpWithItsContext(t *testing.T) {
	p, _ := startPool(t, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		_, _ = runUntilLogged(ctx, p, nodeCall("sleepy", "sleepy"), "sleeping", func() { close(started) })
	}()
	select {
	case <-started:
	case <-time.After(time.Minute):
		t.Fatal("sleepy did not start")
	}
	if busy, idle := p.Load(); busy != 1 || idle != 0 {
		t.Errorf("Load() = %d busy, %d idle while the only worker runs a node; want 1, 0", busy, idle)
	}
	// A call made ahead of time does not wait: it is refused at once.
	early := nodeCall("numbers", "numbers")
	early.IfIdle = true
	began := time.Now()
	nodeErr, err := p.Run(ctx, early, func(e pycall.Event) { t.Errorf("an IfIdle call reported %+v", e) })
	if !errors.Is(err, pycall.ErrBusy) || nodeErr != nil || time.Since(began) > time.Second {
		t.Errorf("IfIdle call with every worker busy: %v, %v after %s; want ErrBusy at once", nodeErr, err, time.Since(began))
	}
	wctx, wcancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer wcancel()
	var logs []string
	_, err = p.Run(wctx, nodeCall("numbers", "numbers"), func(e pycall.Event) {
		if l := e.Log; l != nil {
			logs = append(logs, l.Text)
		}
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v; want the waiting node's deadline", err)
	}
	if len(logs) != 1 || !strings.Contains(logs[0], "waiting for a free Python worker (all 1 are busy") {
		t.Errorf("logs %q; want one saying the node waits for a worker", logs)
	}
	cancel()
	<-done
	if busy, idle := p.Load(); busy != 0 || idle != 1 {
		t.Errorf("Load() = %d busy, %d idle once the node ended; want 0, 1", busy, idle)
	}
}

func TestPool_CheckFunctionsReportsImportErrorsSignaturesAndRefusedModules(t *testing.T) {
	p, _ := startPool(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	problems, err := p.CheckFunctions(ctx, []pycall.Function{
		{Node: "ok", Module: "pwtest.nodes", Function: "double", Inputs: 1},
		{Node: "ok_ml", Module: "pwtest.nodes", Function: "numbers"},
		{Node: "too_many", Module: "pwtest.nodes", Function: "double", Inputs: 2},
		{Node: "no_dates", Module: "pwtest.nodes", Function: "no_dates", Inputs: 1},
		{Node: "tauro_stream", Module: "pwtest.nodes", Function: "tauro_stream", Inputs: 1, Streaming: true},
		{Node: "tauro_batch", Module: "pwtest.nodes", Function: "tauro_stream", Inputs: 1},
		{Node: "no_dates_stream", Module: "pwtest.nodes", Function: "no_dates", Inputs: 1, Streaming: true},
		{Node: "import", Module: "pwtest.broken", Function: "fn"},
		{Node: "absent", Module: "pwtest.nowhere", Function: "fn"},
		{Node: "stdlib", Module: "os", Function: "system"},
		{Node: "outside", Module: "yaml", Function: "safe_load"},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, pr := range problems {
		got[pr.Node] = pr.Message
	}
	want := map[string]string{
		"too_many": "cannot take 2 input DataFrame(s)",
		"no_dates": "start_date/end_date as keywords",
		// tauro's streaming form fits a streaming node only.
		"tauro_batch":     "tauro's form for streaming nodes, and this node is a batch node",
		"no_dates_stream": "write it as def fn(input_df, node_config) (tauro's streaming form) or def fn(input_df, *, start_date, end_date)",
		"import":          "ModuleNotFoundError: No module named 'does_not_exist'",
		"absent":          "No module named 'pwtest.nowhere'",
		"stdlib":          "is not a project module",
		"outside":         "outside the allowed modules (pwtest)",
	}
	for node, text := range want {
		if !strings.Contains(got[node], text) {
			t.Errorf("problem for %s = %q; want it to contain %q", node, got[node], text)
		}
	}
	for _, node := range []string{"ok", "ok_ml", "tauro_stream"} {
		if msg, ok := got[node]; ok {
			t.Errorf("%s reported: %s", node, msg)
		}
	}
}

func TestPool_PickleBatchFunctionPicklesAFunctionOfABatchAndItsIdAndRefusesOthers(t *testing.T) {
	p, _ := startPool(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// tauro_stream(input_df, node_config) takes two positional arguments,
	// which is all foreachBatch asks.
	got, err := p.PickleBatchFunction(ctx, pycall.Function{Node: "sink", Module: "pwtest.nodes", Function: "tauro_stream", BatchFunction: true}, nil)
	if err != nil || len(got.Command) == 0 || !strings.HasPrefix(got.PythonVer, "3.") {
		t.Fatalf("pickled %d bytes for Python %q, err %v; want a pickle and a Python 3 version", len(got.Command), got.PythonVer, err)
	}
	bad := pycall.Function{Node: "sink", Module: "pwtest.nodes", Function: "no_dates", BatchFunction: true}
	if _, err := p.PickleBatchFunction(ctx, bad, nil); !errors.Is(err, pycall.ErrRefused) || !strings.Contains(err.Error(), "def fn(batch_df, batch_id)") {
		t.Errorf("pickling no_dates(df) gave %v; want a refusal saying how to write it", err)
	}
	probs, err := p.CheckFunctions(ctx, []pycall.Function{bad}, nil)
	if err != nil || len(probs) != 1 || !probs[0].BatchFunction || !strings.Contains(probs[0].Message, "cannot be a foreachBatch function") {
		t.Errorf("check of no_dates as a batch function: %+v, %v; want one batch-function problem", probs, err)
	}
}
