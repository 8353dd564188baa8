package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	execv1 "github.com/tauro-exec/tauro-exec/gen/tauro/exec/v1"
	sparkconnect "github.com/tauro-exec/tauro-exec/internal/spark/connect"
	"github.com/tauro-exec/tauro-exec/internal/spark/server/sparktest"
)

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func badRequest(t *testing.T, err error) *errdetails.BadRequest {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.InvalidArgument {
		t.Fatalf("want INVALID_ARGUMENT, got %v", err)
	}
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			return br
		}
	}
	t.Fatalf("INVALID_ARGUMENT without BadRequest details: %v", err)
	return nil
}

func TestGRPC_ValidateReturnsEveryProblemTogetherAsBadRequest(t *testing.T) {
	d := startDaemon(t, copyProject(t, "sqlproj"), t.TempDir())
	cl := d.client(t)
	_, err := cl.ValidatePipeline(testCtx(t, 30*time.Second), &execv1.ValidatePipelineRequest{Pipeline: "broken"})
	br := badRequest(t, err)
	byReason := map[string][]string{}
	for _, v := range br.GetFieldViolations() {
		if v.GetField() == "" || v.GetDescription() == "" || v.GetReason() == "" {
			t.Errorf("violation lacks field, description or reason: %v", v)
		}
		byReason[v.GetReason()] = append(byReason[v.GetReason()], v.GetField()+": "+v.GetDescription())
	}
	for _, want := range []string{"CYCLE", "UNKNOWN_DEPENDENCY", "INVALID_OUTPUT_KEY"} {
		if len(byReason[want]) == 0 {
			t.Errorf("no %s violation among %v", want, byReason)
		}
	}
	if got := strings.Join(byReason["CYCLE"], " "); !strings.Contains(got, "loop_a -> loop_b -> loop_a") {
		t.Errorf("cycle not named in order: %s", got)
	}
}

func TestGRPC_RequestConstraintsAreCheckedBeforeTheEngine(t *testing.T) {
	d := startDaemon(t, copyProject(t, "sqlproj"), t.TempDir())
	cl := d.client(t)
	_, err := cl.ExecutePipeline(testCtx(t, 30*time.Second), &execv1.ExecutePipelineRequest{Pipeline: "", MaxWorkers: -1})
	br := badRequest(t, err)
	var fields []string
	for _, v := range br.GetFieldViolations() {
		fields = append(fields, v.GetField())
	}
	slices.Sort(fields)
	if !slices.Equal(fields, []string{"max_workers", "pipeline"}) {
		t.Errorf("violations on %v, want max_workers and pipeline", fields)
	}
}

func TestGRPC_BadDatesAreInvalidArgumentNamingTheField(t *testing.T) {
	d := startDaemon(t, copyProject(t, "sqlproj"), t.TempDir())
	cl := d.client(t)
	_, err := cl.ExecutePipeline(testCtx(t, 30*time.Second), &execv1.ExecutePipelineRequest{
		Pipeline: "quick", StartDate: "2025-02-30", EndDate: "31/01/2025",
	})
	br := badRequest(t, err)
	var fields []string
	for _, v := range br.GetFieldViolations() {
		fields = append(fields, v.GetField())
	}
	if !slices.Contains(fields, "start_date") || !slices.Contains(fields, "end_date") {
		t.Errorf("want violations on start_date and end_date, got %v", br)
	}
	runs, err := cl.ListRuns(testCtx(t, 10*time.Second), &execv1.ListRunsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(runs.GetRuns()) != 0 {
		t.Errorf("an invalid request stored a run: %v", runs.GetRuns())
	}
}

func TestGRPC_SameRequestIDTwiceGivesOneRun(t *testing.T) {
	d := startDaemon(t, copyProject(t, "sqlproj"), t.TempDir())
	cl := d.client(t)
	ctx := testCtx(t, 2*time.Minute)
	req := &execv1.ExecutePipelineRequest{RequestId: "nightly-42", Pipeline: "quick"}
	first, err := cl.ExecutePipeline(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	second, err := cl.ExecutePipeline(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if first.GetRun().GetRunId() != second.GetRun().GetRunId() {
		t.Fatalf("two runs for one request id: %s and %s", first.GetRun().GetRunId(), second.GetRun().GetRunId())
	}
	collect(ctx, t, cl, first.GetRun().GetRunId(), 0)
	runs, err := cl.ListRuns(ctx, &execv1.ListRunsRequest{Pipeline: "quick"})
	if err != nil {
		t.Fatal(err)
	}
	if len(runs.GetRuns()) != 1 {
		t.Errorf("ListRuns has %d runs, want 1", len(runs.GetRuns()))
	}
}

func TestGRPC_QuickPipelineRunsEveryNodeToSuccess(t *testing.T) {
	d := startDaemon(t, copyProject(t, "sqlproj"), t.TempDir())
	cl := d.client(t)
	ctx := testCtx(t, 2*time.Minute)
	resp, err := cl.ExecutePipeline(ctx, &execv1.ExecutePipelineRequest{Pipeline: "quick"})
	if err != nil {
		t.Fatal(err)
	}
	events := collect(ctx, t, cl, resp.GetRun().GetRunId(), 0)
	last := events[len(events)-1].GetRunStateChanged()
	if last.GetState() != execv1.RunState_RUN_STATE_SUCCEEDED {
		t.Fatalf("run ended %v (%s)\n%s", last.GetState(), last.GetMessage(), d.Logs())
	}
	got, err := cl.GetRun(ctx, &execv1.GetRunRequest{RunId: resp.GetRun().GetRunId()})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range got.GetRun().GetNodes() {
		if n.GetState() != execv1.NodeState_NODE_STATE_SUCCEEDED || n.GetAttempt() != 1 {
			t.Errorf("node %s: %v after %d attempt(s)", n.GetName(), n.GetState(), n.GetAttempt())
		}
	}
}

func TestGRPC_WatcherThatResumesWithAfterSequenceSeesEveryEventOnce(t *testing.T) {
	d := startDaemon(t, copyProject(t, "sqlproj"), t.TempDir())
	cl := d.client(t)
	ctx := testCtx(t, 2*time.Minute)
	runID := startRun(ctx, t, cl, &execv1.ExecutePipelineRequest{Pipeline: "quick"})
	var seen []int64
	after := int64(0)
	// Disconnect after every third event and resume from the last one seen.
	for done := false; !done; {
		sctx, cancel := context.WithCancel(ctx)
		stream, err := cl.WatchRun(sctx, &execv1.WatchRunRequest{RunId: runID, AfterSequence: after})
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 3; i++ {
			ev, err := stream.Recv()
			if err != nil {
				done = true // the stream ended after the terminal event
				break
			}
			seen = append(seen, ev.GetEvent().GetSequence())
			after = ev.GetEvent().GetSequence()
		}
		cancel()
	}
	final, err := cl.GetRun(ctx, &execv1.GetRunRequest{RunId: runID})
	if err != nil {
		t.Fatal(err)
	}
	n := final.GetRun().GetLastSequence()
	if int64(len(seen)) != n {
		t.Fatalf("saw %d events, the run has %d: %v", len(seen), n, seen)
	}
	for i, s := range seen {
		if s != int64(i+1) {
			t.Fatalf("event %d has sequence %d: %v", i, s, seen)
		}
	}
}

// waitForNodeState follows a run until node reaches state.
func waitForNodeState(ctx context.Context, t *testing.T, cl execv1.ExecServiceClient, runID, node string, state execv1.NodeState) []*execv1.RunEvent {
	t.Helper()
	stream, err := cl.WatchRun(ctx, &execv1.WatchRunRequest{RunId: runID})
	if err != nil {
		t.Fatal(err)
	}
	var seen []*execv1.RunEvent
	for {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("stream ended before %s was %v: %v (saw %v)", node, state, err, seen)
		}
		seen = append(seen, resp.GetEvent())
		if n := resp.GetEvent().GetNodeStateChanged(); n != nil && n.GetNode() == node && n.GetState() == state {
			return seen
		}
	}
}

// A run whose Spark session is gone when execd comes back (the server
// restarted, or released it) cannot be taken up: it is INTERRUPTED, with
// every event it had, and RepairRun finishes it.
func TestExecd_KilledMidRunWhoseSessionIsGoneIsInterruptedWithItsEvents(t *testing.T) {
	project, state := copyProject(t, "sqlproj"), t.TempDir()
	d := startDaemon(t, project, state)
	cl := d.client(t)
	ctx := testCtx(t, 3*time.Minute)
	runID := startRun(ctx, t, cl, &execv1.ExecutePipelineRequest{Pipeline: "slow"})
	before := waitForNodeState(ctx, t, cl, runID, "nap", execv1.NodeState_NODE_STATE_RUNNING)
	d.Kill()
	session, user := sessionOf(t, state, runID)
	if err := sparkconnect.ReleaseAbandoned(ctx, sparktest.Remote(t), session, user); err != nil {
		t.Fatal(err)
	}

	// The nap is short on the second daemon so the repair finishes quickly.
	t.Setenv("NAP_MS", "10")
	d2 := startDaemon(t, project, state)
	cl2 := d2.client(t)
	got, err := cl2.GetRun(ctx, &execv1.GetRunRequest{RunId: runID})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetRun().GetState() != execv1.RunState_RUN_STATE_INTERRUPTED {
		t.Fatalf("after SIGKILL and restart the run is %v, want INTERRUPTED", got.GetRun().GetState())
	}
	after := collect(ctx, t, cl2, runID, 0)
	if len(after) < len(before)+1 {
		t.Fatalf("the restarted daemon has %d events, %d were seen before the kill", len(after), len(before))
	}
	for i, ev := range before {
		if !sameEvent(ev, after[i]) {
			t.Errorf("event %d changed across the restart:\nbefore %v\nafter  %v", i+1, ev, after[i])
		}
	}
	if rs := after[len(after)-1].GetRunStateChanged(); rs.GetState() != execv1.RunState_RUN_STATE_INTERRUPTED {
		t.Errorf("last event is %v, want the run INTERRUPTED", after[len(after)-1])
	}

	// RepairRun finishes it, keeping the node that had succeeded.
	rep, err := cl2.RepairRun(ctx, &execv1.RepairRunRequest{RunId: runID, RequestId: "fix-1"})
	if err != nil {
		t.Fatal(err)
	}
	again, err := cl2.RepairRun(ctx, &execv1.RepairRunRequest{RunId: runID, RequestId: "fix-1"})
	if err != nil {
		t.Fatalf("a retried repair: %v", err)
	}
	if again.GetRun().GetRepairCount() != 1 {
		t.Errorf("a retried repair with the same request_id repaired again: repair_count %d", again.GetRun().GetRepairCount())
	}
	collect(ctx, t, cl2, runID, rep.GetRun().GetLastSequence())
	final, err := cl2.GetRun(ctx, &execv1.GetRunRequest{RunId: runID})
	if err != nil {
		t.Fatal(err)
	}
	if final.GetRun().GetState() != execv1.RunState_RUN_STATE_SUCCEEDED {
		t.Fatalf("repaired run is %v: %s\n%s", final.GetRun().GetState(), final.GetRun().GetMessage(), d2.Logs())
	}
	attempts := map[string]int32{}
	for _, n := range final.GetRun().GetNodes() {
		attempts[n.GetName()] = n.GetAttempt()
	}
	if attempts["prepare"] != 1 || attempts["nap"] != 2 || attempts["after_nap"] != 1 {
		t.Errorf("attempts after repair = %v, want prepare 1 (kept), nap 2, after_nap 1", attempts)
	}
}

func sameEvent(a, b *execv1.RunEvent) bool {
	ja, _ := protojson.Marshal(a)
	jb, _ := protojson.Marshal(b)
	return string(ja) == string(jb)
}

func TestExecd_CancelRunStopsARunningNode(t *testing.T) {
	clusterParallel(t)
	d := startDaemon(t, copyProject(t, "sqlproj"), t.TempDir())
	cl := d.client(t)
	ctx := testCtx(t, 2*time.Minute)
	runID := startRun(ctx, t, cl, &execv1.ExecutePipelineRequest{Pipeline: "slow"})
	waitForNodeState(ctx, t, cl, runID, "nap", execv1.NodeState_NODE_STATE_RUNNING)
	start := time.Now()
	c, err := cl.CancelRun(ctx, &execv1.CancelRunRequest{RunId: runID, Reason: "test says stop"})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("CancelRun took %s", took)
	}
	r := c.GetRun()
	if r.GetState() != execv1.RunState_RUN_STATE_CANCELLED || r.GetMessage() != "test says stop" {
		t.Errorf("run is %v (%q), want CANCELLED with the reason", r.GetState(), r.GetMessage())
	}
	states := map[string]execv1.NodeState{}
	for _, n := range r.GetNodes() {
		states[n.GetName()] = n.GetState()
	}
	if states["prepare"] != execv1.NodeState_NODE_STATE_SUCCEEDED || states["nap"] != execv1.NodeState_NODE_STATE_CANCELLED || states["after_nap"] != execv1.NodeState_NODE_STATE_CANCELLED {
		t.Errorf("node states after cancel: %v", states)
	}
	_, err = cl.CancelRun(ctx, &execv1.CancelRunRequest{RunId: runID})
	if status.Code(err) != codes.FailedPrecondition {
		t.Errorf("cancelling an ended run: %v, want FAILED_PRECONDITION", err)
	}
}

func TestGRPC_UnknownRunIsNotFound(t *testing.T) {
	d := startDaemon(t, copyProject(t, "sqlproj"), t.TempDir())
	cl := d.client(t)
	_, err := cl.GetRun(testCtx(t, 10*time.Second), &execv1.GetRunRequest{RunId: "run-nope"})
	if status.Code(err) != codes.NotFound {
		t.Errorf("GetRun of an unknown id: %v, want NOT_FOUND", err)
	}
}

// TestGRPCurl drives the daemon with the real grpcurl, through reflection.
func TestGRPCurl(t *testing.T) {
	grpcurl := grpcurlBin(t)
	d := startDaemon(t, copyProject(t, "sqlproj"), t.TempDir())
	call := func(method, body string) (string, error) {
		args := []string{"-plaintext", "-max-time", "60"}
		if body != "" {
			args = append(args, "-d", body)
		}
		args = append(args, d.addr)
		if method != "" {
			args = append(args, method)
		} else {
			args = append(args, "list")
		}
		out, err := exec.Command(grpcurl, args...).CombinedOutput()
		return string(out), err
	}
	mustContain := func(out string, err error, want ...string) {
		t.Helper()
		if err != nil {
			t.Fatalf("grpcurl: %v\n%s", err, out)
		}
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("grpcurl output lacks %q:\n%s", w, out)
			}
		}
	}
	out, err := call("", "")
	mustContain(out, err, "tauro.exec.v1.ExecService", "grpc.health.v1.Health")
	out, err = call("tauro.exec.v1.ExecService/ListPipelines", "")
	mustContain(out, err, `"name": "quick"`, `"name": "slow"`)
	out, err = call("tauro.exec.v1.ExecService/ValidatePipeline", `{"pipeline":"quick"}`)
	mustContain(out, err, `"order"`, `"numbers"`, `"summary"`)
	out, err = call("tauro.exec.v1.ExecService/ValidatePipeline", `{"pipeline":"broken"}`)
	if err == nil || !strings.Contains(out, "InvalidArgument") || !strings.Contains(out, "loop_a -> loop_b -> loop_a") {
		t.Errorf("validating broken: err=%v\n%s", err, out)
	}
	out, err = call("tauro.exec.v1.ExecService/ExecutePipeline", `{"pipeline":"quick","request_id":"grpcurl-1"}`)
	mustContain(out, err, `"runId"`)
	runID := between(out, `"runId": "`, `"`)
	out, err = call("tauro.exec.v1.ExecService/WatchRun", `{"run_id":"`+runID+`"}`)
	mustContain(out, err, `"nodeStateChanged"`, `"RUN_STATE_SUCCEEDED"`)
	out, err = call("grpc.health.v1.Health/Check", "")
	mustContain(out, err, `"SERVING"`)
}

// grpcurlBin is $GRPCURL, else grpcurl built from tools/go.mod.
func grpcurlBin(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("GRPCURL"); p != "" {
		return p
	}
	p := filepath.Join(t.TempDir(), "grpcurl")
	out, err := exec.Command("go", "build", "-modfile=../../tools/go.mod", "-o", p, "github.com/fullstorydev/grpcurl/cmd/grpcurl").CombinedOutput()
	if err != nil {
		t.Fatalf("building grpcurl: %v\n%s", err, out)
	}
	return p
}

func between(s, start, end string) string {
	_, rest, ok := strings.Cut(s, start)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, end)
	return v
}

// cli runs an execd client command against d and returns its output and
// exit code.
func cli(t *testing.T, d *daemon, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(execdBin(t), append(args, "--addr", d.addr)...)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

func TestCLI_RunWatchShowsNodesLiveAndExitsByTheRunsOutcome(t *testing.T) {
	d := startDaemon(t, copyProject(t, "sqlproj"), t.TempDir())

	out, code := cli(t, d, "run", "quick", "--watch")
	if code != 0 {
		t.Fatalf("run quick --watch exited %d:\n%s", code, out)
	}
	for _, want := range []string{"numbers", "RUNNING", "SUCCEEDED", "summary", "run SUCCEEDED"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	out, code = cli(t, d, "run", "failing", "--watch")
	if code != 1 {
		t.Fatalf("run failing --watch exited %d, want 1:\n%s", code, out)
	}
	for _, want := range []string{"boom", "FAILED", "boom at 10", "never", "SKIPPED"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	out, code = cli(t, d, "validate", "broken")
	if code != 1 || !strings.Contains(out, "loop_a -> loop_b -> loop_a") || !strings.Contains(out, "UNKNOWN_DEPENDENCY") {
		t.Errorf("validate broken exited %d:\n%s", code, out)
	}
}

// childPIDs lists the processes whose parent is pid.
func childPIDs(t *testing.T, pid int) []int {
	t.Helper()
	out, err := exec.Command("pgrep", "-P", fmt.Sprint(pid)).Output()
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		var p int
		if _, err := fmt.Sscan(f, &p); err == nil {
			pids = append(pids, p)
		}
	}
	return pids
}

func waitHealth(ctx context.Context, t *testing.T, hc healthpb.HealthClient, want healthpb.HealthCheckResponse_ServingStatus) {
	t.Helper()
	for ctx.Err() == nil {
		resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
		if err == nil && resp.GetStatus() == want {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("health never became %v", want)
}

func TestExecd_SparkKilledMidRunFailsTheRunCleanlyAndHealthFollowsTheRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts its own Spark server")
	}
	project, state := copyProject(t, "sqlproj"), t.TempDir()
	d := startDaemonEmbedded(t, project, state)
	cl := d.client(t)
	conn, err := grpc.NewClient(d.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	ctx := testCtx(t, 5*time.Minute)
	waitHealth(ctx, t, hc, healthpb.HealthCheckResponse_SERVING)

	runID := startRun(ctx, t, cl, &execv1.ExecutePipelineRequest{Pipeline: "slow"})
	waitForNodeState(ctx, t, cl, runID, "nap", execv1.NodeState_NODE_STATE_RUNNING)
	spark := childPIDs(t, d.cmd.Process.Pid)
	if len(spark) == 0 {
		t.Fatal("found no Spark process under execd")
	}
	for _, p := range spark {
		_ = syscall.Kill(-p, syscall.SIGKILL) // its process group: the JVM and anything it started
	}

	events := collect(ctx, t, cl, runID, 0)
	last := events[len(events)-1].GetRunStateChanged()
	if last.GetState() != execv1.RunState_RUN_STATE_FAILED {
		t.Fatalf("run ended %v (%s), want FAILED", last.GetState(), last.GetMessage())
	}
	waitHealth(ctx, t, hc, healthpb.HealthCheckResponse_NOT_SERVING)
	_, err = cl.ExecutePipeline(ctx, &execv1.ExecutePipelineRequest{Pipeline: "quick"})
	if status.Code(err) != codes.Unavailable {
		// The restart may already be done; only a different error is wrong.
		if err != nil {
			t.Errorf("a run while Spark is down: %v, want UNAVAILABLE", err)
		}
	}
	waitHealth(ctx, t, hc, healthpb.HealthCheckResponse_SERVING)
	again, err := cl.ExecutePipeline(ctx, &execv1.ExecutePipelineRequest{Pipeline: "quick"})
	if err != nil {
		t.Fatal(err)
	}
	evs := collect(ctx, t, cl, again.GetRun().GetRunId(), 0)
	if s := evs[len(evs)-1].GetRunStateChanged().GetState(); s != execv1.RunState_RUN_STATE_SUCCEEDED {
		t.Errorf("a run after the restart ended %v\n%s", s, d.Logs())
	}
}

func TestGRPC_ValidateAsksSparkAboutEverySQLNodeAndInput(t *testing.T) {
	d := startDaemon(t, copyProject(t, "sqlproj"), t.TempDir())
	cl := d.client(t)
	_, err := cl.ValidatePipeline(testCtx(t, time.Minute), &execv1.ValidatePipelineRequest{Pipeline: "badsql"})
	br := badRequest(t, err)
	got := map[string]string{}
	for _, v := range br.GetFieldViolations() {
		got[v.GetField()] = v.GetReason() + " " + v.GetDescription()
	}
	if v := got["nodes.typo.sql"]; !strings.Contains(v, "INVALID_SQL") || !strings.Contains(v, "UNRESOLVED_COLUMN") || !strings.Contains(v, "idd") {
		t.Errorf("typo: %q (all: %v)", v, got)
	}
	if v := got["input.ghost"]; !strings.Contains(v, "PATH_NOT_FOUND") || !strings.Contains(v, "ghost.csv") {
		t.Errorf("ghost: %q (all: %v)", v, got)
	}
	// The valid pipeline stays valid after Spark has looked at it.
	if _, err := cl.ValidatePipeline(testCtx(t, time.Minute), &execv1.ValidatePipelineRequest{Pipeline: "quick"}); err != nil {
		t.Errorf("quick: %v", err)
	}
}

func TestExecd_ASecondDaemonOnTheSameStateFolderIsRefused(t *testing.T) {
	project, state := copyProject(t, "sqlproj"), t.TempDir()
	d := startDaemon(t, project, state, "--workers", "0")
	ctx := testCtx(t, 2*time.Minute)
	out, err := exec.CommandContext(ctx, execdBin(t), "serve", "--project", project, "--state", state,
		"--listen", "127.0.0.1:0", "--spark-remote", sparktest.Remote(t), "--workers", "0").CombinedOutput()
	if err == nil {
		t.Fatalf("the second daemon started:\n%s", out)
	}
	want := fmt.Sprintf("--state %s is in use by another execd (pid %d)", state, d.cmd.Process.Pid)
	if !strings.Contains(string(out), want) {
		t.Errorf("output %q; want it to say %q", out, want)
	}
	// The first one is unharmed.
	if _, err := d.client(t).ListPipelines(ctx, &execv1.ListPipelinesRequest{}); err != nil {
		t.Errorf("the first daemon after the refusal: %v", err)
	}
}

func TestExecd_KeepRunsDeletesRunsThatEndedLongerAgo(t *testing.T) {
	project, state := copyProject(t, "sqlproj"), t.TempDir()
	d := startDaemon(t, project, state, "--workers", "0")
	cl := d.client(t)
	ctx := testCtx(t, 2*time.Minute)
	runID := startRun(ctx, t, cl, &execv1.ExecutePipelineRequest{Pipeline: "quick", RequestId: "old-one"})
	collect(ctx, t, cl, runID, 0)
	d.Stop()

	// A daemon that keeps runs for a day still has it.
	d2 := startDaemon(t, project, state, "--workers", "0", "--keep-runs", "1d")
	if _, err := d2.client(t).GetRun(ctx, &execv1.GetRunRequest{RunId: runID}); err != nil {
		t.Fatalf("GetRun with --keep-runs 1d: %v", err)
	}
	d2.Stop()

	// One that keeps them for a millisecond prunes it as it starts.
	d3 := startDaemon(t, project, state, "--workers", "0", "--keep-runs", "1ms")
	cl3 := d3.client(t)
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := cl3.GetRun(ctx, &execv1.GetRunRequest{RunId: runID})
		if status.Code(err) == codes.NotFound {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GetRun after pruning = %v; want NOT_FOUND\n%s", err, d3.Logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The log line follows the deletion; stderr may bring it a little later.
	for !strings.Contains(d3.Logs(), "pruned old runs") {
		if time.Now().After(deadline) {
			t.Fatalf("the daemon did not log the pruning:\n%s", d3.Logs())
		}
		time.Sleep(50 * time.Millisecond)
	}

	out, err := exec.CommandContext(ctx, execdBin(t), "serve", "--project", project, "--state", t.TempDir(), "--keep-runs", "a week").CombinedOutput()
	if err == nil || !strings.Contains(string(out), `"a week": use whole days (30d) or a duration (12h)`) {
		t.Errorf("--keep-runs 'a week': err %v, output %q", err, out)
	}
}

// Workers run in the project folder, so a relative --python must be taken
// from where execd was started, not from there.
func TestExecd_RelativePythonPathStartsTheWorkers(t *testing.T) {
	py, err := sparktest.Python()
	if err != nil {
		t.Skip(err)
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(wd, py)
	if err != nil || filepath.IsAbs(rel) {
		t.Skipf("no relative path from %s to %s", wd, py)
	}
	d := startDaemon(t, copyProject(t, "pyproj"), t.TempDir(), "--python", rel, "--workers", "1")
	ctx := testCtx(t, 2*time.Minute)
	if _, err := d.client(t).ValidatePipeline(ctx, &execv1.ValidatePipelineRequest{Pipeline: "etl"}); err != nil {
		t.Fatalf("validate (which imports the Python functions on a worker): %v", err)
	}
}
