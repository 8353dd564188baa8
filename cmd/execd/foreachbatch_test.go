package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	execv1 "github.com/tauro-exec/tauro-exec/gen/tauro/exec/v1"
	sparkconnect "github.com/tauro-exec/tauro-exec/internal/spark/connect"
	"github.com/tauro-exec/tauro-exec/internal/spark/server/sparktest"
	"github.com/tauro-exec/tauro-exec/internal/streaming/kafkatest"
)

// The foreachbatchproj project MERGEs keyed updates, dropped as JSON files
// (one per micro-batch) or read from a Kafka topic, into a Delta table
// keeping each key's newest row, from a foreachBatch function; the MERGE
// carries Delta's txnAppId and txnVersion (the batch id), so a replayed
// batch is skipped.

// keyedRow is one row of the updates and of the table.
type keyedRow struct {
	Key   string `json:"key"`
	Value int32  `json:"value"`
	Seq   int32  `json:"seq"`
}

// updates is file number file's rows: every key of five, some twice with
// a newer seq, so a batch has to pick a key's newest row itself.
func updates(file int) []keyedRow {
	var rows []keyedRow
	for j := range 5 {
		seq := int32(file*100 + j)
		rows = append(rows, keyedRow{Key: fmt.Sprintf("k%d", j), Value: int32((file*7 + j*13) % 100), Seq: seq})
		if (file+j)%2 == 0 {
			rows = append(rows, keyedRow{Key: fmt.Sprintf("k%d", j), Value: int32(file*1000 + j), Seq: seq + 50})
		}
	}
	return rows
}

// fileUpdates is the rows of files 1..n.
func fileUpdates(n int) []keyedRow {
	var rows []keyedRow
	for f := 1; f <= n; f++ {
		rows = append(rows, updates(f)...)
	}
	return rows
}

// kafkaUpdates is records from..to-1 of the topic of keyed updates: five
// keys in turn, the record's number as its value. Every fourth record is
// late, older (by seq) than its key's record five before it, and must not
// win, whether the two come in one batch or in two. Seqs are unique, so a
// key has one newest row.
func kafkaUpdates(from, to int) []keyedRow {
	var rows []keyedRow
	for i := from; i < to; i++ {
		seq := i
		if i%4 == 3 {
			seq = i - 12
		}
		rows = append(rows, keyedRow{Key: fmt.Sprintf("k%d", i%5), Value: int32(i), Seq: int32(seq)})
	}
	return rows
}

// latest is each key's newest row of rows, computed plainly.
func latest(rows []keyedRow) map[string]keyedRow {
	out := map[string]keyedRow{}
	for _, r := range rows {
		if old, ok := out[r.Key]; !ok || r.Seq > old.Seq {
			out[r.Key] = r
		}
	}
	return out
}

// mkUpdates makes the folder the stream follows: Spark resolves the
// source when the pipeline is validated and started.
func mkUpdates(t *testing.T, project string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(project, "data", "updates"), 0o755); err != nil {
		t.Fatal(err)
	}
}

// dropUpdates writes file number file into the folder the stream follows.
func dropUpdates(t *testing.T, project string, file int) {
	t.Helper()
	dropJSONLines(t, filepath.Join(project, "data", "updates"), fmt.Sprintf("u%03d.json", file), updates(file))
}

// dropJSONLines writes rows, one JSON object a line, as file name in dir,
// whole: under a name Spark skips, then renamed, so that a file stream
// never reads it half written.
func dropJSONLines[T any](t *testing.T, dir, name string, rows []T) {
	t.Helper()
	var b strings.Builder
	for _, r := range rows {
		line, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(append(line, '\n'))
	}
	tmp := filepath.Join(dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

// produceUpdates sends records from..to-1 of kafkaUpdates to topic as
// JSON, keyed by their key, with Spark's Kafka writer in a session of the
// test's own.
func produceUpdates(ctx context.Context, t *testing.T, bootstrap, topic string, from, to int) {
	t.Helper()
	var values []string
	for _, r := range kafkaUpdates(from, to) {
		values = append(values, fmt.Sprintf("('%s', %d, %d)", r.Key, r.Value, r.Seq))
	}
	query := "SELECT key, to_json(named_struct('key', key, 'value', value, 'seq', seq)) AS value FROM VALUES " +
		strings.Join(values, ", ") + " AS u(key, value, seq)"
	s, err := sparkconnect.Connect(ctx, sparktest.Remote(t), sparkconnect.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close(ctx) }()
	if err := s.DefineView(ctx, "updates", query, nil); err != nil {
		t.Fatal(err)
	}
	out := sparkconnect.OutputSpec{Key: "updates", Format: "kafka", WriteMode: "append",
		Options: map[string]string{"kafka.bootstrap.servers": bootstrap, "topic": topic}}
	if _, err := s.WriteOutput(ctx, "updates", out, ""); err != nil {
		t.Fatalf("send updates %d..%d to %s: %v", from, to-1, topic, err)
	}
}

// tableRows reads the MERGE's target, empty before its first commit.
func tableRows(ctx context.Context, t *testing.T, table string) map[string]keyedRow {
	t.Helper()
	out := map[string]keyedRow{}
	if _, err := os.Stat(filepath.Join(table, "_delta_log")); err != nil {
		return out
	}
	spark := sparktest.Session(ctx, t)
	df, err := spark.Sql(ctx, "SELECT key, value, seq FROM delta.`"+table+"`")
	if err != nil {
		t.Fatal(err)
	}
	rows, err := df.Collect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		k, _ := r.At(0).(string)
		v, _ := r.At(1).(int32)
		s, _ := r.At(2).(int32)
		out[k] = keyedRow{Key: k, Value: v, Seq: s}
	}
	return out
}

// awaitLatest waits until the table holds want, each key's newest row;
// the run's context bounds the wait.
func awaitLatest(ctx context.Context, t *testing.T, table string, want map[string]keyedRow, logs func() string) {
	t.Helper()
	for {
		got := tableRows(ctx, t, table)
		if maps.Equal(got, want) {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("the table is %v, want the newest row per key, %v\n%s", got, want, logs())
		}
		time.Sleep(time.Second)
	}
}

// mergeCommits reads the table's Delta log: the batch id (txnVersion) of
// every MERGE commit, in commit order.
func mergeCommits(t *testing.T, table string) []int64 {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(table, "_delta_log", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(files)
	var batches []int64
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		var op string
		txn := int64(-1)
		sc := bufio.NewScanner(fh)
		sc.Buffer(nil, 1<<24)
		for sc.Scan() {
			var action struct {
				Txn *struct {
					AppID   string `json:"appId"`
					Version int64  `json:"version"`
				} `json:"txn"`
				CommitInfo *struct {
					Operation string `json:"operation"`
				} `json:"commitInfo"`
			}
			if err := json.Unmarshal(sc.Bytes(), &action); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if action.Txn != nil && action.Txn.AppID == "upsert_latest" {
				txn = action.Txn.Version
			}
			if action.CommitInfo != nil {
				op = action.CommitInfo.Operation
			}
		}
		_ = fh.Close()
		if op != "MERGE" {
			continue
		}
		if txn < 0 {
			t.Errorf("%s: a MERGE commit without the batch's txnVersion", filepath.Base(f))
		}
		batches = append(batches, txn)
	}
	return batches
}

// wantEachBatchOnce checks that every MERGE commit is a different batch,
// and that the commits are of batches want.
func wantEachBatchOnce(t *testing.T, table string, want []int64) {
	t.Helper()
	batches := mergeCommits(t, table)
	seen := map[int64]bool{}
	for _, b := range batches {
		if seen[b] {
			t.Errorf("batch %d was MERGEd twice: commits of batches %v", b, batches)
		}
		seen[b] = true
	}
	if got := slices.Sorted(maps.Keys(seen)); !slices.Equal(got, want) {
		t.Errorf("the table has MERGE commits of batches %v, want one of each of %v", batches, want)
	}
}

// committedBatches lists the micro-batches a query has committed to its
// checkpoint, in order.
func committedBatches(t *testing.T, checkpoint string) []int64 {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(checkpoint, "commits", "[0-9]*"))
	if err != nil {
		t.Fatal(err)
	}
	var batches []int64
	for _, f := range files {
		b, err := strconv.ParseInt(filepath.Base(f), 10, 64)
		if err != nil {
			t.Fatalf("%s: not a batch's commit: %v", f, err)
		}
		batches = append(batches, b)
	}
	slices.Sort(batches)
	return batches
}

// A foreachBatch function that raises fails the query with its Python
// traceback in the node's error; the node's retry policy starts the query
// again from its checkpoint, which replays the failed batch: its MERGE,
// committed before the raise, is skipped by Delta. Progress events come
// per batch throughout.
func TestExecd_ForeachBatchMergesEachBatchOnceThroughAFailureAndItsRetry(t *testing.T) {
	clusterParallel(t)
	py, err := sparktest.Python()
	if err != nil {
		t.Skip(err)
	}
	project := copyProject(t, "foreachbatchproj")
	output := filepath.Join(project, "output")
	table := filepath.Join(output, "latest")
	if err := os.MkdirAll(output, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(output, "fail_once"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	mkUpdates(t, project)
	d := startDaemon(t, project, t.TempDir(), "--python", py, "--workers", "1")
	cl := d.client(t)
	ctx := testCtx(t, 3*time.Minute)

	if _, err := cl.ValidatePipeline(ctx, &execv1.ValidatePipelineRequest{Pipeline: "keyed_updates"}); err != nil {
		t.Fatalf("validate: %v\n%s", err, d.Logs())
	}
	runID := startRun(ctx, t, cl, &execv1.ExecutePipelineRequest{Pipeline: "keyed_updates"})
	dropUpdates(t, project, 1)
	var failure *execv1.NodeError
	watchUntil(ctx, t, cl, runID, 0, "the batch function's failure", func(ev *execv1.RunEvent) bool {
		failure = ev.GetNodeStateChanged().GetError()
		return failure != nil
	})
	text := failure.GetMessage() + "\n" + failure.GetTraceback()
	if !strings.Contains(text, "InjectedFailure") || !strings.Contains(text, "failed after its MERGE, on purpose") ||
		!strings.Contains(text, filepath.Join("pipelines", "sinks.py")) {
		t.Errorf("the node's error lacks the user's exception or a frame of pipelines/sinks.py:\n%s", text)
	}
	// The retry replays batch 0 and goes on with the next files.
	dropUpdates(t, project, 2)
	dropUpdates(t, project, 3)
	awaitLatest(ctx, t, table, latest(fileUpdates(3)), d.Logs)

	stopped, err := cl.StopRun(ctx, &execv1.StopRunRequest{RunId: runID, Reason: "every file is in"})
	if err != nil {
		t.Fatal(err)
	}
	r := stopped.GetRun()
	events := collect(ctx, t, cl, runID, 0)
	if r.GetState() != execv1.RunState_RUN_STATE_SUCCEEDED || r.GetNodes()[0].GetAttempt() != 2 {
		var errs []string
		for _, ev := range events {
			if e := ev.GetNodeStateChanged().GetError(); e != nil {
				errs = append(errs, fmt.Sprintf("attempt %d: %s: %s", ev.GetNodeStateChanged().GetAttempt(), e.GetType(), e.GetMessage()))
			}
		}
		t.Fatalf("stopped run %v (%s), node attempt %d; want SUCCEEDED at attempt 2; errors:\n%s",
			r.GetState(), r.GetMessage(), r.GetNodes()[0].GetAttempt(), strings.Join(errs, "\n"))
	}
	// Attempt 2 reports each batch: the replayed batch 0 (Spark counts no
	// input rows for a replay), then the two new files' batches.
	var progress []int64
	var seen []string
	for _, ev := range events {
		if p := ev.GetNodeProgress(); p != nil {
			seen = append(seen, fmt.Sprintf("attempt %d batch %d rows %d", p.GetAttempt(), p.GetBatchId(), p.GetInputRows()))
			if p.GetAttempt() == 2 && (p.GetBatchId() == 0 || p.GetInputRows() > 0) {
				progress = append(progress, p.GetBatchId())
			}
		}
	}
	if !slices.Equal(progress, []int64{0, 1, 2}) {
		t.Errorf("attempt 2 reported progress of batches %v, want 0 (replayed), 1 and 2: %s", progress, strings.Join(seen, "; "))
	}
	wantEachBatchOnce(t, table, []int64{0, 1, 2})
}

// execd is killed with SIGKILL while its query works through a backlog of
// a Kafka topic of keyed updates, and its run's session is gone when it
// comes back (the query with it); RepairRun starts the query again from
// its checkpoint in a new session. The table ends as each key's newest
// row, and Delta's log has no batch MERGEd twice: the batch the kill cut
// short, run again over the same offsets, was skipped by its txnVersion
// if its MERGE had committed.
func TestExecd_ForeachBatchFromKafkaKilledMidStreamAndRepairedMergesEachBatchOnce(t *testing.T) {
	clusterParallel(t)
	py, err := sparktest.Python()
	if err != nil {
		t.Skip(err)
	}
	project, state := copyProject(t, "foreachbatchproj"), t.TempDir()
	table := filepath.Join(project, "output", "latest")
	bootstrap, topic := kafkatest.Bootstrap(t), kafkatest.Topic(t)
	ctx := testCtx(t, 4*time.Minute)
	isProgress := func(ev *execv1.RunEvent) bool { return ev.GetNodeProgress().GetInputRows() > 0 }
	start := func() *daemon {
		return launchEnv(t, []string{"UPDATES_BOOTSTRAP=" + bootstrap, "UPDATES_TOPIC=" + topic}, project, state,
			"--spark-remote", sparktest.Remote(t), "--python", py, "--workers", "1")
	}

	// Three micro-batches wait before the query starts, two more arrive
	// while it runs, and the kill comes before it has read them all.
	produceUpdates(ctx, t, bootstrap, topic, 0, 30)
	d := start()
	cl := d.client(t)
	runID := startRun(ctx, t, cl, &execv1.ExecutePipelineRequest{Pipeline: "kafka_updates"})
	watchUntil(ctx, t, cl, runID, 0, "the first batch", isProgress)
	produceUpdates(ctx, t, bootstrap, topic, 30, 50)
	d.Kill()
	session, user := sessionOf(t, state, runID)
	if err := sparkconnect.ReleaseAbandoned(ctx, sparktest.Remote(t), session, user); err != nil {
		t.Fatal(err)
	}
	checkpoint := filepath.Join(project, "output", "_checkpoints", "dev", "kafka_updates", "upsert_latest_from_kafka")
	planned, committedAtKill, mergedAtKill := checkpointBatches(t, checkpoint), committedBatches(t, checkpoint), mergeCommits(t, table)

	d2 := start()
	cl2 := d2.client(t)
	got, err := cl2.GetRun(ctx, &execv1.GetRunRequest{RunId: runID})
	if err != nil {
		t.Fatal(err)
	}
	if st := got.GetRun().GetState(); st != execv1.RunState_RUN_STATE_INTERRUPTED {
		t.Fatalf("after SIGKILL, with its session gone, the run is %v, want INTERRUPTED\n%s", st, d2.Logs())
	}
	rep, err := cl2.RepairRun(ctx, &execv1.RepairRunRequest{RunId: runID, RequestId: "fbatch-kafka-1"})
	if err != nil {
		t.Fatal(err)
	}
	produceUpdates(ctx, t, bootstrap, topic, 50, 60)
	watchUntil(ctx, t, cl2, runID, rep.GetRun().GetLastSequence(), "a batch of the repaired run", isProgress)
	awaitLatest(ctx, t, table, latest(kafkaUpdates(0, 60)), d2.Logs)

	stopped, err := cl2.StopRun(ctx, &execv1.StopRunRequest{RunId: runID, Reason: "every update is in"})
	if err != nil {
		t.Fatal(err)
	}
	if r := stopped.GetRun(); r.GetState() != execv1.RunState_RUN_STATE_SUCCEEDED {
		t.Fatalf("stopped repaired run %v (%s), want SUCCEEDED", r.GetState(), r.GetMessage())
	}
	committed := committedBatches(t, checkpoint)
	t.Logf("at the kill %d batches planned, %v committed, %v MERGEd; at the end %v committed, MERGE commits of batches %v",
		planned, committedAtKill, mergedAtKill, committed, mergeCommits(t, table))
	wantEachBatchOnce(t, table, committed)
}

// ValidatePipeline imports a foreachBatch function in a worker and checks
// it takes (batch_df, batch_id), naming the output's batch_function field.
func TestExecd_ValidateNamesAForeachBatchFunctionThatCannotTakeABatch(t *testing.T) {
	py, err := sparktest.Python()
	if err != nil {
		t.Skip(err)
	}
	project := copyProject(t, "foreachbatchproj")
	mkUpdates(t, project)
	sinks := filepath.Join(project, "pipelines", "sinks.py")
	code, err := os.ReadFile(sinks)
	if err != nil {
		t.Fatal(err)
	}
	nodes := filepath.Join(project, "config", "nodes.yaml")
	cfg, err := os.ReadFile(nodes)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sinks, append(code, "\n\ndef without_batch_id(batch_df):\n    pass\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(nodes, []byte(strings.Replace(string(cfg), "function: merge_latest", "function: without_batch_id", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, project, t.TempDir(), "--python", py, "--workers", "1")
	_, err = d.client(t).ValidatePipeline(testCtx(t, time.Minute), &execv1.ValidatePipelineRequest{Pipeline: "keyed_updates"})
	br := badRequest(t, err)
	var found []string
	for _, v := range br.GetFieldViolations() {
		found = append(found, v.GetField()+": "+v.GetDescription())
		if v.GetField() == "nodes.upsert_latest.output.batch_function" && strings.Contains(v.GetDescription(), "without_batch_id(batch_df)") &&
			strings.Contains(v.GetDescription(), "def fn(batch_df, batch_id)") {
			return
		}
	}
	t.Errorf("no problem names the batch function's field and its fix: %s", strings.Join(found, "\n"))
}
