// Package sparktest gives integration tests a Spark Connect server. If
// TAURO_SPARK_REMOTE is set, tests use that server (the Makefile starts one
// per test run); otherwise the first test that asks starts an embedded server
// from the project venv, shared by the rest of the package's tests and
// stopped by Main.
//
// A test is skipped only when Java or the venv is missing, and fails instead
// when TAURO_REQUIRE_SPARK=1, as in CI.
package sparktest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/apache/spark-connect-go/spark/sql"
	"google.golang.org/grpc"

	sparkserver "github.com/tauro-exec/tauro-exec/internal/spark/server"
	"github.com/tauro-exec/tauro-exec/internal/spark/sparkurl"
)

// Environment variables that steer the tests.
const (
	EnvRemote  = "TAURO_SPARK_REMOTE"  // sc://host:port of a running server
	EnvRequire = "TAURO_REQUIRE_SPARK" // "1": a missing Java or venv fails the test
	EnvPython  = "TAURO_PYTHON"        // the interpreter whose pyspark to use
	EnvUI      = "TAURO_SPARK_UI"      // http://host:port of EnvRemote's Spark UI, when it has one on
)

var (
	once     sync.Once
	server   *sparkserver.Server
	stateDir string
	startErr error
	started  time.Duration
)

// Remote returns the connection string of the test server, starting the
// embedded one on first use.
func Remote(tb testing.TB) string {
	tb.Helper()
	if r := os.Getenv(EnvRemote); r != "" {
		return r
	}
	s := Server(tb)
	return s.Remote()
}

// Session opens a spark-connect-go session on the test server, for tests
// that read what a run wrote. spark-connect-go's own URL parsing would ask
// for TLS whenever the URL has a token, the embedded server's included.
func Session(ctx context.Context, tb testing.TB) sql.SparkSession {
	tb.Helper()
	return SessionAt(ctx, tb, Remote(tb))
}

// SessionAt is Session on the server at remote (one ServerWithUI gave).
func SessionAt(ctx context.Context, tb testing.TB, remote string) sql.SparkSession {
	tb.Helper()
	r, err := sparkurl.Parse(remote)
	if err != nil {
		tb.Fatal(err)
	}
	conn, err := grpc.NewClient(r.Addr, r.DialOptions()...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = conn.Close() })
	spark, err := sql.NewSessionBuilder().WithChannelBuilder(testChannel{conn: conn, headers: r.Headers}).Build(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = spark.Stop() })
	return spark
}

type testChannel struct {
	conn    *grpc.ClientConn
	headers map[string]string
}

func (c testChannel) Build(context.Context) (*grpc.ClientConn, error) { return c.conn, nil }
func (c testChannel) User() string                                    { return "tauro-exec-test" }
func (c testChannel) Headers() map[string]string                      { return c.headers }
func (c testChannel) SessionId() string                               { return "" }
func (c testChannel) UserAgent() string                               { return "tauro-exec/test" }

// Server returns the embedded server this test binary started. Tests that
// need the process itself (to kill it, say) call it; it skips the test when
// TAURO_SPARK_REMOTE points elsewhere.
func Server(tb testing.TB) *sparkserver.Server {
	tb.Helper()
	if r := os.Getenv(EnvRemote); r != "" {
		tb.Skipf("the test needs the embedded server; %s=%s", EnvRemote, r)
	}
	once.Do(start)
	if startErr != nil {
		missing := errors.Is(startErr, sparkserver.ErrJavaMissing) || errors.Is(startErr, sparkserver.ErrSparkMissing)
		if missing && os.Getenv(EnvRequire) != "1" {
			tb.Skipf("no Spark for integration tests (%v); set %s=1 to make this an error", startErr, EnvRequire)
		}
		tb.Fatalf("start Spark Connect: %v", startErr)
	}
	return server
}

// StartTime is how long the embedded server took to start, 0 if it was not
// started here.
func StartTime() time.Duration { return started }

// Main runs the tests and stops the embedded server if one was started:
//
//	func TestMain(m *testing.M) { os.Exit(sparktest.Main(m)) }
func Main(m *testing.M) int {
	code := m.Run()
	if server != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if err := server.Stop(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "sparktest: stop Spark Connect:", err)
		}
		cancel()
	}
	if stateDir != "" {
		_ = os.RemoveAll(stateDir)
	}
	return code
}

func start() {
	python, err := Python()
	if err != nil {
		startErr = err
		return
	}
	stateDir, startErr = os.MkdirTemp("", "tauro-spark-test-")
	if startErr != nil {
		return
	}
	level := slog.LevelWarn
	if testing.Verbose() {
		level = slog.LevelInfo
	}
	began := time.Now()
	server, startErr = sparkserver.Start(context.Background(), sparkserver.Config{
		Python:   python,
		StateDir: stateDir,
		Logger:   slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})),
	})
	started = time.Since(began)
}

// Python returns the interpreter of the project venv (or TAURO_PYTHON).
func Python() (string, error) {
	if p := os.Getenv(EnvPython); p != "" {
		return p, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("%w: no go.mod above the test directory", sparkserver.ErrSparkMissing)
		}
		dir = parent
	}
	py := filepath.Join(dir, ".venv", "bin", "python")
	if _, err := os.Stat(py); err != nil {
		return "", fmt.Errorf("%w: no project venv at %s (run 'make venv')", sparkserver.ErrSparkMissing, py)
	}
	return py, nil
}
