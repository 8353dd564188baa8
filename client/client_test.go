package client_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tauro-exec/tauro-exec/client"
	"github.com/tauro-exec/tauro-exec/internal/execdtest"
	"github.com/tauro-exec/tauro-exec/internal/spark/server/sparktest"
	"github.com/tauro-exec/tauro-exec/internal/testcerts"
)

func TestMain(m *testing.M) { os.Exit(sparktest.Main(m)) }

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func dial(ctx context.Context, t *testing.T, addr string, opts ...client.Option) *client.Client {
	t.Helper()
	c, err := client.Dial(ctx, addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// watchAll collects a watch to its end; the test fails on an error.
func watchAll(t *testing.T, events func(func(client.Event, error) bool), each func(client.Event)) []client.Event {
	t.Helper()
	var out []client.Event
	for ev, err := range events {
		if err != nil {
			t.Fatalf("watch after %d events: %v", len(out), err)
		}
		out = append(out, ev)
		if each != nil {
			each(ev)
		}
	}
	return out
}

// checkSequences checks that a watch saw 1, 2, 3... with no gap or
// repeat, and ended on the run's terminal state.
func checkSequences(t *testing.T, evs []client.Event, want client.RunState) {
	t.Helper()
	for i, ev := range evs {
		if ev.Sequence != int64(i+1) {
			t.Fatalf("event %d has sequence %d: sequences must be 1, 2, 3... (%v)", i, ev.Sequence, sequences(evs))
		}
	}
	if len(evs) == 0 {
		t.Fatal("no events")
	}
	last, ok := evs[len(evs)-1].Change.(*client.RunStateChanged)
	if !ok || last.State != want {
		t.Fatalf("the last event is %#v, want the run %v", evs[len(evs)-1].Change, want)
	}
}

func sequences(evs []client.Event) []int64 {
	out := make([]int64, len(evs))
	for i, ev := range evs {
		out[i] = ev.Sequence
	}
	return out
}

func TestExecute_WatchFollowsTheRunToItsEnd(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	d := execdtest.Start(t, execdtest.CopyProject(t, "sqlproj"), t.TempDir(), "127.0.0.1:0", nil)
	c := dial(ctx, t, d.Addr)

	run, err := c.Execute(ctx, "quick", client.ExecuteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	evs := watchAll(t, run.Watch(ctx), nil)
	checkSequences(t, evs, client.RunSucceeded)
	succeeded := map[string]bool{}
	for _, ev := range evs {
		if n, ok := ev.Change.(*client.NodeStateChanged); ok && n.State == client.NodeSucceeded {
			succeeded[n.Node] = true
		}
	}
	for _, n := range []string{"numbers", "evens", "odds", "summary"} {
		if !succeeded[n] {
			t.Errorf("no SUCCEEDED event for node %s", n)
		}
	}
	final, err := run.Wait(ctx)
	if err != nil || final.GetState() != client.RunSucceeded {
		t.Fatalf("Wait = %v, %v", final.GetState(), err)
	}
	var listed []string
	for r, err := range c.Runs(ctx, client.RunsOptions{Pipeline: "quick", PageSize: 1}) {
		if err != nil {
			t.Fatal(err)
		}
		listed = append(listed, r.ID())
	}
	if len(listed) != 1 || listed[0] != run.ID() {
		t.Errorf("Runs listed %v, want [%s]", listed, run.ID())
	}
}

// proxy forwards TCP connections to a target until Cut closes every one.
type proxy struct {
	ln       net.Listener
	target   string
	mu       sync.Mutex
	conns    []net.Conn
	accepted int
}

func startProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	t.Cleanup(func() { _ = ln.Close(); p.Cut() })
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				_ = in.Close()
				continue
			}
			p.mu.Lock()
			p.conns, p.accepted = append(p.conns, in, out), p.accepted+1
			p.mu.Unlock()
			go func() { _, _ = io.Copy(out, in); _ = out.Close() }()
			go func() { _, _ = io.Copy(in, out); _ = in.Close() }()
		}
	}()
	return p
}

func (p *proxy) Addr() string { return p.ln.Addr().String() }

func (p *proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

func (p *proxy) Accepted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted
}

func TestWatch_ResumesAfterAProxyCutsTheConnectionMidRun(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	d := execdtest.Start(t, execdtest.CopyProject(t, "sqlproj"), t.TempDir(), "127.0.0.1:0", []string{"NAP_MS=4000"})
	p := startProxy(t, d.Addr)
	c := dial(ctx, t, p.Addr())

	run, err := c.Execute(ctx, "slow", client.ExecuteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cut := false
	evs := watchAll(t, run.Watch(ctx), func(ev client.Event) {
		if n, ok := ev.Change.(*client.NodeStateChanged); ok && n.Node == "nap" && n.State == client.NodeRunning && !cut {
			cut = true
			p.Cut() // mid-nap: the rest of the run comes after the cut
		}
	})
	if !cut {
		t.Fatal("the nap node never ran")
	}
	checkSequences(t, evs, client.RunSucceeded)
	if p.Accepted() < 2 {
		t.Errorf("the proxy accepted %d connections: the watch did not reconnect", p.Accepted())
	}
}

func TestWatch_ResumesAcrossAnExecdRestart(t *testing.T) {
	ctx := testCtx(t, 90*time.Second)
	project, state := execdtest.CopyProject(t, "sqlproj"), t.TempDir()
	// One run at a time: the quick run waits QUEUED behind the slow one,
	// and a queued run survives a graceful stop (a running one ends
	// INTERRUPTED), so its events go on after the restart. execd's graceful
	// stop waits for open calls, the watch among them, up to its shutdown
	// timeout before it cuts them.
	args := []string{"--max-concurrent-runs", "1", "--shutdown-timeout", "5s"}
	env := []string{"NAP_MS=5000"}
	d := execdtest.Start(t, project, state, "127.0.0.1:0", env, args...)
	c := dial(ctx, t, d.Addr)

	slow, err := c.Execute(ctx, "slow", client.ExecuteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for ev, err := range slow.Watch(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		if r, ok := ev.Change.(*client.RunStateChanged); ok && r.State == client.RunRunning {
			break
		}
	}
	queued, err := c.Execute(ctx, "quick", client.ExecuteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if s := queued.Snapshot().GetState(); s != client.RunQueued {
		t.Fatalf("the second run is %v, want QUEUED behind the first", s)
	}

	var evs []client.Event
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev, err := range queued.Watch(ctx) {
			if err != nil {
				t.Errorf("watch across the restart, after %v: %v", sequences(evs), err)
				return
			}
			evs = append(evs, ev)
		}
	}()
	time.Sleep(500 * time.Millisecond) // the watch is following live
	stopped := time.Now()
	d.Stop()
	restarted := time.Now()
	d2 := execdtest.Start(t, project, state, d.Addr, env, args...)
	t.Logf("execd stopped in %v, listened again in %v", restarted.Sub(stopped).Round(time.Millisecond), time.Since(restarted).Round(time.Millisecond))
	<-done
	if t.Failed() {
		t.Fatalf("execd after the restart:\n%s", d2.Logs())
	}
	checkSequences(t, evs, client.RunSucceeded)
	queuedAt := -1
	for i, ev := range evs {
		if r, ok := ev.Change.(*client.RunStateChanged); ok && r.State == client.RunQueued {
			queuedAt = i
		}
	}
	if queuedAt < 0 || !evs[queuedAt].Time.Before(stopped) {
		t.Errorf("the watch did not see the run QUEUED before the restart: %v", evs)
	}
	if !evs[len(evs)-1].Time.After(restarted) {
		t.Errorf("the run ended at %v, before the restart at %v: nothing was followed across it", evs[len(evs)-1].Time, restarted)
	}
	if got, err := slow.Get(ctx); err != nil || got.GetState() != client.RunInterrupted {
		t.Errorf("the slow run is %v (%v), want INTERRUPTED by the graceful stop", got.GetState(), err)
	}
}

func TestWait_AFailingPipelineNamesTheNodesErrorAndTraceback(t *testing.T) {
	py, err := sparktest.Python()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		project, node, errType, message string
		traceback                       string // what the traceback must hold; SQL nodes have none
		args                            []string
	}{
		// A Python node's exception, raised two frames down.
		{"pyproj", "explode", "ValueError", "boom from python", "_deeper", []string{"--python", py, "--workers", "1"}},
		// Spark refusing a SQL node's query.
		{"sqlproj", "boom", "USER_RAISED_EXCEPTION", "boom at 10", "", nil},
	} {
		t.Run(tc.project, func(t *testing.T) {
			ctx := testCtx(t, 60*time.Second)
			d := execdtest.Start(t, execdtest.CopyProject(t, tc.project), t.TempDir(), "127.0.0.1:0", nil, tc.args...)
			c := dial(ctx, t, d.Addr)

			run, err := c.Execute(ctx, "failing", client.ExecuteOptions{})
			if err != nil {
				t.Fatal(err)
			}
			_, err = run.Wait(ctx)
			var failed *client.RunFailedError
			if !errors.As(err, &failed) {
				t.Fatalf("Wait returned %v, want a *RunFailedError", err)
			}
			if failed.State != client.RunFailed || failed.RunID != run.ID() || failed.Pipeline != "failing" {
				t.Errorf("RunFailedError for run %s of %s in state %v", failed.RunID, failed.Pipeline, failed.State)
			}
			if len(failed.Failures) != 1 || failed.Failures[0].Node != tc.node {
				t.Fatalf("failures %+v, want node %s only (what follows it is skipped)", failed.Failures, tc.node)
			}
			ne := failed.Failures[0].Error
			if ne.Type != tc.errType || !strings.Contains(ne.Message, tc.message) || !strings.Contains(ne.Traceback, tc.traceback) {
				t.Errorf("%s's error is %+v, want a %s saying %q with %q in its traceback", tc.node, ne, tc.errType, tc.message, tc.traceback)
			}
			if !strings.Contains(err.Error(), "node "+tc.node+": "+tc.errType) || !strings.Contains(err.Error(), tc.traceback) {
				t.Errorf("the error does not name the node's error and traceback:\n%v", err)
			}
			t.Logf("%v", err)
		})
	}
}

func TestExecute_AViewerTokenIsATypedPermissionError(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	tokens := filepath.Join(t.TempDir(), "tokens.jsonl")
	out, err := exec.Command(execdtest.Binary(t), "token", "--name", "v", "--role", "viewer", "--append", tokens).Output()
	if err != nil {
		t.Fatalf("execd token: %v", err)
	}
	d := execdtest.Start(t, execdtest.CopyProject(t, "sqlproj"), t.TempDir(), "127.0.0.1:0", nil, "--tokens", tokens)

	if _, err := client.Dial(ctx, d.Addr, client.WithToken("not-a-token")); !errors.Is(err, client.ErrUnauthenticated) {
		t.Errorf("Dial with a wrong token: %v, want ErrUnauthenticated", err)
	}
	c := dial(ctx, t, d.Addr, client.WithToken(strings.TrimSpace(string(out))))
	_, err = c.Execute(ctx, "quick", client.ExecuteOptions{})
	var denied *client.PermissionDeniedError
	if !errors.As(err, &denied) || !errors.Is(err, client.ErrPermissionDenied) {
		t.Fatalf("a viewer's Execute: %v, want a *PermissionDeniedError", err)
	}
	if denied.Role != "viewer" || denied.RequiredRole != "operator" {
		t.Errorf("PermissionDeniedError role %q, required %q; want viewer, operator", denied.Role, denied.RequiredRole)
	}
	if _, err := c.Validate(ctx, "quick", client.ValidateOptions{}); err != nil {
		t.Errorf("a viewer may validate: %v", err)
	}
}

func TestValidate_ReturnsEveryProblemWithItsFieldPath(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	d := execdtest.Start(t, execdtest.CopyProject(t, "sqlproj"), t.TempDir(), "127.0.0.1:0", nil)
	c := dial(ctx, t, d.Addr)

	_, err := c.Validate(ctx, "broken", client.ValidateOptions{})
	var invalid *client.InvalidArgumentError
	if !errors.As(err, &invalid) || !errors.Is(err, client.ErrInvalidArgument) {
		t.Fatalf("Validate(broken): %v, want an *InvalidArgumentError", err)
	}
	byReason := map[string][]string{}
	for _, p := range invalid.Problems {
		if p.Field == "" || p.Reason == "" || p.Message == "" {
			t.Errorf("problem lacks a field path, reason or message: %+v", p)
		}
		byReason[p.Reason] = append(byReason[p.Reason], p.Field)
		if !strings.Contains(err.Error(), p.String()) {
			t.Errorf("the error does not list %s", p)
		}
	}
	for _, want := range []string{"CYCLE", "UNKNOWN_DEPENDENCY", "INVALID_OUTPUT_KEY"} {
		if len(byReason[want]) == 0 {
			t.Errorf("no %s problem among %v", want, invalid.Problems)
		}
	}
	t.Logf("%v", err)
	plan, err := c.Validate(ctx, "quick", client.ValidateOptions{})
	if err != nil || len(plan.GetOrder()) != 4 {
		t.Errorf("Validate(quick) = %v, %v; want a plan of 4 nodes", plan.GetOrder(), err)
	}
}

func TestExperiment_WatchAndWaitFollowASearchToItsBestTrial(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	py, err := sparktest.Python()
	if err != nil {
		t.Fatal(err)
	}
	// The workers' tauro_exec is this repository's (the shared venv's may
	// be another checkout's).
	env := []string{"PYTHONPATH=" + filepath.Join(execdtest.Root(), "clients", "python", "src")}
	d := execdtest.Start(t, execdtest.CopyProject(t, "expproj"), t.TempDir(), "127.0.0.1:0", env, "--python", py, "--workers", "2")
	c := dial(ctx, t, d.Addr)

	x, err := c.RunExperiment(ctx, client.ExperimentOptions{Declared: "quadratic", Trials: 3})
	if err != nil {
		t.Fatal(err)
	}
	var seqs []int64
	ended := 0
	for ev, err := range x.Watch(ctx) {
		if err != nil {
			t.Fatalf("watch after %v: %v", seqs, err)
		}
		seqs = append(seqs, ev.Sequence)
		if tr, ok := ev.Change.(*client.TrialStateChanged); ok && tr.Trial.GetState() != client.TrialRunning {
			ended++
		}
	}
	for i, s := range seqs {
		if s != int64(i+1) {
			t.Fatalf("experiment sequences %v, want 1, 2, 3...", seqs)
		}
	}
	if ended != 3 {
		t.Errorf("%d trials ended, want 3", ended)
	}
	final, err := x.Wait(ctx)
	if err != nil || final.GetBest() == nil {
		t.Fatalf("Wait = %v (best %v), %v", final.GetState(), final.GetBest(), err)
	}
	var listed []string
	for e, err := range c.Experiments(ctx, client.ExperimentsOptions{}) {
		if err != nil {
			t.Fatal(err)
		}
		listed = append(listed, e.ID())
	}
	if len(listed) != 1 || listed[0] != x.ID() {
		t.Errorf("Experiments listed %v, want [%s]", listed, x.ID())
	}
}

func TestCancelAndRepair_ACancelledRunRepairedSucceeds(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	d := execdtest.Start(t, execdtest.CopyProject(t, "sqlproj"), t.TempDir(), "127.0.0.1:0", []string{"NAP_MS=3000"})
	c := dial(ctx, t, d.Addr)

	run, err := c.Execute(ctx, "slow", client.ExecuteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for ev, err := range run.Watch(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		if n, ok := ev.Change.(*client.NodeStateChanged); ok && n.Node == "nap" && n.State == client.NodeRunning {
			break
		}
	}
	if _, err := run.Cancel(ctx, "the test cancels it"); err != nil {
		t.Fatal(err)
	}
	_, err = run.Wait(ctx)
	var failed *client.RunFailedError
	if !errors.As(err, &failed) || failed.State != client.RunCancelled {
		t.Fatalf("Wait after Cancel: %v, want a *RunFailedError in state CANCELLED", err)
	}
	if _, err := run.Repair(ctx); err != nil {
		t.Fatal(err)
	}
	if final, err := run.Wait(ctx); err != nil || final.GetRepairCount() != 1 {
		t.Fatalf("Wait after Repair: %v (repairs %d)", err, final.GetRepairCount())
	}
	if _, err := c.Run("run-that-is-not").Get(ctx); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("Get of an unknown run: %v, want ErrNotFound", err)
	}
}

func TestUnavailable_ReadsAndExecuteAreRetriedCancelIsNot(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	project, state := execdtest.CopyProject(t, "sqlproj"), t.TempDir()
	d := execdtest.Start(t, project, state, "127.0.0.1:0", nil)
	c := dial(ctx, t, d.Addr)
	d.Stop()

	began := time.Now()
	if _, err := c.Run("run-x").Cancel(ctx, ""); !errors.Is(err, client.ErrUnavailable) {
		t.Errorf("Cancel with execd down: %v, want ErrUnavailable", err)
	}
	if took := time.Since(began); took > 3*time.Second {
		t.Errorf("Cancel with execd down took %v: it must not be retried", took)
	}

	type result struct {
		run *client.Run
		err error
	}
	started := make(chan result, 1)
	go func() {
		r, err := c.Execute(ctx, "quick", client.ExecuteOptions{})
		started <- result{r, err}
	}()
	time.Sleep(time.Second) // Execute meets UNAVAILABLE and retries
	execdtest.Start(t, project, state, d.Addr, nil)
	res := <-started
	if res.err != nil {
		t.Fatalf("Execute while execd restarts: %v", res.err)
	}
	if _, err := res.run.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, err := range c.Runs(ctx, client.RunsOptions{}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 1 {
		t.Errorf("%d runs listed, want the one Execute started once", n)
	}
}

func TestDial_MutualTLSWithATokenSource(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	files, err := testcerts.Generate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tokens := filepath.Join(t.TempDir(), "tokens.jsonl")
	out, err := exec.Command(execdtest.Binary(t), "token", "--name", "svc", "--role", "operator", "--append", tokens).Output()
	if err != nil {
		t.Fatalf("execd token: %v", err)
	}
	d := execdtest.Start(t, execdtest.CopyProject(t, "sqlproj"), t.TempDir(), "127.0.0.1:0", nil,
		"--tokens", tokens, "--tls-cert", files.ServerCert, "--tls-key", files.ServerKey, "--client-ca", files.CA)
	caPEM, err := os.ReadFile(files.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	cert, err := tls.LoadX509KeyPair(files.ClientCert, files.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	var asked atomic.Int32
	src := func(context.Context) (string, error) { asked.Add(1); return strings.TrimSpace(string(out)), nil }

	c := dial(ctx, t, d.Addr, client.WithRootCAs(pool), client.WithClientCertificate(cert), client.WithTokenSource(src))
	caller, err := c.Caller(ctx)
	if err != nil || caller.GetName() != "svc" {
		t.Fatalf("Caller = %q, %v; want the token's name svc", caller.GetName(), err)
	}
	if _, err := c.Validate(ctx, "quick", client.ValidateOptions{}); err != nil {
		t.Fatal(err)
	}
	if n := asked.Load(); n < 3 {
		t.Errorf("the token source was asked %d times for 3 calls: it must be asked on each", n)
	}
}
