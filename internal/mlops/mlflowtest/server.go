package mlflowtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ErrMissing says that the project venv has no mlflow, as opposed to a
// server that failed to start.
var ErrMissing = errors.New("mlflow not found")

// Timeouts of a test server: MLflow creates its SQLite tables and starts
// uvicorn in about 15 seconds on an idle two-core machine, longer beside a
// starting Spark.
const (
	startTimeout = 2 * time.Minute
	stopGrace    = 20 * time.Second
)

// Server is one MLflow tracking server (`mlflow server`) on a SQLite file
// and a local artifact folder, on a free loopback port.
type Server struct {
	uri     string
	logPath string
	pid     int
	exited  chan struct{}
	err     error
}

// Start starts a tracking server whose database (mlflow.db), artifacts
// (artifacts/) and log (mlflow.log) are in dir, and returns once it answers
// GET /health. dir is the caller's: Stop leaves it. A server that does not
// come up is killed, and the error carries the tail of its log.
func Start(ctx context.Context, dir string) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	return StartOn(ctx, dir, port)
}

// StartOn is Start on a given port: a server stopped and started again on
// its port and folder is the same tracking URI with the same data, as a
// tracking server that was down for a while.
func StartOn(ctx context.Context, dir string, port int) (*Server, error) {
	mlflow, err := Executable()
	if err != nil {
		return nil, err
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return nil, fmt.Errorf("mlflowtest: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("mlflowtest: %w", err)
	}
	s := &Server{
		uri:     "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		logPath: filepath.Join(dir, "mlflow.log"),
		exited:  make(chan struct{}),
	}
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("mlflowtest: %w", err)
	}
	defer logf.Close()

	// One worker: a test run's requests are few, and the machine may have
	// two cores. Artifacts are served by the server itself (3.17's default,
	// said here so that a changed default does not move them).
	cmd := exec.Command(mlflow, "server",
		"--backend-store-uri", "sqlite:///"+filepath.Join(dir, "mlflow.db"),
		"--artifacts-destination", filepath.Join(dir, "artifacts"),
		"--serve-artifacts",
		"--host", "127.0.0.1", "--port", strconv.Itoa(port),
		"--workers", "1")
	cmd.Dir = dir
	// No telemetry, and no job runner (huey consumers the tests never use).
	cmd.Env = append(os.Environ(), "MLFLOW_DISABLE_TELEMETRY=true", "DO_NOT_TRACK=true",
		"MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false")
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group: `mlflow server` runs uvicorn as a child, and
	// Stop ends both.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("mlflowtest: start %s: %w", mlflow, err)
	}
	s.pid = cmd.Process.Pid
	go func() {
		s.err = cmd.Wait()
		close(s.exited)
	}()
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	if err := s.awaitHealthy(ctx); err != nil {
		s.kill()
		return nil, fmt.Errorf("mlflowtest: the tracking server at %s did not come up: %w\n--- last lines of %s ---\n%s",
			s.uri, err, s.logPath, tail(s.logPath, 30))
	}
	return s, nil
}

// Port is the port the server listens on.
func (s *Server) Port() int {
	_, p, _ := net.SplitHostPort(strings.TrimPrefix(s.uri, "http://"))
	n, _ := strconv.Atoi(p)
	return n
}

// URI is the server's tracking URI, http://127.0.0.1:PORT.
func (s *Server) URI() string { return s.uri }

// LogPath is the server's log file.
func (s *Server) LogPath() string { return s.logPath }

// Done is closed when the server's process has exited.
func (s *Server) Done() <-chan struct{} { return s.exited }

// Stop asks the server to shut down and kills it if it has not within the
// grace period or by ctx's end.
func (s *Server) Stop(ctx context.Context) error {
	_ = syscall.Kill(-s.pid, syscall.SIGTERM)
	select {
	case <-s.exited:
		return nil
	case <-ctx.Done():
	case <-time.After(stopGrace):
	}
	s.kill()
	return errors.New("mlflowtest: the tracking server ignored SIGTERM and was killed")
}

func (s *Server) kill() {
	_ = syscall.Kill(-s.pid, syscall.SIGKILL)
	<-s.exited
}

// awaitHealthy polls GET /health until it answers 200.
func (s *Server) awaitHealthy(ctx context.Context) error {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		select {
		case <-s.exited:
			return fmt.Errorf("it exited: %v", s.err)
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("%w (last probe: %v)", ctx.Err(), last)
			}
			return ctx.Err()
		case <-tick.C:
		}
		if last = health(ctx, s.uri); last == nil {
			return nil
		}
	}
}

func health(ctx context.Context, uri string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri+"/health", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /health: %s", resp.Status)
	}
	return nil
}

// Executable returns the mlflow command of the project venv, found above
// the working directory.
func Executable() (string, error) {
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
			return "", fmt.Errorf("%w: no go.mod above the working directory", ErrMissing)
		}
		dir = parent
	}
	mlflow := filepath.Join(dir, ".venv", "bin", "mlflow")
	if _, err := os.Stat(mlflow); err != nil {
		return "", fmt.Errorf("%w: no %s (run 'make venv')", ErrMissing, mlflow)
	}
	return mlflow, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("mlflowtest: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
