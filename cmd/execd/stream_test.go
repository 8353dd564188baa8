package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	execv1 "github.com/tauro-exec/tauro-exec/gen/tauro/exec/v1"
	"github.com/tauro-exec/tauro-exec/internal/spark/server/sparktest"
)

// dropOrders writes an order file whole into the folder a file stream
// follows: under a name Spark skips (a leading dot), then renamed.
func dropOrders(t *testing.T, dir, name string, from, to int) {
	t.Helper()
	var b strings.Builder
	b.WriteString("id,day,amount\n")
	for i := from; i <= to; i++ {
		fmt.Fprintf(&b, "%d,2025-03-%02d,%d.25\n", i, 1+i%28, i)
	}
	tmp := filepath.Join(dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

// watchUntil follows a run's events after sequence after until done says
// so, and returns the sequence of that event.
func watchUntil(ctx context.Context, t *testing.T, cl execv1.ExecServiceClient, runID string, after int64, what string, done func(*execv1.RunEvent) bool) int64 {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := cl.WatchRun(ctx, &execv1.WatchRunRequest{RunId: runID, AfterSequence: after})
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	for {
		resp, err := stream.Recv()
		if err != nil {
			if err == io.EOF {
				err = fmt.Errorf("the run ended")
			}
			t.Fatalf("waiting for %s: %v; events: %s", what, err, strings.Join(seen, "\n"))
		}
		ev := resp.GetEvent()
		seen = append(seen, ev.String())
		if done(ev) {
			return ev.GetSequence()
		}
	}
}

// checkpointBatches counts the micro-batches a query planned: it writes a
// batch's offsets as it starts it, before the batch's work.
func checkpointBatches(t *testing.T, checkpoint string) int {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(checkpoint, "offsets"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".") {
			n++
		}
	}
	return n
}

// sparkCount runs a one-number query on the test Spark server.
func sparkCount(ctx context.Context, t *testing.T, query string) int64 {
	t.Helper()
	spark := sparktest.Session(ctx, t) // the server's token needs the test's own channel
	df, err := spark.Sql(ctx, query)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := df.Collect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n, ok := rows[0].At(0).(int64)
	if !ok {
		t.Fatalf("%s gave %v", query, rows[0].At(0))
	}
	return n
}

func TestExecd_StreamKilledMidRunIsTakenUpAtRestartKeepingItsOffsetsAndWritingEveryRowOnce(t *testing.T) {
	clusterParallel(t)
	project, state := copyProject(t, "streamproj"), t.TempDir()
	incoming := filepath.Join(project, "data", "incoming")
	if err := os.MkdirAll(incoming, 0o755); err != nil {
		t.Fatal(err)
	}
	sink := "delta.`" + filepath.Join(project, "output", "bronze", "orders", "landed") + "`"
	checkpoint := filepath.Join(project, "output", "_checkpoints", "dev", "orders_stream", "land_orders")
	ctx := testCtx(t, 6*time.Minute)
	isProgress := func(ev *execv1.RunEvent) bool { return ev.GetNodeProgress().GetInputRows() > 0 }
	awaitRows := func(want int64, logs func() string) {
		t.Helper()
		for n := int64(0); n != want; {
			if n > want {
				t.Fatalf("the sink holds %d rows, more than the %d dropped", n, want)
			}
			if ctx.Err() != nil {
				t.Fatalf("the sink holds %d rows, not the %d dropped:\n%s", n, want, logs())
			}
			time.Sleep(time.Second)
			n = sparkCount(ctx, t, "SELECT count(*) FROM "+sink)
		}
	}

	d := startDaemon(t, project, state, "--workers", "0")
	cl := d.client(t)
	runID := startRun(ctx, t, cl, &execv1.ExecutePipelineRequest{Pipeline: "orders_stream"})
	waitForNodeState(ctx, t, cl, runID, "land_orders", execv1.NodeState_NODE_STATE_STREAMING)
	dropOrders(t, incoming, "a.csv", 1, 50)
	watchUntil(ctx, t, cl, runID, 0, "the first batch", isProgress)
	before := collectUntilNow(ctx, t, cl, runID)
	d.Kill()

	// While no execd runs, the query goes on in its session on Spark.
	dropOrders(t, incoming, "b.csv", 51, 100)
	awaitRows(100, d.Logs)
	d2 := startDaemon(t, project, state, "--workers", "0")
	cl2 := d2.client(t)
	got, err := cl2.GetRun(ctx, &execv1.GetRunRequest{RunId: runID})
	if err != nil {
		t.Fatal(err)
	}
	if st, node := got.GetRun().GetState(), got.GetRun().GetNodes()[0]; st != execv1.RunState_RUN_STATE_RUNNING ||
		node.GetState() != execv1.NodeState_NODE_STATE_STREAMING || node.GetAttempt() != 1 {
		t.Fatalf("after SIGKILL and restart the run is %v and its node %v (attempt %d), want RUNNING and STREAMING attempt 1\n%s",
			st, node.GetState(), node.GetAttempt(), d2.Logs())
	}
	// The restarted execd follows the query it took up.
	last := got.GetRun().GetLastSequence()
	dropOrders(t, incoming, "c.csv", 101, 130)
	watchUntil(ctx, t, cl2, runID, last, "a batch reported by the restarted execd", isProgress)
	awaitRows(130, d2.Logs)

	stopped, err := cl2.StopRun(ctx, &execv1.StopRunRequest{RunId: runID, Reason: "every file is in"})
	if err != nil {
		t.Fatal(err)
	}
	r := stopped.GetRun()
	if r.GetState() != execv1.RunState_RUN_STATE_SUCCEEDED || r.GetNodes()[0].GetState() != execv1.NodeState_NODE_STATE_SUCCEEDED {
		t.Fatalf("stopped run %v (%s), node %v; want both SUCCEEDED", r.GetState(), r.GetMessage(), r.GetNodes()[0].GetState())
	}
	if a := r.GetNodes()[0].GetAttempt(); a != 1 {
		t.Errorf("land_orders made %d attempts, want 1: the query was taken up, not started again", a)
	}

	all := collect(ctx, t, cl2, runID, 0)
	checkEventLog(t, before, all)
	lastBatch, resumed := int64(-1), 0
	for _, ev := range all {
		if p := ev.GetNodeProgress(); p != nil {
			if p.GetBatchId() <= lastBatch {
				t.Errorf("batch %d is reported after batch %d", p.GetBatchId(), lastBatch)
			}
			lastBatch = p.GetBatchId()
		}
		if strings.HasPrefix(ev.GetNodeMessage().GetText(), "resumed from the checkpoint at ") {
			resumed++
		}
	}
	if resumed > 1 {
		t.Errorf("the query said %d times where it resumed from its checkpoint: it was started again", resumed)
	}

	// No query of the node runs any more, and every row landed once.
	beforeStop := checkpointBatches(t, checkpoint)
	dropOrders(t, incoming, "d.csv", 131, 140)
	time.Sleep(8 * time.Second) // four triggers
	if after := checkpointBatches(t, checkpoint); after != beforeStop {
		t.Errorf("%d batches were started after the run ended: a query of the node still runs", after-beforeStop)
	}
	if n := sparkCount(ctx, t, "SELECT count(*) FROM "+sink); n != 130 {
		t.Errorf("the sink holds %d rows, want the 130 dropped before the stop", n)
	}
	if n := sparkCount(ctx, t, "SELECT count(DISTINCT id) FROM "+sink); n != 130 {
		t.Errorf("the sink holds %d distinct ids, want 130: a row was written twice", n)
	}
}

// A streaming node written for tauro's streaming query manager runs
// unchanged: an inline rate source, function: {module, function} with
// def label_ticks(input_df, node_config), an inline Delta sink and a
// processing-time trigger. The function writes what it saw of its node's
// configuration into the rows, read back here from the sink.
func TestExecd_ATauroStreamingNodeValidatesRunsAndItsFunctionSeesItsNodeConfig(t *testing.T) {
	clusterParallel(t)
	py, err := sparktest.Python()
	if err != nil {
		t.Skip(err)
	}
	project := copyProject(t, "taurostreamproj")
	d := startDaemon(t, project, t.TempDir(), "--python", py, "--workers", "1")
	cl := d.client(t)
	ctx := testCtx(t, 4*time.Minute)

	if _, err := cl.ValidatePipeline(ctx, &execv1.ValidatePipelineRequest{Pipeline: "ticks_stream"}); err != nil {
		t.Fatalf("validate: %v\n%s", err, d.Logs())
	}
	runID := startRun(ctx, t, cl, &execv1.ExecutePipelineRequest{Pipeline: "ticks_stream"})
	watchUntil(ctx, t, cl, runID, 0, "a batch with rows", func(ev *execv1.RunEvent) bool { return ev.GetNodeProgress().GetInputRows() > 0 })

	sink := "delta.`" + filepath.Join(project, "output", "ticks") + "`"
	if n := sparkCount(ctx, t, "SELECT count(*) FROM "+sink); n == 0 {
		t.Fatalf("a batch with rows was reported, but the sink is empty:\n%s", d.Logs())
	}
	// The sink grows as the query runs: count the rows that miss anything.
	if n := sparkCount(ctx, t, "SELECT count(*) FROM "+sink+" WHERE NOT coalesce("+
		"label = 'sensor-a' AND node = 'label_ticks' AND trigger_every = '5 seconds' AND was_streaming, false)"); n != 0 {
		t.Errorf("%d rows of the sink lack the node's label, name or trigger, or came from a batch input", n)
	}

	stopped, err := cl.StopRun(ctx, &execv1.StopRunRequest{RunId: runID, Reason: "the sink has rows"})
	if err != nil {
		t.Fatal(err)
	}
	r := stopped.GetRun()
	if r.GetState() != execv1.RunState_RUN_STATE_SUCCEEDED || r.GetNodes()[0].GetState() != execv1.NodeState_NODE_STATE_SUCCEEDED {
		t.Fatalf("stopped run %v (%s), node %v; want both SUCCEEDED", r.GetState(), r.GetMessage(), r.GetNodes()[0].GetState())
	}
}
