package main

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	execv1 "github.com/tauro-exec/tauro-exec/gen/tauro/exec/v1"
)

// A watch of a run that outlives execd (QUEUED: the next execd queues it
// again) ends when execd stops, saying where to pick up, instead of
// holding the stop until --shutdown-timeout.
func TestShutdown_OpenWatchesEndAtOnceSayingWhereToPickUp(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	d := startDaemon(t, copyProject(t, "sqlproj"), t.TempDir(), "--workers", "0", "--max-concurrent-runs", "1", "--shutdown-timeout", "30s")
	cl := d.client(t)
	startRun(ctx, t, cl, &execv1.ExecutePipelineRequest{Pipeline: "slow"})
	queued := startRun(ctx, t, cl, &execv1.ExecutePipelineRequest{Pipeline: "quick"})
	stream, err := cl.WatchRun(ctx, &execv1.WatchRunRequest{RunId: queued})
	if err != nil {
		t.Fatal(err)
	}
	var last int64
	for {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("watching the queued run: %v", err)
		}
		last = resp.GetEvent().GetSequence()
		if resp.GetEvent().GetRunStateChanged().GetState() == execv1.RunState_RUN_STATE_QUEUED {
			break
		}
	}

	began := time.Now()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_, err = stream.Recv()
	if st := status.Convert(err); st.Code() != codes.Unavailable || !strings.Contains(st.Message(), fmt.Sprintf("after_sequence %d", last)) {
		t.Errorf("the open watch at the stop: %v; want UNAVAILABLE naming after_sequence %d", err, last)
	}
	select {
	case <-d.exited:
	case <-time.After(20 * time.Second):
		t.Fatalf("execd did not stop within 20s of SIGTERM with a watch open:\n%s", d.Logs())
	}
	if took := time.Since(began); took > 15*time.Second {
		t.Errorf("execd took %s to stop with a watch open; its shutdown timeout is 30s", took)
	}
}
