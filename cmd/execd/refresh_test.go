package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	execv1 "github.com/tauro-exec/tauro-exec/gen/tauro/exec/v1"
	"github.com/tauro-exec/tauro-exec/internal/spark/server/sparktest"
)

// sparkExec runs one statement on the test Spark server.
func sparkExec(ctx context.Context, t *testing.T, stmt string) {
	t.Helper()
	df, err := sparktest.Session(ctx, t).Sql(ctx, stmt)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := df.Collect(ctx); err != nil {
		t.Fatal(err)
	}
}

// clearMessages are the run's node messages that say what it cleared.
func clearMessages(events []*execv1.RunEvent, prefix string) []string {
	var out []string
	for _, ev := range events {
		if m := ev.GetNodeMessage(); m != nil && strings.HasPrefix(m.GetText(), prefix) {
			out = append(out, m.GetText())
		}
	}
	return out
}

func TestExecd_FullRefreshRebuildsACorruptedDeltaSinkFromTheSourcesStartAndIsRefusedWhenItCannotBeDone(t *testing.T) {
	clusterParallel(t)
	project, state := copyProject(t, "refreshproj"), t.TempDir()
	incoming := filepath.Join(project, "data", "incoming")
	if err := os.MkdirAll(incoming, 0o755); err != nil {
		t.Fatal(err)
	}
	landed := filepath.Join(project, "output", "bronze", "orders", "landed")
	sink := "delta.`" + landed + "`"
	checkpoint := filepath.Join(project, "output", "_checkpoints", "dev", "orders_stream", "land_orders")
	ctx := testCtx(t, 6*time.Minute)
	tokensPath, tokens := newTokens(t, "viewer", "operator")
	d := startDaemon(t, project, state, "--workers", "0", "--tokens", tokensPath)
	cl := d.client(t)
	as := func(role string) context.Context {
		return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tokens[role])
	}
	op := as("operator")
	succeeds := func(req *execv1.ExecutePipelineRequest) []*execv1.RunEvent {
		t.Helper()
		id := startRun(op, t, cl, req)
		events := collect(op, t, cl, id, 0)
		if r := waitRun(op, t, cl, id); r.GetState() != execv1.RunState_RUN_STATE_SUCCEEDED {
			t.Fatalf("run %s ended %s: %s", id, r.GetState(), r.GetMessage())
		}
		return events
	}

	dropOrders(t, incoming, "a.csv", 1, 40)
	dropOrders(t, incoming, "b.csv", 41, 50)
	succeeds(&execv1.ExecutePipelineRequest{Pipeline: "orders_stream"})
	if n := sparkCount(op, t, "SELECT count(*) FROM "+sink); n != 50 {
		t.Fatalf("the first run landed %d rows, want 50", n)
	}

	// Corrupted by hand: junk rows, and the checkpoint says every file is
	// done, so a plain run would keep them and add nothing.
	sparkExec(op, t, "INSERT INTO "+sink+" VALUES (-1, 'junk', 0.0), (-2, 'junk', 0.0)")
	succeeds(&execv1.ExecutePipelineRequest{Pipeline: "orders_stream"})
	if n := sparkCount(op, t, "SELECT count(*) FROM "+sink); n != 52 {
		t.Fatalf("after the junk and a plain run the sink holds %d rows, want 52", n)
	}

	// Refused: a viewer, bad node lists, a reset of a file stream, and a
	// run writing the same table.
	_, err := cl.ExecutePipeline(as("viewer"), &execv1.ExecutePipelineRequest{Pipeline: "orders_stream", FullRefresh: []string{"land_orders"}})
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("a viewer's full refresh: %v, want PERMISSION_DENIED", err)
	}
	for _, c := range []struct {
		name        string
		req         *execv1.ExecutePipelineRequest
		field, says string
	}{
		{"an unknown node", &execv1.ExecutePipelineRequest{Pipeline: "orders_stream", FullRefresh: []string{"nope"}}, "full_refresh[0]", "has no node"},
		{"a batch node", &execv1.ExecutePipelineRequest{Pipeline: "single", ResetCheckpoint: []string{"one"}}, "reset_checkpoint[0]", "batch node"},
		{"a node in both", &execv1.ExecutePipelineRequest{Pipeline: "orders_stream", FullRefresh: []string{"land_orders"}, ResetCheckpoint: []string{"land_orders"}}, "full_refresh[0]", "in both"},
		{"a reset of a file stream", &execv1.ExecutePipelineRequest{Pipeline: "orders_stream", ResetCheckpoint: []string{"land_orders"}}, "reset_checkpoint[0]", "use full_refresh"},
	} {
		_, err := cl.ExecutePipeline(op, c.req)
		v := badRequest(t, err).GetFieldViolations()
		if len(v) != 1 || v[0].GetField() != c.field || !strings.Contains(v[0].GetDescription(), c.says) {
			t.Errorf("%s: %v, want one violation of %s saying %q", c.name, v, c.field, c.says)
		}
	}
	follower := startRun(op, t, cl, &execv1.ExecutePipelineRequest{Pipeline: "orders_follow"})
	waitForNodeState(op, t, cl, follower, "follow_orders", execv1.NodeState_NODE_STATE_STREAMING)
	_, err = cl.ExecutePipeline(op, &execv1.ExecutePipelineRequest{Pipeline: "orders_stream", FullRefresh: []string{"land_orders"}})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), follower) {
		t.Errorf("a full refresh while run %s writes the table: %v, want FAILED_PRECONDITION naming it", follower, err)
	}
	if _, err := cl.StopRun(op, &execv1.StopRunRequest{RunId: follower}); err != nil {
		t.Fatal(err)
	}
	waitRun(op, t, cl, follower)

	events := succeeds(&execv1.ExecutePipelineRequest{Pipeline: "orders_stream", FullRefresh: []string{"land_orders"}})
	if got := sparkCount(op, t, "SELECT count(*) FROM "+sink); got != 50 {
		t.Errorf("after the full refresh the sink holds %d rows, want the 50 of the source", got)
	}
	if got := sparkCount(op, t, "SELECT count(DISTINCT id) FROM "+sink+" WHERE id BETWEEN 1 AND 50"); got != 50 {
		t.Errorf("after the full refresh the sink holds %d of the source's 50 ids", got)
	}
	if msgs := clearMessages(events, "full refresh: deleted the checkpoint "+checkpoint); len(msgs) != 1 {
		t.Errorf("the run's events say %d times what it cleared, want once: %v", len(msgs), msgs)
	}
	if n := checkpointBatches(t, checkpoint); n != 1 {
		t.Errorf("the rebuilt checkpoint has %d batches, want the 1 that read both files", n)
	}
}
