package backend_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine"
	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	"github.com/tauro-exec/tauro-exec/internal/spark/server/sparktest"
	"github.com/tauro-exec/tauro-exec/internal/store/sqlite"
)

// streamProject writes a project whose pipeline "s" has the given nodes;
// input and output configs as given.
func streamProject(t testing.TB, nodes, inputs, outputs string) string {
	t.Helper()
	return streamProjectWith(t, "", nodes, inputs, outputs)
}

// streamProjectWith also sets pipeline settings (", stream_timeout: 3").
func streamProjectWith(t testing.TB, pipeline, nodes, inputs, outputs string) string {
	t.Helper()
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"settings_yml.json": settings,
		"global.yaml":       "output_path: out\nmode: spark\nmax_retries: 1\nretry_delay: 1\n",
		"pipelines.yaml":    "s: {type: streaming, nodes: [" + nodeNames(nodes) + "]" + pipeline + "}\n",
		"nodes.yaml":        nodes,
		"input.yaml":        inputs,
		"output.yaml":       outputs,
	})
	return dir
}

func nodeNames(nodes string) string {
	var names []string
	for _, line := range strings.Split(nodes, "\n") {
		if k, _, ok := strings.Cut(line, ":"); ok && k != "" && !strings.HasPrefix(k, " ") {
			names = append(names, k)
		}
	}
	return strings.Join(names, ", ")
}

// streamEngine is an engine on the test Spark server.
func streamEngine(t testing.TB, dir string) *engine.Engine {
	t.Helper()
	remote := sparktest.Remote(t)
	st, err := sqlite.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	log := slog.New(slog.DiscardHandler)
	return engine.New(engine.Options{ProjectDir: dir, Env: "base", Store: st, Logger: log,
		Backend: testBackend(remote, log)})
}

// follow collects a run's events until the run ends, calling on for each.
func follow(ctx context.Context, t *testing.T, eng *engine.Engine, id string, on func(run.Event)) []run.Event {
	t.Helper()
	w, err := eng.Watch(ctx, id, 0)
	if err != nil {
		t.Fatal(err)
	}
	var evs []run.Event
	for ev := range w.Events() {
		evs = append(evs, ev)
		if on != nil {
			on(ev)
		}
	}
	return evs
}

func count(ctx context.Context, t *testing.T, query string) int64 {
	t.Helper()
	spark := sparktest.Session(ctx, t)
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

// commits counts the micro-batches a query committed to its checkpoint.
func commits(t *testing.T, checkpoint string) int {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(checkpoint, "commits"))
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

func csvFile(day string, from, to int) string {
	var b strings.Builder
	b.WriteString("id,day,amount\n")
	for i := from; i <= to; i++ {
		fmt.Fprintf(&b, "%d,%s,%d.5\n", i, day, i)
	}
	return b.String()
}

func TestStream_FileStreamToDeltaResumesFromItsCheckpointAndWritesEveryRowOnce(t *testing.T) {
	dir := streamProject(t,
		"clean: {sql: \"SELECT id, CAST(day AS DATE) AS day, amount FROM orders WHERE amount > 2\", input: [orders], output: [silver.orders.clean], streaming: {trigger: {type: available_now}}}\n",
		"orders: {format: file_stream, path: in, options: {header: true, format: csv}, schema: \"id INT, day STRING, amount DOUBLE\"}\n",
		"silver.orders.clean: {format: delta}\n")
	writeFiles(t, dir, map[string]string{"in/a.csv": csvFile("2025-01-01", 1, 50), "in/b.csv": csvFile("2025-01-02", 51, 100)})
	eng := streamEngine(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	table := "delta.`" + filepath.Join(dir, "out", "silver", "orders", "clean") + "`"

	r, err := eng.Execute(ctx, "", run.Params{Pipeline: "s"}, false)
	if err != nil {
		t.Fatal(err)
	}
	evs := follow(ctx, t, eng, r.ID, nil)
	done, _ := eng.Get(ctx, r.ID)
	if done.State != run.Succeeded {
		t.Fatalf("first run %s: %s", done.State, done.Message)
	}
	if !sawState(evs, "clean", run.NodeStreaming) || !sawProgress(evs, "clean") {
		t.Errorf("the node was never STREAMING with progress: %v", evs)
	}
	if n := count(ctx, t, "SELECT count(*) FROM "+table); n != 99 { // amount > 2 drops id 1 (1.5)
		t.Fatalf("after the first run the sink holds %d rows, want 99", n)
	}

	// New files arrive; a second run resumes from the stable checkpoint and
	// adds only them.
	writeFiles(t, dir, map[string]string{"in/c.csv": csvFile("2025-01-03", 101, 130)})
	r2, err := eng.Execute(ctx, "", run.Params{Pipeline: "s"}, false)
	if err != nil {
		t.Fatal(err)
	}
	evs = follow(ctx, t, eng, r2.ID, nil)
	if done, _ := eng.Get(ctx, r2.ID); done.State != run.Succeeded {
		t.Fatalf("second run %s: %s", done.State, done.Message)
	}
	if n := count(ctx, t, "SELECT count(*) FROM "+table); n != 129 {
		t.Errorf("after the second run the sink holds %d rows, want 129 (every input row with amount > 2, once)", n)
	}
	if n := count(ctx, t, "SELECT count(DISTINCT id) FROM "+table); n != 129 {
		t.Errorf("%d distinct ids, want 129: a row was written twice", n)
	}
	resumed := false
	for _, ev := range evs {
		resumed = resumed || (ev.Kind == run.NodeMessage && strings.Contains(ev.Message, "resumed from the checkpoint"))
	}
	if !resumed {
		t.Errorf("the second run did not say where it resumed from")
	}
}

func sawState(evs []run.Event, node string, st run.NodeState) bool {
	for _, ev := range evs {
		if ev.Kind == run.NodeStateChanged && ev.Node == node && ev.NodeState == st {
			return true
		}
	}
	return false
}

func sawProgress(evs []run.Event, node string) bool {
	for _, ev := range evs {
		if ev.Kind == run.NodeProgress && ev.Node == node && ev.Progress != nil {
			return true
		}
	}
	return false
}

// rateProject is an unbounded query: a rate source, a micro-batch a second,
// into parquet.
func rateProject(t testing.TB, pipeline string) (dir, checkpoint string) {
	dir = streamProjectWith(t, pipeline,
		"ticks: {sql: \"SELECT value, timestamp FROM rate\", input: [rate], output: [bronze.ticks.raw], streaming: {trigger: {type: processing_time, interval: \"1 second\"}}}\n",
		"rate: {format: rate, options: {rowsPerSecond: 20}}\n",
		"bronze.ticks.raw: {format: parquet}\n")
	return dir, filepath.Join(dir, "out", "_checkpoints", "base", "s", "ticks")
}

// runUntilBatches starts the pipeline and calls act once the query has
// reported progress twice; it returns the run's events.
func runUntilBatches(ctx context.Context, t *testing.T, eng *engine.Engine, act func(id string)) (string, []run.Event) {
	t.Helper()
	r, err := eng.Execute(ctx, "", run.Params{Pipeline: "s"}, false)
	if err != nil {
		t.Fatal(err)
	}
	batches, acted := 0, false
	evs := follow(ctx, t, eng, r.ID, func(ev run.Event) {
		if ev.Kind == run.NodeProgress {
			batches++
		}
		if batches >= 2 && !acted {
			acted = true
			go act(r.ID)
		}
	})
	if !acted {
		t.Fatalf("the query reported %d batches before the run ended", batches)
	}
	return r.ID, evs
}

func TestStream_StopEndsAnUnboundedQueryAfterItsBatchAndTheRunSucceeds(t *testing.T) {
	dir, checkpoint := rateProject(t, "")
	eng := streamEngine(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	id, evs := runUntilBatches(ctx, t, eng, func(id string) {
		if _, err := eng.Stop(ctx, id, "test"); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	done, _ := eng.Get(ctx, id)
	if done.State != run.Succeeded || done.Nodes[0].State != run.NodeSucceeded {
		t.Fatalf("stopped run %s (%s), node %s; want both SUCCEEDED", done.State, done.Message, done.Nodes[0].State)
	}
	if !sawState(evs, "ticks", run.NodeStreaming) {
		t.Error("the node was never STREAMING")
	}
	assertQueryGone(t, checkpoint)
	if n := count(ctx, t, "SELECT count(*) FROM parquet.`"+filepath.Join(dir, "out", "bronze", "ticks", "raw")+"`"); n == 0 {
		t.Error("the sink is empty")
	}
}

func TestStream_StopWithBatchesBackToBackEndsWithinTwoBatchesAndEveryCommittedBatchHasItsEvent(t *testing.T) {
	// Each micro-batch sleeps 1 s once, on the static side of a stream-static
	// join, which Spark computes again for every batch (the join condition
	// keeps the column from being pruned): with its own work, a batch takes
	// longer than the 1 s trigger, the next one starts as soon as one
	// commits, and a moment with no trigger active hardly ever comes.
	dir := streamProject(t,
		"ticks: {sql: \"SELECT value, timestamp FROM rate JOIN (SELECT reflect('java.lang.Thread', 'sleep', CAST(1000 AS BIGINT)) AS slept) ON slept IS NOT NULL\", input: [rate], output: [bronze.ticks.raw], streaming: {trigger: {type: processing_time, interval: \"1 second\"}}}\n",
		"rate: {format: rate, options: {rowsPerSecond: 40}}\n",
		"bronze.ticks.raw: {format: parquet}\n")
	checkpoint := filepath.Join(dir, "out", "_checkpoints", "base", "s", "ticks")
	eng := streamEngine(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	r, err := eng.Execute(ctx, "", run.Params{Pipeline: "s"}, false)
	if err != nil {
		t.Fatal(err)
	}
	// The stop comes as batch 2's event arrives, when batch 3 has just
	// begun: the longest wait, a whole batch.
	var requested, ended time.Time
	evs := follow(ctx, t, eng, r.ID, func(ev run.Event) {
		if ev.Kind == run.NodeProgress && ev.Progress.BatchID == 2 && requested.IsZero() {
			requested = time.Now()
			go func() {
				if _, err := eng.Stop(ctx, r.ID, "test"); err != nil {
					t.Errorf("Stop: %v", err)
				}
			}()
		}
		if ev.Kind == run.NodeStateChanged && ev.Node == "ticks" && ev.NodeState.Terminal() {
			ended = time.Now()
		}
	})
	done, err := eng.Get(ctx, r.ID)
	if err != nil {
		t.Fatalf("the run did not end: %v", err)
	}
	if done.State != run.Succeeded || done.Nodes[0].State != run.NodeSucceeded || requested.IsZero() {
		t.Fatalf("run %s (%s), node %s, stop requested: %v; want both SUCCEEDED after a stop", done.State, done.Message, done.Nodes[0].State, !requested.IsZero())
	}

	var ids []int64
	var rows int64
	var durations []time.Duration
	for _, ev := range evs {
		switch {
		case ev.Kind == run.NodeProgress:
			ids = append(ids, ev.Progress.BatchID)
			rows += ev.Progress.InputRows
			durations = append(durations, ev.Progress.BatchDuration)
		case ev.Kind == run.NodeMessage && ev.Level == "warning":
			t.Errorf("warning: %s", ev.Message)
		}
	}
	// Batch 0 also starts the query: the batch duration is the longest of
	// the others. The slack covers seeing the commit (a poll of 40 ms),
	// Spark interrupting the batch that had begun, and the event's way here.
	const slack = time.Second
	longest := slices.Max(durations[1:])
	took := ended.Sub(requested)
	t.Logf("stop took %s; batches took %v; %d rows reported", took, durations, rows)
	if longest <= time.Second {
		t.Errorf("the longest batch took %s, not longer than the 1 s trigger: batches did not run back to back", longest)
	}
	if took > 2*longest+slack {
		t.Errorf("the node ended %s after the stop; want within two batch durations (%s) + %s", took, 2*longest, slack)
	}
	for i, id := range ids {
		if id != int64(i) {
			t.Fatalf("progress events for batches %v; want 0, 1, 2, ... each once", ids)
		}
	}
	if n := commits(t, checkpoint); n != len(ids) {
		t.Errorf("the checkpoint has %d committed batches, the run %d progress events: every committed batch has one", n, len(ids))
	}
	if n := count(ctx, t, "SELECT count(*) FROM parquet.`"+filepath.Join(dir, "out", "bronze", "ticks", "raw")+"`"); n != rows {
		t.Errorf("the sink holds %d rows, the progress events sum to %d", n, rows)
	}
}

func TestStream_CancelInterruptsTheQueryAndTheRunIsCancelled(t *testing.T) {
	dir, checkpoint := rateProject(t, "")
	eng := streamEngine(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	id, _ := runUntilBatches(ctx, t, eng, func(id string) {
		if _, err := eng.Cancel(ctx, id, "test"); err != nil {
			t.Errorf("Cancel: %v", err)
		}
	})
	done, _ := eng.Get(ctx, id)
	if done.State != run.Cancelled || done.Nodes[0].State != run.NodeCancelled {
		t.Fatalf("cancelled run %s, node %s; want CANCELLED", done.State, done.Nodes[0].State)
	}
	assertQueryGone(t, checkpoint)
}

// assertQueryGone checks on the server's own record that the query no
// longer runs: with a micro-batch a second, a live query commits batches
// to its checkpoint; a stopped one commits none.
func assertQueryGone(t *testing.T, checkpoint string) {
	t.Helper()
	before := commits(t, checkpoint)
	if before == 0 {
		t.Fatalf("no batch was committed to %s", checkpoint)
	}
	time.Sleep(3 * time.Second)
	if after := commits(t, checkpoint); after != before {
		t.Errorf("%d batches were committed after the run ended (%d, then %d): the query still runs", after-before, before, after)
	}
}

func TestStream_AFailingQueryIsRetriedAndFailsWithSparksError(t *testing.T) {
	dir := streamProject(t,
		"bad: {sql: \"SELECT assert_true(id < 3) AS ok FROM orders\", input: [orders], output: [silver.orders.bad], streaming: {trigger: {type: available_now}}}\n",
		"orders: {format: file_stream, path: in, options: {header: true, format: csv}, schema: \"id INT, day STRING, amount DOUBLE\"}\n",
		"silver.orders.bad: {format: parquet}\n")
	writeFiles(t, dir, map[string]string{"in/a.csv": csvFile("2025-01-01", 1, 5)})
	eng := streamEngine(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	r, err := eng.Execute(ctx, "", run.Params{Pipeline: "s"}, false)
	if err != nil {
		t.Fatal(err)
	}
	follow(ctx, t, eng, r.ID, nil)
	done, _ := eng.Get(ctx, r.ID)
	n := done.Nodes[0]
	if done.State != run.Failed || n.State != run.NodeFailed || len(n.Attempts) != 2 {
		t.Fatalf("run %s, node %s after %d attempts; want FAILED after 2 (max_retries: 1)", done.State, n.State, len(n.Attempts))
	}
	if n.Error == nil || !strings.Contains(n.Error.Message, "id < 3") {
		t.Errorf("node error %+v; want Spark's message naming the failed assertion", n.Error)
	}
}

func TestStream_StreamTimeoutEndsTheQueryAfterItsBatchAndTheNodeSucceeds(t *testing.T) {
	dir, checkpoint := rateProject(t, ", stream_timeout: 4")
	eng := streamEngine(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	began := time.Now()
	r, err := eng.Execute(ctx, "", run.Params{Pipeline: "s"}, false)
	if err != nil {
		t.Fatal(err)
	}
	evs := follow(ctx, t, eng, r.ID, nil)
	done, _ := eng.Get(ctx, r.ID)
	if done.State != run.Succeeded || done.Nodes[0].State != run.NodeSucceeded {
		t.Fatalf("run %s (%s), node %s; want both SUCCEEDED once stream_timeout passed", done.State, done.Message, done.Nodes[0].State)
	}
	if took := time.Since(began); took < 4*time.Second {
		t.Errorf("the run ended after %s, before its stream_timeout", took)
	}
	if !sawProgress(evs, "ticks") {
		t.Error("no progress before the timeout")
	}
	assertQueryGone(t, checkpoint)
}

func TestStream_ValidateHasSparkAnalyseAStreamingQueryWithoutStartingIt(t *testing.T) {
	dir := streamProject(t,
		"typo: {sql: \"SELECT idd FROM orders\", input: [orders], output: [silver.orders.typo]}\n",
		"orders: {format: file_stream, path: in, options: {header: true, format: csv}, schema: \"id INT, day STRING, amount DOUBLE\"}\n",
		"silver.orders.typo: {format: parquet}\n")
	writeFiles(t, dir, map[string]string{"in/a.csv": csvFile("2025-01-01", 1, 5)})
	eng := streamEngine(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, err := eng.Validate(ctx, engine.ValidateRequest{Pipeline: "s"})
	if err == nil || !strings.Contains(err.Error(), "nodes.typo.sql") || !strings.Contains(err.Error(), "idd") {
		t.Fatalf("Validate = %v; want Spark's analysis error at nodes.typo.sql naming idd", err)
	}
	if n := commits(t, filepath.Join(dir, "out", "_checkpoints", "base", "s", "typo")); n != 0 {
		t.Errorf("validation ran %d micro-batches", n)
	}
}

// A Python streaming node's sources are resolved as a SQL node's are,
// though its function is not called before the run.
func TestStream_ValidateHasSparkResolveAPythonStreamingNodesSources(t *testing.T) {
	dir := streamProject(t,
		"follow: {input: {format: delta_stream, path: nowhere}, function: {module: streamnodes, function: follow}, output: {format: console}}\n",
		"{}\n", "{}\n")
	eng := streamEngine(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, err := eng.Validate(ctx, engine.ValidateRequest{Pipeline: "s"})
	if err == nil || !strings.Contains(err.Error(), "nodes.follow.input") || !strings.Contains(err.Error(), "follow_input") {
		t.Fatalf("Validate = %v; want Spark's error at nodes.follow.input naming follow_input", err)
	}
}

func TestStream_APythonFunctionTransformsTheStream(t *testing.T) {
	python, err := sparktest.Python()
	if err != nil {
		t.Skipf("no Python for workers: %v", err)
	}
	dir := streamProject(t,
		"doubled: {function: streamnodes.double, input: [orders], output: [silver.orders.doubled], streaming: {trigger: {type: available_now}}}\n",
		"orders: {format: file_stream, path: in, options: {header: true, format: csv}, schema: \"id INT, day STRING, amount DOUBLE\"}\n",
		"silver.orders.doubled: {format: delta}\n")
	writeFiles(t, dir, map[string]string{
		"in/a.csv": csvFile("2025-01-01", 1, 40),
		"streamnodes.py": `from pyspark.sql import functions as F


def double(orders, start_date=None, end_date=None):
    assert orders.isStreaming, "the node was given a batch DataFrame"
    return orders.where(F.col("id") % 2 == 0).withColumn("amount", F.col("amount") * 2)
`,
	})
	remote := sparktest.Remote(t)
	log := slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	eng, _ := pythonEngine(ctx, t, python, dir, remote, log)
	r, err := eng.Execute(ctx, "", run.Params{Pipeline: "s"}, false)
	if err != nil {
		t.Fatal(err)
	}
	follow(ctx, t, eng, r.ID, nil)
	done, _ := eng.Get(ctx, r.ID)
	if done.State != run.Succeeded {
		t.Fatalf("run %s: %s; node %+v", done.State, done.Message, done.Nodes[0].Error)
	}
	table := "delta.`" + filepath.Join(dir, "out", "silver", "orders", "doubled") + "`"
	if n := count(ctx, t, "SELECT count(*) FROM "+table); n != 20 {
		t.Errorf("the sink holds %d rows, want the 20 even ids", n)
	}
	if n := count(ctx, t, "SELECT count(*) FROM "+table+" WHERE amount = id * 2 + 1"); n != 20 {
		t.Errorf("%d rows have their amount doubled, want 20", n)
	}
}
