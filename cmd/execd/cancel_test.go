package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	execv1 "github.com/tauro-exec/tauro-exec/gen/tauro/exec/v1"
	"github.com/tauro-exec/tauro-exec/internal/spark/server/sparktest"
)

// A run recorded CANCELLED writes nothing more: its Delta output gets no
// commit after the run's terminal event. The test reads Spark's own record
// (its driver's REST API; the shared server runs with its UI on in
// `make test`): the write has started when a job of the run's Spark Connect
// session (named in the run's journal) runs, and it has ended when every SQL
// execution of that session has; only then is the Delta log read, so a
// write that went on after the cancel would have committed by then.
func TestCancel_ACancelledRunsDeltaOutputGetsNoCommitAfterItsEnd(t *testing.T) {
	remote, ui := sparktest.ServerWithUI(t)
	project := copyProject(t, "sqlproj")
	state := t.TempDir()
	d := launch(t, project, state, "--spark-remote", remote)
	cl := d.client(t)
	ctx := testCtx(t, 3*time.Minute)
	runID := startRun(ctx, t, cl, &execv1.ExecutePipelineRequest{Pipeline: "slow_delta"})
	session := runSession(ctx, t, state, runID)

	var write sparktest.Job
	for write.Session() == "" {
		for _, j := range sparktest.Jobs(t, ui) {
			if j.Status == "RUNNING" && j.InSession(session) {
				write = j
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the write never started: Spark ran no job in run %s's session %s", runID, session)
		case <-time.After(100 * time.Millisecond):
		}
	}
	resp, err := cl.CancelRun(ctx, &execv1.CancelRunRequest{RunId: runID})
	if err != nil {
		t.Fatal(err)
	}
	ended := resp.GetRun().GetEndTime().AsTime()
	if resp.GetRun().GetState() != execv1.RunState_RUN_STATE_CANCELLED {
		t.Fatalf("run %s, want CANCELLED", resp.GetRun().GetState())
	}
	awaitSessionIdle(ctx, t, ui, write.Session())

	log := filepath.Join(project, "output", "dev", "scratch", "slow", "delta", "_delta_log")
	entries, err := os.ReadDir(log)
	if err != nil && !os.IsNotExist(err) { // no log: the cancelled write was the table's first, and never committed
		t.Fatal(err)
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(log, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		var commit struct {
			CommitInfo struct {
				Timestamp int64 `json:"timestamp"`
			} `json:"commitInfo"`
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, `"commitInfo"`) && json.Unmarshal([]byte(line), &commit) == nil {
				at := time.UnixMilli(commit.CommitInfo.Timestamp)
				if at.After(ended) {
					t.Errorf("Delta version %s was committed at %s, after the run ended at %s", e.Name(), at, ended)
				}
			}
		}
	}
	if t.Failed() {
		return
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	t.Logf("Spark ended session %s's work; Delta log entries %v, none committed after the run's end", write.Session(), names)
}

// runSession is the Spark Connect session a run executes in, as its
// journal records it before any node runs.
func runSession(ctx context.Context, t *testing.T, state, runID string) string {
	t.Helper()
	awaitJournal(ctx, t, state, runID, "session")
	var id struct {
		Session string `json:"session"`
	}
	if err := json.Unmarshal([]byte(journalKeys(t, state, runID, "session")["session"]), &id); err != nil || id.Session == "" {
		t.Fatalf("run %s's journal names no session (%v)", runID, err)
	}
	return id.Session
}

// awaitSessionIdle waits until Spark records every SQL execution of the
// Spark Connect session as ended (COMPLETED or FAILED): an execution ends
// only once its command has, a Delta commit included.
func awaitSessionIdle(ctx context.Context, t *testing.T, ui, session string) {
	t.Helper()
	for {
		found, running := false, false
		for _, x := range sparktest.SQLExecutions(t, ui) {
			if x.InSession(session) {
				found = true
				running = running || x.Status == "RUNNING"
			}
		}
		if !found {
			t.Fatalf("Spark records no SQL execution of session %s: nothing to wait on", session)
		}
		if !running {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("Spark still runs work of session %s", session)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
