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
	"strings"
	"testing"
	"time"

	execv1 "github.com/tauro-exec/tauro-exec/gen/tauro/exec/v1"
	sparkconnect "github.com/tauro-exec/tauro-exec/internal/spark/connect"
	"github.com/tauro-exec/tauro-exec/internal/spark/server/sparktest"
)

// The foreachbatchproj project MERGEs keyed updates, dropped as JSON files
// (one per micro-batch), into a Delta table keeping each key's newest row,
// from a foreachBatch function; the MERGE carries Delta's txnAppId and
// txnVersion (the batch id), so a replayed batch is skipped.

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

// latest is each key's newest row over files 1..n, computed plainly.
func latest(n int) map[string]keyedRow {
	out := map[string]keyedRow{}
	for f := 1; f <= n; f++ {
		for _, r := range updates(f) {
			if old, ok := out[r.Key]; !ok || r.Seq > old.Seq {
				out[r.Key] = r
			}
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

// dropUpdates writes file number file whole into the folder the stream
// follows: under a name Spark skips, then renamed.
func dropUpdates(t *testing.T, project string, file int) {
	t.Helper()
	dir := filepath.Join(project, "data", "updates")
	var b strings.Builder
	for _, r := range updates(file) {
		line, _ := json.Marshal(r)
		b.Write(append(line, '\n'))
	}
	name := fmt.Sprintf("u%03d.json", file)
	tmp := filepath.Join(dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
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

// awaitLatest waits until the table holds each key's newest row of files
// 1..n; the run's context bounds the wait.
func awaitLatest(ctx context.Context, t *testing.T, table string, n int, logs func() string) {
	t.Helper()
	want := latest(n)
	for {
		got := tableRows(ctx, t, table)
		if maps.Equal(got, want) {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("the table is %v, want the newest row per key of files 1..%d, %v\n%s", got, n, want, logs())
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
// and that files batches were committed.
func wantEachBatchOnce(t *testing.T, table string, files int) {
	t.Helper()
	batches := mergeCommits(t, table)
	seen := map[int64]bool{}
	for _, b := range batches {
		if seen[b] {
			t.Errorf("batch %d was MERGEd twice: commits of batches %v", b, batches)
		}
		seen[b] = true
	}
	if len(seen) != files {
		t.Errorf("the table has MERGE commits of batches %v, want one for each of the %d files", batches, files)
	}
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
	awaitLatest(ctx, t, table, 3, d.Logs)

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
	wantEachBatchOnce(t, table, 3)
}

// execd is killed with SIGKILL mid-stream and its run's session is gone
// when it comes back (the query with it); RepairRun starts the query again
// from its checkpoint in a new session, and every batch is MERGEd once.
func TestExecd_ForeachBatchKilledMidStreamAndRepairedMergesEachBatchOnce(t *testing.T) {
	clusterParallel(t)
	py, err := sparktest.Python()
	if err != nil {
		t.Skip(err)
	}
	project, state := copyProject(t, "foreachbatchproj"), t.TempDir()
	table := filepath.Join(project, "output", "latest")
	ctx := testCtx(t, 4*time.Minute)
	isProgress := func(ev *execv1.RunEvent) bool { return ev.GetNodeProgress().GetInputRows() > 0 }

	mkUpdates(t, project)
	d := startDaemon(t, project, state, "--python", py, "--workers", "1")
	cl := d.client(t)
	runID := startRun(ctx, t, cl, &execv1.ExecutePipelineRequest{Pipeline: "keyed_updates"})
	dropUpdates(t, project, 1)
	watchUntil(ctx, t, cl, runID, 0, "the first batch", isProgress)
	dropUpdates(t, project, 2)
	d.Kill()
	session, user := sessionOf(t, state, runID)
	if err := sparkconnect.ReleaseAbandoned(ctx, sparktest.Remote(t), session, user); err != nil {
		t.Fatal(err)
	}

	d2 := startDaemon(t, project, state, "--python", py, "--workers", "1")
	cl2 := d2.client(t)
	got, err := cl2.GetRun(ctx, &execv1.GetRunRequest{RunId: runID})
	if err != nil {
		t.Fatal(err)
	}
	if st := got.GetRun().GetState(); st != execv1.RunState_RUN_STATE_INTERRUPTED {
		t.Fatalf("after SIGKILL, with its session gone, the run is %v, want INTERRUPTED\n%s", st, d2.Logs())
	}
	rep, err := cl2.RepairRun(ctx, &execv1.RepairRunRequest{RunId: runID, RequestId: "fbatch-1"})
	if err != nil {
		t.Fatal(err)
	}
	dropUpdates(t, project, 3)
	watchUntil(ctx, t, cl2, runID, rep.GetRun().GetLastSequence(), "a batch of the repaired run", isProgress)
	awaitLatest(ctx, t, table, 3, d2.Logs)

	stopped, err := cl2.StopRun(ctx, &execv1.StopRunRequest{RunId: runID, Reason: "every file is in"})
	if err != nil {
		t.Fatal(err)
	}
	if r := stopped.GetRun(); r.GetState() != execv1.RunState_RUN_STATE_SUCCEEDED {
		t.Fatalf("stopped repaired run %v (%s), want SUCCEEDED", r.GetState(), r.GetMessage())
	}
	wantEachBatchOnce(t, table, 3)
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
