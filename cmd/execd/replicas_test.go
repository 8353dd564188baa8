package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	execv1 "github.com/tauro-exec/tauro-exec/gen/tauro/exec/v1"
	"github.com/tauro-exec/tauro-exec/internal/spark/server/sparktest"
	"github.com/tauro-exec/tauro-exec/internal/store/postgres/pgtest"
)

// Replicas of one execd share a PostgreSQL schema of the test run's
// cluster, the test run's Spark and one project folder. Their lease TTL is
// short so that a killed replica's runs move within seconds.
type replicaSet struct {
	url, passwordFile, project string
}

func newReplicaSet(t testing.TB, project string) replicaSet {
	t.Helper()
	url, pw := pgtest.Schema(t)
	return replicaSet{url: url, passwordFile: pw, project: project}
}

// start runs replica name, with its own state folder.
func (rs replicaSet) start(t testing.TB, name string, extra ...string) *daemon {
	t.Helper()
	return rs.startEnv(t, nil, name, extra...)
}

// startEnv is start with env added to the replica's environment.
func (rs replicaSet) startEnv(t testing.TB, env []string, name string, extra ...string) *daemon {
	t.Helper()
	return launchEnv(t, env, rs.project, t.TempDir(), append([]string{"--spark-remote", sparktest.Remote(t),
		"--store", rs.url, "--store-password-file", rs.passwordFile,
		"--replica", name, "--lease-ttl", "3s", "--workers", "0"}, extra...)...)
}

// journal lists the keys of a run's journal with the given prefix.
func (rs replicaSet) journal(ctx context.Context, t *testing.T, runID, prefix string) []string {
	t.Helper()
	conn, err := pgtest.Connect(ctx, rs.url, rs.passwordFile)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT key FROM run_journal WHERE run_id = $1 AND key LIKE $2 ORDER BY key`, runID, prefix+"%")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var keys []string
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	return keys
}

// startSlowAppend starts sqlproj's slow_append through one replica and
// returns once its long write is journaled, as another replica sees it.
func (rs replicaSet) startSlowAppend(ctx context.Context, t *testing.T, through, other execv1.ExecServiceClient) string {
	t.Helper()
	runID := startRun(ctx, t, through, &execv1.ExecutePipelineRequest{Pipeline: "slow_append"})
	waitForNodeState(ctx, t, other, runID, "long_append", execv1.NodeState_NODE_STATE_RUNNING)
	for len(rs.journal(ctx, t, runID, "n/long_append/1/write/")) == 0 {
		if ctx.Err() != nil {
			t.Fatal("the write was never journaled")
		}
		time.Sleep(100 * time.Millisecond)
	}
	return runID
}

// leases is the run's lease history: owner by epoch.
func (rs replicaSet) leases(ctx context.Context, t *testing.T, runID string) []string {
	t.Helper()
	var owners []string
	for _, c := range rs.history(ctx, t, runID) {
		owners = append(owners, c.owner)
	}
	return owners
}

// A replica killed in the middle of a Delta write: another replica, which
// a client watches the run through all along, claims the run once the
// killed one's heartbeats lapse and takes the write up where Spark has it;
// Spark runs it once, and the log that watcher saw is whole.
func TestReplicas_AKilledReplicasWriteInFlightIsTakenUpByAnotherAndSparkRunsItOnce(t *testing.T) {
	project := copyProject(t, "sqlproj")
	rs := newReplicaSet(t, project)
	ctx := testCtx(t, 5*time.Minute)
	a, b := rs.start(t, "a"), rs.start(t, "b")
	ca, cb := a.client(t), b.client(t)

	runID := rs.startSlowAppend(ctx, t, ca, cb)
	time.Sleep(time.Second) // into the write, which takes ~16 s
	before := collectUntilNow(ctx, t, cb, runID)
	a.Kill()

	all := collect(ctx, t, cb, runID, 0) // b's watcher: live across the move
	final, err := cb.GetRun(ctx, &execv1.GetRunRequest{RunId: runID})
	if err != nil {
		t.Fatal(err)
	}
	r := final.GetRun()
	if r.GetState() != execv1.RunState_RUN_STATE_SUCCEEDED {
		t.Fatalf("the run is %v (%s)\n%s", r.GetState(), r.GetMessage(), b.Logs())
	}
	for _, n := range r.GetNodes() {
		if n.GetAttempt() != 1 {
			t.Errorf("node %s made %d attempts, want 1: nothing ran again", n.GetName(), n.GetAttempt())
		}
	}
	if !strings.Contains(b.Logs(), "taking up a Spark operation a previous process started") {
		t.Errorf("replica b did not take the write up:\n%s", b.Logs())
	}
	checkEventLog(t, before, all)
	if owners := rs.leases(ctx, t, runID); strings.Join(owners, ",") != "a,b" {
		t.Errorf("lease history %v; want a then b", owners)
	}
	appended := filepath.Join(project, "output", "dev", "scratch", "slow", "appended")
	if n := deltaCommits(ctx, t, appended); n != 1 {
		t.Errorf("the appended table has %d commits, want 1: Spark ran the write %d times", n, n)
	}
}

// A cancel sent to a replica that does not own the run reaches the owner,
// and the call returns the run as the owner ended it. One request id sent
// to both replicas at once makes one run.
func TestReplicas_ACancelOrARequestIDSentToAnyReplicaActsOnTheOneRun(t *testing.T) {
	rs := newReplicaSet(t, copyProject(t, "sqlproj"))
	ctx := testCtx(t, 3*time.Minute)
	a, b := rs.start(t, "a"), rs.start(t, "b")
	ca, cb := a.client(t), b.client(t)

	ids := make([]string, 2)
	var wg sync.WaitGroup
	for i, cl := range []execv1.ExecServiceClient{ca, cb} {
		wg.Go(func() {
			resp, err := cl.ExecutePipeline(ctx, &execv1.ExecutePipelineRequest{Pipeline: "slow_append", RequestId: "nightly-2026-12-06"})
			if err != nil {
				t.Errorf("ExecutePipeline through replica %d: %v", i, err)
				return
			}
			ids[i] = resp.GetRun().GetRunId()
		})
	}
	wg.Wait()
	if ids[0] == "" || ids[0] != ids[1] {
		t.Fatalf("one request id through two replicas made runs %v; want one", ids)
	}
	runID := ids[0]
	got, err := ca.GetRun(ctx, &execv1.GetRunRequest{RunId: runID})
	if err != nil {
		t.Fatal(err)
	}
	// Cancel through the replica that does not own the run.
	other := cb
	if owner := rs.leases(ctx, t, runID); len(owner) == 1 && owner[0] == "b" {
		other = ca
	}
	waitForNodeState(ctx, t, other, runID, "long_append", execv1.NodeState_NODE_STATE_RUNNING)
	// Every replica lists both, alive, and the run under its owner.
	list, err := other.ListReplicas(ctx, &execv1.ListReplicasRequest{})
	if err != nil {
		t.Fatal(err)
	}
	owners := map[string][]string{}
	for _, r := range list.GetReplicas() {
		if !r.GetAlive() || r.GetAddress() == "" {
			t.Errorf("replica %s is listed %+v; want alive with its address", r.GetName(), r)
		}
		owners[r.GetName()] = r.GetRunIds()
	}
	if len(owners) != 2 || len(owners["a"])+len(owners["b"]) != 1 {
		t.Errorf("ListReplicas = %v; want a and b, one of them owning the run", owners)
	}
	if got, _ := other.GetRun(ctx, &execv1.GetRunRequest{RunId: runID}); len(owners[got.GetRun().GetReplica()]) != 1 {
		t.Errorf("the run names replica %q, which does not list it", got.GetRun().GetReplica())
	}
	out, err := exec.CommandContext(ctx, execdBin(t), "replicas", "--addr", a.addr).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "alive") || !strings.Contains(string(out), runID) {
		t.Errorf("execd replicas:\n%s%v", out, err)
	}
	resp, err := other.CancelRun(ctx, &execv1.CancelRunRequest{RunId: runID, Reason: "not tonight"})
	if err != nil {
		t.Fatalf("CancelRun through the replica that does not own the run: %v", err)
	}
	if st := resp.GetRun().GetState(); st != execv1.RunState_RUN_STATE_CANCELLED || resp.GetRun().GetMessage() != "not tonight" {
		t.Errorf("the cancelled run is %v (%q); want CANCELLED with the reason given", st, resp.GetRun().GetMessage())
	}
	if got.GetRun().GetState() == execv1.RunState_RUN_STATE_CANCELLED {
		t.Error("the run was cancelled before the request")
	}
}

// A replica frozen (SIGSTOP) past its lease while its run writes, and
// thawed as soon as another replica has taken the run over: the thawed
// replica records nothing more for the run (its writes are fenced), and
// leaves the Spark operation to the replica that has it, which finishes
// the run with one attempt and one output commit.
func TestReplicas_AReplicaFrozenPastItsLeaseWritesNothingForTheRunAnotherTookOver(t *testing.T) {
	project := copyProject(t, "sqlproj")
	rs := newReplicaSet(t, project)
	ctx := testCtx(t, 5*time.Minute)
	a, b := rs.start(t, "a"), rs.start(t, "b")
	ca, cb := a.client(t), b.client(t)

	runID := rs.startSlowAppend(ctx, t, ca, cb)
	before := collectUntilNow(ctx, t, cb, runID)
	if err := a.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	for strings.Join(rs.leases(ctx, t, runID), ",") != "a,b" {
		if ctx.Err() != nil {
			t.Fatal("b never claimed the frozen replica's run")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Thawed while b runs the write it took up (~16 s in all).
	if err := a.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	all := collect(ctx, t, cb, runID, 0)
	final, err := cb.GetRun(ctx, &execv1.GetRunRequest{RunId: runID})
	if err != nil {
		t.Fatal(err)
	}
	r := final.GetRun()
	if r.GetState() != execv1.RunState_RUN_STATE_SUCCEEDED {
		t.Fatalf("the run b took over is %v (%s): %v\na:\n%s\nb:\n%s", r.GetState(), r.GetMessage(), r.GetNodes(), a.Logs(), b.Logs())
	}
	for _, n := range r.GetNodes() {
		if n.GetAttempt() != 1 {
			t.Errorf("node %s made %d attempts, want 1", n.GetName(), n.GetAttempt())
		}
	}
	checkEventLog(t, before, all)
	if !strings.Contains(a.Logs(), "lease passed to another replica") {
		t.Errorf("the thawed replica did not stop executing the run:\n%s", a.Logs())
	}
	time.Sleep(2 * time.Second)
	after, err := cb.GetRun(ctx, &execv1.GetRunRequest{RunId: runID})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := after.GetRun().GetLastSequence(), int64(len(all)); got != want {
		t.Errorf("the log grew from %d to %d events after the run ended", want, got)
	}
	appended := filepath.Join(project, "output", "dev", "scratch", "slow", "appended")
	if n := deltaCommits(ctx, t, appended); n != 1 {
		t.Errorf("the appended table has %d commits, want 1", n)
	}
	if strings.Contains(a.Logs(), "interrupted Spark operation") {
		t.Errorf("the thawed replica interrupted the Spark operation b had taken up:\n%s", a.Logs())
	}
}

// Admission holds across replicas: a pipeline's max_active_runs (1 here)
// and the rule that two runs writing one place never execute together
// keep a run submitted to one replica queued while another replica
// executes a run of the same pipeline, until that run ends.
func TestReplicas_AdmissionHoldsAcrossReplicas(t *testing.T) {
	rs := newReplicaSet(t, copyProject(t, "sqlproj"))
	ctx := testCtx(t, 3*time.Minute)
	env := []string{"NAP_MS=3000"}
	a, b := rs.startEnv(t, env, "a"), rs.startEnv(t, env, "b")
	ca, cb := a.client(t), b.client(t)

	first := startRun(ctx, t, ca, &execv1.ExecutePipelineRequest{Pipeline: "slow"})
	waitForNodeState(ctx, t, ca, first, "nap", execv1.NodeState_NODE_STATE_RUNNING)
	second := startRun(ctx, t, cb, &execv1.ExecutePipelineRequest{Pipeline: "slow"})
	time.Sleep(1500 * time.Millisecond) // b has looked at its queue at least once
	got, err := cb.GetRun(ctx, &execv1.GetRunRequest{RunId: second})
	if err != nil {
		t.Fatal(err)
	}
	if st := got.GetRun().GetState(); st != execv1.RunState_RUN_STATE_QUEUED {
		t.Fatalf("the second run is %v while the first executes on another replica; want QUEUED", st)
	}
	collect(ctx, t, ca, first, 0)
	collect(ctx, t, cb, second, 0)
	r1, _ := ca.GetRun(ctx, &execv1.GetRunRequest{RunId: first})
	r2, _ := ca.GetRun(ctx, &execv1.GetRunRequest{RunId: second})
	if r1.GetRun().GetState() != execv1.RunState_RUN_STATE_SUCCEEDED || r2.GetRun().GetState() != execv1.RunState_RUN_STATE_SUCCEEDED {
		t.Fatalf("runs ended %v and %v; want both SUCCEEDED", r1.GetRun().GetState(), r2.GetRun().GetState())
	}
	if start, end := r2.GetRun().GetStartTime().AsTime(), r1.GetRun().GetEndTime().AsTime(); start.Before(end) {
		t.Errorf("the second run started at %v, before the first ended at %v", start, end)
	}
	if r2.GetRun().GetReplica() != "b" {
		t.Errorf("the second run was executed by %q; want b, where it was submitted", r2.GetRun().GetReplica())
	}
}

// The failover test: three replicas on one PostgreSQL and the test run's
// Spark; 20 runs (SQL, Python and one streaming) submitted through all
// three; one replica killed (SIGKILL) three times while they run, and
// restarted: twice after its lease lapsed (the others take its runs up),
// once at once (it takes them up itself). Every run ends SUCCEEDED (the
// stream by StopRun); every Delta output holds the one commit its run
// makes; each run's log read from each replica is the same and gap-free;
// and the lease history of every run is one owner per epoch, in order.
func TestReplicas_FailoverOfAReplicaKilledThreeTimesWhileTwentyRunsRun(t *testing.T) {
	project := copyProject(t, "failoverproj")
	incoming := filepath.Join(project, "data", "incoming")
	if err := os.MkdirAll(incoming, 0o755); err != nil {
		t.Fatal(err)
	}
	rs := newReplicaSet(t, project)
	ctx := testCtx(t, 8*time.Minute)
	ds := make([]*daemon, 3)
	for i := range ds {
		ds[i] = rs.start(t, fmt.Sprintf("r%d", i), "--workers", "1")
	}

	type submitted struct{ id, pipeline, env string }
	var runs []submitted
	// The stream runs on the replica that is killed: it is taken up by its
	// session and query id, by another replica or by the restarted one.
	stream := startRun(ctx, t, ds[1].client(t), &execv1.ExecutePipelineRequest{Pipeline: "stream_work", Env: "sandbox_stream"})
	for i := range 19 {
		p := "sql_work"
		if i%3 == 2 {
			p = "py_work"
		}
		env := fmt.Sprintf("sandbox_f%02d", i)
		id := startRun(ctx, t, ds[i%3].client(t), &execv1.ExecutePipelineRequest{Pipeline: p, Env: env})
		runs = append(runs, submitted{id, p, env})
	}
	dropOrders(t, incoming, "a.csv", 1, 40)

	killed := ds[1]
	kill := func(after, down time.Duration) {
		time.Sleep(after)
		killed.Kill()
		time.Sleep(down)
		killed = rs.start(t, "r1", "--workers", "1")
		ds[1] = killed
	}
	kill(2*time.Second, 5*time.Second) // past its 3 s lease: the others take its runs
	kill(3*time.Second, 0)             // back at once: it takes its own runs up
	dropOrders(t, incoming, "b.csv", 41, 80)
	kill(4*time.Second, 5*time.Second)

	for _, r := range runs {
		collect(ctx, t, ds[0].client(t), r.id, 0)
	}
	sink := "delta.`" + filepath.Join(project, "output", "sandbox_stream", "fo", "stream", "landed") + "`"
	for n := int64(0); n < 80; n = sparkCount(ctx, t, "SELECT count(*) FROM "+sink) {
		if ctx.Err() != nil {
			t.Fatalf("the stream landed %d of the 80 rows", n)
		}
		time.Sleep(time.Second)
	}
	if _, err := ds[2].client(t).StopRun(ctx, &execv1.StopRunRequest{RunId: stream, Reason: "every file is in"}); err != nil {
		t.Fatal(err)
	}
	if n := sparkCount(ctx, t, "SELECT count(DISTINCT id) FROM "+sink); n != 80 {
		t.Errorf("the stream's sink holds %d distinct ids, want 80", n)
	}
	if n := sparkCount(ctx, t, "SELECT count(*) FROM "+sink); n != 80 {
		t.Errorf("the stream's sink holds %d rows, want the 80 dropped, each once", n)
	}

	moved := 0
	clients := []execv1.ExecServiceClient{ds[0].client(t), ds[1].client(t), ds[2].client(t)}
	for _, r := range append(runs, submitted{stream, "stream_work", "sandbox_stream"}) {
		got, err := clients[0].GetRun(ctx, &execv1.GetRunRequest{RunId: r.id})
		if err != nil {
			t.Fatal(err)
		}
		if st := got.GetRun().GetState(); st != execv1.RunState_RUN_STATE_SUCCEEDED {
			t.Errorf("run %s (%s) is %v: %s", r.id, r.pipeline, st, got.GetRun().GetMessage())
		}
		// The same log from every replica, without a gap.
		first := collect(ctx, t, clients[0], r.id, 0)
		for i, ev := range first {
			if ev.GetSequence() != int64(i+1) {
				t.Fatalf("run %s: event %d has sequence %d", r.id, i+1, ev.GetSequence())
			}
		}
		for _, cl := range clients[1:] {
			other := collect(ctx, t, cl, r.id, 0)
			if len(other) != len(first) {
				t.Errorf("run %s: %d events from one replica, %d from another", r.id, len(first), len(other))
				continue
			}
			for i := range first {
				if !sameEvent(first[i], other[i]) {
					t.Errorf("run %s: event %d differs between replicas", r.id, i+1)
				}
			}
		}
		// One owner per epoch, in the order of the claims.
		hist := rs.history(ctx, t, r.id)
		for i, h := range hist {
			if h.epoch != int64(i+1) || (i > 0 && !h.acquired.After(hist[i-1].acquired)) {
				t.Errorf("run %s: lease history %+v is not one claim per epoch in order", r.id, hist)
				break
			}
		}
		if len(hist) > 1 && hist[len(hist)-1].owner != hist[0].owner {
			moved++
		}
		if r.pipeline == "stream_work" {
			continue
		}
		for _, out := range map[string][]string{"sql_work": {"fo/sql/numbers", "fo/sql/totals"}, "py_work": {"fo/py/tagged", "fo/py/counts"}}[r.pipeline] {
			if n := deltaCommits(ctx, t, filepath.Join(project, "output", r.env, out)); n != 1 {
				t.Errorf("run %s wrote %s with %d commits, want 1", r.id, out, n)
			}
		}
	}
	if moved == 0 {
		t.Error("no run moved to another replica: the kills missed every run")
	}
	t.Logf("%d of 20 runs ended on another replica than the one that started them", moved)
}

// claim is one line of a run's lease history.
type claim struct {
	epoch    int64
	owner    string
	acquired time.Time
}

// history is the run's lease history, in epoch order.
func (rs replicaSet) history(ctx context.Context, t *testing.T, runID string) []claim {
	t.Helper()
	conn, err := pgtest.Connect(ctx, rs.url, rs.passwordFile)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT epoch, owner, acquired FROM run_leases WHERE run_id = $1 ORDER BY epoch`, runID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []claim
	for rows.Next() {
		var c claim
		var ns int64
		if err := rows.Scan(&c.epoch, &c.owner, &ns); err != nil {
			t.Fatal(err)
		}
		c.acquired = time.Unix(0, ns)
		out = append(out, c)
	}
	return out
}

// A replica that cannot reach its database reports NOT_SERVING, so a load
// balancer sends calls to the replicas that can.
func TestReplicas_AReplicaIsNotServingWhileItCannotReachTheDatabase(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	c, err := pgtest.Start(ctx) // a cluster of its own, to stop
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = c.Stop(context.Background())
		}
	}()
	d := startDaemon(t, copyProject(t, "sqlproj"), t.TempDir(), "--store", c.URL, "--store-password-file", c.PasswordFile, "--workers", "0")
	conn, err := grpc.NewClient(d.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	waitHealth(ctx, t, hc, healthpb.HealthCheckResponse_SERVING)
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	stopped = true
	waitHealth(ctx, t, hc, healthpb.HealthCheckResponse_NOT_SERVING)
	if !strings.Contains(d.Logs(), "the store does not answer") {
		t.Errorf("the replica did not say why it stopped serving:\n%s", d.Logs())
	}
}
