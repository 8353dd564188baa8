package main

import (
	"context"
	"io"
	"os"
	"os/exec"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	execv1 "github.com/tauro-exec/tauro-exec/gen/tauro/exec/v1"
	"github.com/tauro-exec/tauro-exec/internal/execdtest"
	"github.com/tauro-exec/tauro-exec/internal/mlops/mlflowtest"
	"github.com/tauro-exec/tauro-exec/internal/spark/server/sparktest"
	"github.com/tauro-exec/tauro-exec/internal/store/postgres/pgtest"
	"github.com/tauro-exec/tauro-exec/internal/streaming/kafkatest"
)

// execdBin is $EXECD, or execd built once per test binary.
func execdBin(t testing.TB) string { return execdtest.Binary(t) }

// daemon is an execd process started by a test, and what it serves.
type daemon struct {
	*execdtest.Daemon
	cmd     *exec.Cmd
	addr    string
	metrics string // with --metrics-listen: the metrics endpoint's address
	project string
	state   string
	exited  <-chan struct{}
}

// startDaemon runs `execd serve` on a free port against project, with the
// test run's Spark server, and waits until it listens.
func startDaemon(t testing.TB, project, state string, extra ...string) *daemon {
	t.Helper()
	return launch(t, project, state, append([]string{"--spark-remote", sparktest.Remote(t)}, extra...)...)
}

// startDaemonEmbedded runs execd with its own embedded Spark server.
func startDaemonEmbedded(t testing.TB, project, state string) *daemon {
	t.Helper()
	py, err := sparktest.Python()
	if err != nil {
		t.Fatal(err)
	}
	return launch(t, project, state, "--python", py)
}

func launch(t testing.TB, project, state string, extra ...string) *daemon {
	t.Helper()
	return launchEnv(t, nil, project, state, extra...)
}

// startProjects runs execd serving the projects of a projects file on the
// test run's Spark.
func startProjects(t testing.TB, file, state string, extra ...string) *daemon {
	t.Helper()
	return launch(t, "", state, append([]string{"--projects", file, "--spark-remote", sparktest.Remote(t)}, extra...)...)
}

// launchEnv is launch with env added to the daemon's environment. An
// empty project leaves --project out (extra names --projects).
func launchEnv(t testing.TB, env []string, project, state string, extra ...string) *daemon {
	t.Helper()
	args := []string{"serve", "--state", state, "--listen", "127.0.0.1:0"}
	if project != "" {
		args = append(args, "--project", project)
	}
	x := execdtest.Launch(t, env, append(args, extra...)...)
	return &daemon{Daemon: x, cmd: x.Cmd, addr: x.Addr, metrics: x.Metrics, project: project, state: state, exited: x.Exited()}
}

func (d *daemon) client(t testing.TB, opts ...grpc.DialOption) execv1.ExecServiceClient {
	t.Helper()
	if len(opts) == 0 {
		opts = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	}
	conn, err := grpc.NewClient(d.addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return execv1.NewExecServiceClient(conn)
}

// copyProject copies a testdata project into a temp folder, so outputs and
// state stay out of the tree.
func copyProject(t testing.TB, name string) string { return execdtest.CopyProject(t, name) }

// startRun executes req and returns the new run's id.
func startRun(ctx context.Context, t testing.TB, cl execv1.ExecServiceClient, req *execv1.ExecutePipelineRequest) string {
	t.Helper()
	resp, err := cl.ExecutePipeline(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetRun().GetRunId()
}

// collect reads a WatchRun stream to its end.
func collect(ctx context.Context, t testing.TB, cl execv1.ExecServiceClient, runID string, after int64) []*execv1.RunEvent {
	t.Helper()
	stream, err := cl.WatchRun(ctx, &execv1.WatchRunRequest{RunId: runID, AfterSequence: after})
	if err != nil {
		t.Fatal(err)
	}
	var out []*execv1.RunEvent
	for {
		resp, err := stream.Recv()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("watch: %v", err)
		}
		out = append(out, resp.GetEvent())
	}
}

// The servers a test binary started for itself (PostgreSQL, MLflow,
// Spark, Kafka) are stopped after its tests.
func TestMain(m *testing.M) {
	code := pgtest.Main(runFunc(func() int {
		return mlflowtest.Main(runFunc(func() int { return sparktest.Main(m) }))
	}))
	kafkatest.Stop()
	os.Exit(code)
}

// runFunc runs a test binary's tests.
type runFunc func() int

func (f runFunc) Run() int { return f() }
