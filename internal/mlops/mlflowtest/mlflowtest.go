// Package mlflowtest gives tests an MLflow tracking server: the project
// venv's `mlflow server` on a SQLite file and a local artifact folder, on a
// free loopback port. `make test` runs one for the whole test run (command
// testmlflow) and hands it to every test binary as TAURO_MLFLOW_URI;
// otherwise the first test that asks starts one, shared by the rest of the
// test binary's tests and stopped by Main.
//
// A test is skipped only when the venv has no mlflow; with
// TAURO_REQUIRE_MLFLOW=1 (as `make test` sets) a missing server fails it.
package mlflowtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"
)

// The variables that name the test run's server.
const (
	EnvURI = "TAURO_MLFLOW_URI" // http://host:port of a running tracking server
	// EnvRequire set to 1 (as `make test` does) makes a missing server a
	// failure instead of a reason to start one.
	EnvRequire = "TAURO_REQUIRE_MLFLOW"
)

// shared is the server a test binary started itself, when the test run
// named none.
var shared struct {
	once sync.Once
	s    *Server
	dir  string
	err  error
}

// Main runs a test binary's tests and stops the server they started, if
// any. Call it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(mlflowtest.Main(m)) }
func Main(m interface{ Run() int }) int {
	code := m.Run()
	if shared.s != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := shared.s.Stop(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "mlflowtest: stopping MLflow:", err)
		}
		cancel()
	}
	if shared.dir != "" {
		_ = os.RemoveAll(shared.dir)
	}
	return code
}

// URI returns the test run's tracking server: the one `make test` names, or
// one started for this test binary the first time a test asks (a developer
// running go test by hand).
func URI(tb testing.TB) string {
	tb.Helper()
	if u := os.Getenv(EnvURI); u != "" {
		return u
	}
	if os.Getenv(EnvRequire) == "1" {
		tb.Fatalf("%s is not set but %s=1: make test starts the tracking server", EnvURI, EnvRequire)
	}
	shared.once.Do(func() {
		if shared.dir, shared.err = os.MkdirTemp("", "tauro-mlflow-test-"); shared.err == nil {
			shared.s, shared.err = Start(context.Background(), shared.dir)
		}
	})
	check(tb, shared.err)
	return shared.s.URI()
}

// check skips the test when the venv has no mlflow, unless the run
// requires one, and fails it on any other error.
func check(tb testing.TB, err error) {
	tb.Helper()
	if err == nil {
		return
	}
	if errors.Is(err, ErrMissing) && os.Getenv(EnvRequire) != "1" {
		tb.Skipf("no MLflow for the tests (%v); set %s=1 to make this an error", err, EnvRequire)
	}
	tb.Fatalf("starting an MLflow tracking server for the tests: %v", err)
}

// Own starts a tracking server of the test's own, in dir, on port (0: a
// free one), for a test that stops it and starts it again on that port
// (StartOn): the shared one must stay up. It is stopped when the test ends.
func Own(tb testing.TB, dir string, port int) *Server {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var (
		srv *Server
		err error
	)
	if port == 0 {
		srv, err = Start(ctx, dir)
	} else {
		srv, err = StartOn(ctx, dir, port)
	}
	check(tb, err)
	tb.Cleanup(func() { _ = srv.Stop(context.Background()) })
	return srv
}
