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

	execv1 "github.com/tauro-exec/tauro-exec/gen/tauro/exec/v1"
	"github.com/tauro-exec/tauro-exec/internal/engine/retry"
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

func nodeRequest(node, function string, inputs ...string) *execv1.RunNodeRequest {
	return &execv1.RunNodeRequest{
		Node:       node,
		Module:     "pwtest.nodes",
		Function:   function,
		InputViews: inputs,
		StartDate:  "2025-01-01",
		EndDate:    "2025-01-31",
		ResultView: "pwtest_" + strings.ReplaceAll(time.Now().Format("150405.000000"), ".", "_") + "_" + node,
		Context:    &execv1.NodeContext{RunId: "r1", Attempt: 1},
	}
}

func run(t *testing.T, p *Pool, req *execv1.RunNodeRequest) (*execv1.RunNodeResponse, []*execv1.RunNodeResponse) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var events []*execv1.RunNodeResponse
	final, err := p.Run(ctx, req, func(r *execv1.RunNodeResponse) { events = append(events, r) })
	if err != nil {
		t.Fatalf("run %s: %v", req.Node, err)
	}
	return final, events
}

func TestPool_RunsNodesOnSparkAndPassesResultsAsGlobalViews(t *testing.T) {
	p, _ := startPool(t, 1)
	final, events := run(t, p, nodeRequest("numbers", "numbers"))
	res := final.GetResult()
	if res == nil {
		t.Fatalf("numbers failed: %v", final.GetError())
	}
	if !strings.HasPrefix(res.View, "global_temp.") || len(res.Schema) != 1 || res.Schema[0].Name != "id" {
		t.Fatalf("result = %v", res)
	}
	var metric, warning bool
	for _, e := range events {
		if m := e.GetMetric(); m != nil && m.Name == "made" && m.Value == 5 {
			metric = true
		}
		if l := e.GetLog(); l != nil && l.Level == "warning" && strings.Contains(l.Text, "2025-01-01..2025-01-31") {
			warning = true
		}
	}
	if !metric || !warning {
		t.Errorf("events = %v; want the metric made=5 and the warning with the dates", events)
	}

	final, _ = run(t, p, nodeRequest("double", "double", res.View))
	if r := final.GetResult(); r == nil || r.Schema[0].Name != "doubled" || r.Schema[0].Type != "bigint" {
		t.Fatalf("double = %v", final)
	}
}

func TestPool_NodeErrorsCarryTypeMessageTracebackAndRetryable(t *testing.T) {
	p, _ := startPool(t, 1)
	tests := []struct {
		function, typ, msg, trace string
		retryable                 bool
	}{
		{"fails", "ValueError", "boom from fails", `raise ValueError("boom from fails")`, false},
		{"flaky", "Retryable", "try again", "nodes.py", true},
		{"not_a_frame", "ResultError", "returned a builtins.int", "", false},
		{"no_dates", "FunctionError", "start_date/end_date as keywords", "", false},
		{"missing", "FunctionError", "has no attribute 'missing'", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.function, func(t *testing.T) {
			final, _ := run(t, p, nodeRequest(tt.function, tt.function))
			e := final.GetError()
			if e == nil {
				t.Fatalf("%s succeeded: %v", tt.function, final)
			}
			if e.Type != tt.typ || !strings.Contains(e.Message, tt.msg) || !strings.Contains(e.Traceback, tt.trace) || e.Retryable != tt.retryable {
				t.Errorf("error = %+v", e)
			}
			if strings.Contains(e.Traceback, "worker.py") {
				t.Errorf("traceback shows the worker's own frames:\n%s", e.Traceback)
			}
		})
	}
}

// waitForLog runs req and calls act once the node logs text.
func runUntilLogged(ctx context.Context, p *Pool, req *execv1.RunNodeRequest, text string, act func()) (*execv1.RunNodeResponse, error) {
	return p.Run(ctx, req, func(r *execv1.RunNodeResponse) {
		if l := r.GetLog(); l != nil && strings.Contains(l.Text, text) {
			go act()
		}
	})
}

func TestPool_WorkerKilledMidNodeFailsTheAttemptRetryablyAndIsReplaced(t *testing.T) {
	p, _ := startPool(t, 1)
	before := p.Pids()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, err := runUntilLogged(ctx, p, nodeRequest("sleepy", "sleepy"), "sleeping", func() {
		time.Sleep(500 * time.Millisecond) // let the Spark job start
		_ = syscall.Kill(before[0], syscall.SIGKILL)
	})
	var died *DiedError
	if !errors.As(err, &died) || !strings.Contains(died.Error(), "killed") {
		t.Fatalf("err = %v; want a DiedError saying the worker was killed", err)
	}
	if c := retry.Classify(err); !c.Retryable() {
		t.Errorf("class = %v; want retryable", c)
	}
	final, _ := run(t, p, nodeRequest("numbers", "numbers"))
	if final.GetResult() == nil {
		t.Fatalf("the next node failed: %v", final.GetError())
	}
	if after := p.Pids(); len(after) != 1 || slices.Contains(after, before[0]) {
		t.Errorf("workers %v after the kill, %v before; want a new one", after, before)
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
	req := nodeRequest("ticking", "ticking")
	req.Context.RunId = runID
	_, err := runUntilLogged(ctx, p, req, "ticking", func() {
		time.Sleep(2 * time.Second) // the job is ticking by now
		_ = syscall.Kill(p.Pids()[0], syscall.SIGKILL)
	})
	var died *DiedError
	if !errors.As(err, &died) {
		t.Fatalf("err = %v; want a DiedError", err)
	}
	read := nodeRequest("ticks", "ticks")
	read.Context.RunId = runID
	_, events := run(t, p, read)
	var first, second int
	for _, e := range events {
		if l := e.GetLog(); l != nil && strings.HasPrefix(l.Text, "ticks ") {
			if _, err := fmt.Sscanf(l.Text, "ticks %d %d", &first, &second); err != nil {
				t.Fatalf("reading %q: %v", l.Text, err)
			}
		}
	}
	if first == 0 {
		t.Fatalf("the job never ticked, so the test shows nothing; events %v", events)
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
	_, err := runUntilLogged(ctx, p, nodeRequest("sleepy", "sleepy"), "sleeping", func() {
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
	final, _ := run(t, p, nodeRequest("numbers", "numbers"))
	if final.GetResult() == nil {
		t.Fatalf("the next node failed: %v", final.GetError())
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
		_, _ = runUntilLogged(ctx, p, nodeRequest("sleepy", "sleepy"), "sleeping", func() { close(started) })
	}()
	select {
	case <-started:
	case <-time.After(time.Minute):
		t.Fatal("sleepy did not start")
	}
	wctx, wcancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer wcancel()
	var logs []string
	_, err := p.Run(wctx, nodeRequest("numbers", "numbers"), func(r *execv1.RunNodeResponse) {
		if l := r.GetLog(); l != nil {
			logs = append(logs, l.GetText())
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
}

func TestPool_CheckFunctionsReportsImportErrorsSignaturesAndRefusedModules(t *testing.T) {
	p, _ := startPool(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resp, err := p.CheckFunctions(ctx, &execv1.CheckFunctionsRequest{Functions: []*execv1.FunctionRef{
		{Node: "ok", Module: "pwtest.nodes", Function: "double", Inputs: 1},
		{Node: "ok_ml", Module: "pwtest.nodes", Function: "numbers"},
		{Node: "too_many", Module: "pwtest.nodes", Function: "double", Inputs: 2},
		{Node: "no_dates", Module: "pwtest.nodes", Function: "no_dates", Inputs: 1},
		{Node: "import", Module: "pwtest.broken", Function: "fn"},
		{Node: "absent", Module: "pwtest.nowhere", Function: "fn"},
		{Node: "stdlib", Module: "os", Function: "system"},
		{Node: "outside", Module: "yaml", Function: "safe_load"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, pr := range resp.Problems {
		got[pr.Node] = pr.Message
	}
	want := map[string]string{
		"too_many": "cannot take 2 input DataFrame(s)",
		"no_dates": "start_date/end_date as keywords",
		"import":   "ModuleNotFoundError: No module named 'does_not_exist'",
		"absent":   "No module named 'pwtest.nowhere'",
		"stdlib":   "is not a project module",
		"outside":  "outside the allowed modules (pwtest)",
	}
	for node, text := range want {
		if !strings.Contains(got[node], text) {
			t.Errorf("problem for %s = %q; want it to contain %q", node, got[node], text)
		}
	}
	for _, node := range []string{"ok", "ok_ml"} {
		if msg, ok := got[node]; ok {
			t.Errorf("%s reported: %s", node, msg)
		}
	}
}
