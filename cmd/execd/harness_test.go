package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
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

	execv1 "github.com/tauro-exec/tauro-exec/gen/tauro/exec/v1"
	"github.com/tauro-exec/tauro-exec/internal/spark/server/sparktest"
	"github.com/tauro-exec/tauro-exec/internal/store/postgres/pgtest"
)

// execdBinary is built once per test binary (or taken from $EXECD).
var (
	buildOnce sync.Once
	execdPath string
	buildErr  error
)

func execdBin(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		if p := os.Getenv("EXECD"); p != "" {
			execdPath = p
			return
		}
		dir, err := os.MkdirTemp("", "execd-bin")
		if err != nil {
			buildErr = err
			return
		}
		execdPath = filepath.Join(dir, "execd")
		out, err := exec.Command("go", "build", "-o", execdPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return execdPath
}

// daemon is an execd process started by a test.
type daemon struct {
	t       testing.TB
	cmd     *exec.Cmd
	addr    string
	metrics string // with --metrics-listen: the metrics endpoint's address
	project string
	state   string
	logs    *strings.Builder
	logMu   *sync.Mutex
	exited  chan struct{}
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
	args = append(args, extra...)
	cmd := exec.Command(execdBin(t), args...)
	cmd.Env = append(os.Environ(), env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	d := &daemon{t: t, cmd: cmd, project: project, state: state, logs: &strings.Builder{}, logMu: &sync.Mutex{}, exited: make(chan struct{})}
	cmd.Stderr = writerFunc(func(p []byte) (int, error) {
		d.logMu.Lock()
		defer d.logMu.Unlock()
		return d.logs.Write(p)
	})
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = cmd.Wait(); close(d.exited) }()
	addrCh := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "execd metrics on "); ok {
				d.metrics = a // printed before the gRPC address, which publishes it
			}
			if a, ok := strings.CutPrefix(sc.Text(), "execd listening on "); ok {
				addrCh <- a
			}
		}
	}()
	select {
	case d.addr = <-addrCh:
	case <-d.exited:
		t.Fatalf("execd exited before listening:\n%s", d.Logs())
	case <-time.After(4 * time.Minute):
		t.Fatalf("execd did not listen within 4 minutes:\n%s", d.Logs())
	}
	t.Cleanup(func() { d.Stop() })
	return d
}

func (d *daemon) Logs() string {
	d.logMu.Lock()
	defer d.logMu.Unlock()
	return d.logs.String()
}

// Stop sends SIGTERM and waits for a graceful exit.
func (d *daemon) Stop() {
	select {
	case <-d.exited:
		return
	default:
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(40 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.exited
		d.t.Errorf("execd did not stop within 40s of SIGTERM:\n%s", d.Logs())
	}
}

// Kill sends SIGKILL: no chance to record anything.
func (d *daemon) Kill() {
	_ = d.cmd.Process.Kill()
	<-d.exited
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

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

var _ io.Writer = writerFunc(nil)

// copyProject copies a testdata project into a temp folder, so outputs and
// state stay out of the tree.
func copyProject(t testing.TB, name string) string {
	t.Helper()
	src := filepath.Join("testdata", name)
	dst := filepath.Join(t.TempDir(), name)
	err := filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if info.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

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

func TestMain(m *testing.M) { os.Exit(pgtest.Main(runFunc(func() int { return sparktest.Main(m) }))) }

// runFunc runs a test binary's tests.
type runFunc func() int

func (f runFunc) Run() int { return f() }
