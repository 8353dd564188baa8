package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite" // reads the journal of a running execd

	execv1 "github.com/tauro-exec/tauro-exec/gen/tauro/exec/v1"
	"github.com/tauro-exec/tauro-exec/internal/spark/server/sparktest"
)

// journalKeys lists the keys of a run's journal with the given prefix, read
// from the store of a running (or killed) execd.
func journalKeys(t *testing.T, state, runID, prefix string) map[string]string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(state, "execd.db")+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT key, value FROM run_journal WHERE run_id = ? AND key LIKE ? || '%'`, runID, prefix)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var k string
		var v []byte
		if err := rows.Scan(&k, &v); err != nil {
			t.Fatal(err)
		}
		out[k] = string(v)
	}
	return out
}

// awaitJournal waits until the run's journal has a key with prefix: a
// write is recorded just before it is sent.
func awaitJournal(ctx context.Context, t *testing.T, state, runID, prefix string) {
	t.Helper()
	for len(journalKeys(t, state, runID, prefix)) == 0 {
		if ctx.Err() != nil {
			t.Fatalf("the run's journal never got %s*", prefix)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkEventLog checks a run's whole log as WatchRun replays it: sequences
// 1, 2, 3... with no gap, the events seen before a restart as its prefix,
// the run RUNNING once, and no node state change recorded twice.
func checkEventLog(t *testing.T, before, all []*execv1.RunEvent) {
	t.Helper()
	for i, ev := range all {
		if ev.GetSequence() != int64(i+1) {
			t.Fatalf("event %d has sequence %d: a gap or a repeat", i+1, ev.GetSequence())
		}
	}
	if len(all) < len(before) {
		t.Fatalf("the log has %d events, %d were seen before the restart", len(all), len(before))
	}
	for i, ev := range before {
		if !sameEvent(ev, all[i]) {
			t.Errorf("event %d changed across the restart:\nbefore %v\nafter  %v", i+1, ev, all[i])
		}
	}
	seen := map[string]int64{}
	running := 0
	for _, ev := range all {
		if rs := ev.GetRunStateChanged(); rs != nil && rs.GetState() == execv1.RunState_RUN_STATE_RUNNING {
			running++
		}
		n := ev.GetNodeStateChanged()
		if n == nil {
			continue
		}
		key := fmt.Sprintf("%s %v attempt %d", n.GetNode(), n.GetState(), n.GetAttempt())
		if at, dup := seen[key]; dup {
			t.Errorf("%s is recorded twice: events %d and %d", key, at, ev.GetSequence())
		}
		seen[key] = ev.GetSequence()
	}
	if running != 1 {
		t.Errorf("the run is RUNNING %d times in its log, want once", running)
	}
}

// metricValues collects a node's metric of one name, in order.
func metricValues(evs []*execv1.RunEvent, node, name string) []float64 {
	var out []float64
	for _, ev := range evs {
		if m := ev.GetNodeMetric(); m != nil && m.GetNode() == node && m.GetName() == name {
			out = append(out, m.GetValue())
		}
	}
	return out
}

// deltaCommits counts a Delta table's commits on the test's Spark.
func deltaCommits(ctx context.Context, t *testing.T, path string) int {
	t.Helper()
	spark := sparktest.Session(ctx, t)
	df, err := spark.Sql(ctx, "DESCRIBE HISTORY delta.`"+path+"`")
	if err != nil {
		t.Fatal(err)
	}
	rows, err := df.Collect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return len(rows)
}

// runKilledMidWrite starts slow_append, kills execd once the long append
// has been sent to Spark, and starts it again. It returns the run, the
// events seen before the kill and the second daemon.
func runKilledMidWrite(ctx context.Context, t *testing.T, project, state string) (runID, session string, before []*execv1.RunEvent, d2 *daemon) {
	t.Helper()
	d := startDaemon(t, project, state, "--workers", "0")
	cl := d.client(t)
	runID = startRun(ctx, t, cl, &execv1.ExecutePipelineRequest{Pipeline: "slow_append"})
	waitForNodeState(ctx, t, cl, runID, "long_append", execv1.NodeState_NODE_STATE_RUNNING)
	awaitJournal(ctx, t, state, runID, "n/long_append/1/write/")
	time.Sleep(time.Second) // well into the write, which takes ~16 s
	before = collectUntilNow(ctx, t, cl, runID)
	d.Kill()
	session, _ = sessionOf(t, state, runID)
	return runID, session, before, startDaemon(t, project, state, "--workers", "0")
}

// collectUntilNow returns the run's events committed so far.
func collectUntilNow(ctx context.Context, t *testing.T, cl execv1.ExecServiceClient, runID string) []*execv1.RunEvent {
	t.Helper()
	got, err := cl.GetRun(ctx, &execv1.GetRunRequest{RunId: runID})
	if err != nil {
		t.Fatal(err)
	}
	last := got.GetRun().GetLastSequence()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := cl.WatchRun(wctx, &execv1.WatchRunRequest{RunId: runID})
	if err != nil {
		t.Fatal(err)
	}
	var out []*execv1.RunEvent
	for int64(len(out)) < last {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, resp.GetEvent())
	}
	return out
}

func TestResume_AKilledExecdTakesTheWriteInFlightUpAndSparkRunsItOnce(t *testing.T) {
	project, state := copyProject(t, "sqlproj"), t.TempDir()
	ctx := testCtx(t, 5*time.Minute)
	onCluster := clusterParallel(t)
	runID, session, before, d2 := runKilledMidWrite(ctx, t, project, state)
	cl := d2.client(t)

	got, err := cl.GetRun(ctx, &execv1.GetRunRequest{RunId: runID})
	if err != nil {
		t.Fatal(err)
	}
	if st := got.GetRun().GetState(); st != execv1.RunState_RUN_STATE_RUNNING {
		t.Fatalf("after SIGKILL and restart the run is %v, want RUNNING: it is taken up\n%s", st, d2.Logs())
	}
	all := collect(ctx, t, cl, runID, 0)
	final, err := cl.GetRun(ctx, &execv1.GetRunRequest{RunId: runID})
	if err != nil {
		t.Fatal(err)
	}
	r := final.GetRun()
	if r.GetState() != execv1.RunState_RUN_STATE_SUCCEEDED {
		t.Fatalf("the run taken up is %v (%s)\n%s", r.GetState(), r.GetMessage(), d2.Logs())
	}
	for _, n := range r.GetNodes() {
		if n.GetAttempt() != 1 {
			t.Errorf("node %s made %d attempts, want 1: nothing ran again", n.GetName(), n.GetAttempt())
		}
	}
	if !strings.Contains(d2.Logs(), "taking up a Spark operation a previous process started") {
		t.Errorf("the restarted execd did not take the write up:\n%s", d2.Logs())
	}
	checkEventLog(t, before, all)
	if rows := metricValues(all, "long_append", "rows_written.scratch.slow.appended"); len(rows) != 1 || rows[0] != 64 {
		t.Errorf("long_append's rows_written metrics %v, want one of 64", rows)
	}

	// On the server: one append of 64 rows, and the dependent read it in the
	// same session.
	appended := filepath.Join(project, "output", "dev", "scratch", "slow", "appended")
	if n := deltaCommits(ctx, t, appended); n != 1 {
		t.Errorf("the appended table has %d commits, want 1: Spark ran the write %d times", n, n)
	}
	if n := sparkCount(ctx, t, "SELECT count(*) FROM delta.`"+appended+"`"); n != 64 {
		t.Errorf("the appended table has %d rows, want 64", n)
	}
	counted := filepath.Join(project, "output", "dev", "scratch", "slow", "counted")
	if n := sparkCount(ctx, t, "SELECT first(landed) FROM parquet.`"+counted+"`"); n != 64 {
		t.Errorf("after_append counted %d rows of long_append's result, want 64", n)
	}
	if left := journalKeys(t, state, runID, ""); len(left) != 0 {
		t.Errorf("the ended run's journal still holds %d entries", len(left))
	}

	// On a cluster, its driver says so too: the run's session ran two
	// writes (long_append's and after_append's), not three, and the long
	// one's two sleeping tasks ran on the two executors.
	if onCluster {
		writes := map[string]bool{}
		spread := false
		for _, j := range sparktest.ClusterJobs(t) {
			// A job's description is its request, cut short.
			if !j.InSession(session) || !strings.Contains(j.Description, "write_oper") {
				continue
			}
			writes[j.Operation()] = true
			if by := sparktest.ClusterJobExecutors(t, j); j.NumTasks == 2 && len(by) == 2 {
				t.Logf("job %d (%d tasks) ran on executors %v", j.ID, j.NumTasks, by)
				spread = true
			}
		}
		if len(writes) != 2 {
			t.Errorf("the run's session ran %d write operations on the cluster, want 2: %v", len(writes), writes)
		}
		if !spread {
			t.Error("no job of the run's writes ran its two tasks on two executors")
		}
	}
}

// sessionOf reads the Spark Connect session a run recorded in its journal.
func sessionOf(t *testing.T, state, runID string) (id, user string) {
	t.Helper()
	var s struct{ Session, User string }
	if err := json.Unmarshal([]byte(journalKeys(t, state, runID, "session")["session"]), &s); err != nil || s.Session == "" {
		t.Fatalf("the run's journal names no session: %v", err)
	}
	return s.Session, s.User
}

func TestResume_APythonNodeWhoseWorkerDiedWithExecdRunsAgainAsItsNextAttempt(t *testing.T) {
	clusterParallel(t)
	project, state := copyProject(t, "pyproj"), t.TempDir()
	ctx := testCtx(t, 5*time.Minute)
	d := startDaemon(t, project, state, "--workers", "1")
	cl := d.client(t)
	runID := startRun(ctx, t, cl, &execv1.ExecutePipelineRequest{Pipeline: "restarted"})
	var pid int
	watchUntil(ctx, t, cl, runID, 0, "the first attempt's pid", func(ev *execv1.RunEvent) bool {
		m := ev.GetNodeMetric()
		pid = int(m.GetValue())
		return m.GetName() == "pid"
	})
	before := collectUntilNow(ctx, t, cl, runID)
	d.Kill()
	// The worker is execd's child, watching its stdin: it stops with execd.
	for deadline := time.Now().Add(20 * time.Second); processAlive(pid); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the worker (pid %d) outlived execd", pid)
		}
	}

	d2 := startDaemon(t, project, state, "--workers", "1")
	cl2 := d2.client(t)
	all := collect(ctx, t, cl2, runID, 0)
	got, err := cl2.GetRun(ctx, &execv1.GetRunRequest{RunId: runID})
	if err != nil {
		t.Fatal(err)
	}
	r := got.GetRun()
	if r.GetState() != execv1.RunState_RUN_STATE_SUCCEEDED {
		t.Fatalf("the run taken up is %v (%s)\n%s", r.GetState(), r.GetMessage(), d2.Logs())
	}
	attempts := r.GetNodes()[0].GetAttempts()
	if len(attempts) != 2 || attempts[0].GetError().GetType() != "Interrupted" ||
		attempts[1].GetState() != execv1.NodeState_NODE_STATE_SUCCEEDED {
		t.Fatalf("slow_first's attempts %v, want the first ended as interrupted and the second succeeded", attempts)
	}
	checkEventLog(t, before, all)
	out := filepath.Join(project, "output", "dev", "test", "restart", "slow_first")
	if n := sparkCount(ctx, t, "SELECT first(attempt) FROM parquet.`"+out+"`"); n != 2 {
		t.Errorf("the output was written by attempt %d, want 2", n)
	}
}

// processAlive reports whether a process with the pid exists.
func processAlive(pid int) bool { return pid > 0 && syscall.Kill(pid, 0) == nil }
