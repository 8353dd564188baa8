// Package execdtest starts a real execd for the tests of the packages that
// call it from outside (the Go client, the examples): `execd serve` on the
// test run's Spark (sparktest), as cmd/execd's own tests do.
package execdtest

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/spark/server/sparktest"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Root is the repository's folder.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Binary is $EXECD, or execd built once per test binary.
func Binary(tb testing.TB) string {
	tb.Helper()
	buildOnce.Do(func() {
		if p := os.Getenv("EXECD"); p != "" {
			binPath = p
			return
		}
		dir, err := os.MkdirTemp("", "execd-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "execd")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/execd")
		cmd.Dir = Root()
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/execd: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		tb.Fatal(buildErr)
	}
	return binPath
}

// Daemon is an execd process a test started.
type Daemon struct {
	// Addr is where it serves; Metrics its metrics endpoint (with
	// --metrics-listen).
	Addr, Metrics string
	// Cmd is its process.
	Cmd    *exec.Cmd
	tb     testing.TB
	mu     sync.Mutex
	logs   strings.Builder
	exited chan struct{}
}

// Start runs `execd serve --project project --state state` on the test
// run's Spark with --workers 0 (SQL-only projects), listening on listen
// ("127.0.0.1:0" picks a port), and waits until it listens. env is added
// to its environment; extra to its arguments.
func Start(tb testing.TB, project, state, listen string, env []string, extra ...string) *Daemon {
	tb.Helper()
	return Launch(tb, env, append([]string{"serve", "--project", project, "--state", state, "--listen", listen,
		"--spark-remote", sparktest.Remote(tb), "--workers", "0"}, extra...)...)
}

// Launch runs execd with args (`serve` and its flags) and env added to its
// environment, and waits until it listens; it is stopped when the test
// ends.
func Launch(tb testing.TB, env []string, args ...string) *Daemon {
	tb.Helper()
	d := &Daemon{tb: tb, Cmd: exec.Command(Binary(tb), args...), exited: make(chan struct{})}
	d.Cmd.Env = append(os.Environ(), env...)
	stdout, err := d.Cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	d.Cmd.Stderr = writerFunc(func(p []byte) (int, error) {
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.logs.Write(p)
	})
	if err := d.Cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	go func() { _ = d.Cmd.Wait(); close(d.exited) }()
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "execd metrics on "); ok {
				d.Metrics = a // printed before the gRPC address, which publishes it
			}
			if a, ok := strings.CutPrefix(sc.Text(), "execd listening on "); ok {
				addr <- a
			}
		}
	}()
	select {
	case d.Addr = <-addr:
	case <-d.exited:
		tb.Fatalf("execd exited before listening:\n%s", d.Logs())
	case <-time.After(4 * time.Minute): // an embedded Spark starts first
		tb.Fatalf("execd did not listen within 4 minutes:\n%s", d.Logs())
	}
	tb.Cleanup(d.Stop)
	return d
}

// Exited is closed once the process has exited.
func (d *Daemon) Exited() <-chan struct{} { return d.exited }

// Logs is what execd wrote to stderr.
func (d *Daemon) Logs() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.logs.String()
}

// Stop sends SIGTERM and waits for a graceful exit.
func (d *Daemon) Stop() {
	select {
	case <-d.exited:
		return
	default:
	}
	_ = d.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(40 * time.Second):
		_ = d.Cmd.Process.Kill()
		<-d.exited
		d.tb.Errorf("execd did not stop within 40s of SIGTERM:\n%s", d.Logs())
	}
}

// Kill sends SIGKILL: execd records nothing more.
func (d *Daemon) Kill() {
	_ = d.Cmd.Process.Kill()
	<-d.exited
}

// CopyProject copies a project of cmd/execd/testdata into a temp folder,
// so outputs and state stay out of the tree.
func CopyProject(tb testing.TB, name string) string {
	tb.Helper()
	src := filepath.Join(Root(), "cmd", "execd", "testdata", name)
	dst := filepath.Join(tb.TempDir(), name)
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		tb.Fatal(err)
	}
	return dst
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
