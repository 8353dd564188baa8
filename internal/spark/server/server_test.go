package server_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/retry"
	sparkconnect "github.com/tauro-exec/tauro-exec/internal/spark/connect"
	sparkserver "github.com/tauro-exec/tauro-exec/internal/spark/server"
	"github.com/tauro-exec/tauro-exec/internal/spark/server/sparktest"
	"github.com/tauro-exec/tauro-exec/internal/spark/sparkurl"
)

// config returns a Config for a server of this test's own: these tests kill
// and stop it, so they never share the run's server.
func config(t *testing.T) sparkserver.Config {
	t.Helper()
	python, err := sparktest.Python()
	if err == nil {
		_, err = sparkserver.CheckJava(context.Background(), "")
	}
	if err != nil {
		if os.Getenv(sparktest.EnvRequire) == "1" {
			t.Fatal(err)
		}
		t.Skipf("no Spark for integration tests: %v", err)
	}
	return sparkserver.Config{
		Python:       python,
		StateDir:     t.TempDir(),
		RestartDelay: 100 * time.Millisecond,
		StopGrace:    10 * time.Second,
		Logger:       slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})),
	}
}

func TestServer_AnswersQueriesRestartsAfterKillAndStopsCleanly(t *testing.T) {
	cfg := config(t)
	ctx := context.Background()

	began := time.Now()
	s, err := sparkserver.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("started in %v at %s", time.Since(began).Round(time.Millisecond), s.Remote())
	if !strings.HasPrefix(s.Remote(), "sc://localhost:") || !strings.Contains(s.Remote(), "/;token=") {
		t.Errorf("Remote() = %q, want sc://localhost:PORT/;token=TOKEN", sparkurl.Redact(s.Remote()))
	}
	if !s.Healthy() {
		t.Error("not healthy after Start")
	}
	// The venv's jars (make venv) are found beside the interpreter.
	if _, err := os.Stat(filepath.Join(filepath.Dir(filepath.Dir(cfg.Python)), sparkserver.JarsDirName)); err == nil {
		if !sparkserver.HasDelta(s.Jars()) || !sparkserver.HasAvro(s.Jars()) {
			t.Errorf("Jars() = %v, want the venv's Delta Lake and Avro jars", s.Jars())
		}
	}
	if err := sparkserver.Ping(ctx, s.Remote()); err != nil {
		t.Fatalf("SELECT 1: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(cfg.StateDir, "spark", "connect.log")); err != nil || fi.Size() == 0 {
		t.Errorf("no server log under the state dir: %v", err)
	}

	// A run's session with a long query in flight when the server dies.
	sess, err := sparkconnect.Connect(ctx, s.Remote(), sparkconnect.Config{RunID: "killed"})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close(ctx)
	if err := sess.RegisterInput(ctx, sparkconnect.InputSpec{Key: "one", Format: "query", Query: "SELECT 1 AS x"}, nil); err != nil {
		t.Fatal(err)
	}
	inFlight := make(chan error, 1)
	go func() {
		_, err := sess.RunSQL(ctx, sparkconnect.NodeSpec{Name: "long", SQL: "SELECT count(*) FROM range(1000000000000)",
			Outputs: []sparkconnect.OutputSpec{{Key: "long", Format: "parquet", Path: filepath.Join(cfg.StateDir, "long")}}}, nil)
		inFlight <- err
	}()
	time.Sleep(2 * time.Second) // let the write start; a query that has not started fails the same way

	// kill -9: the supervisor notices, reports unhealthy, restarts it.
	healthy, changed := s.Health()
	if !healthy {
		t.Fatal("not healthy")
	}
	first := s.PID()
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-inFlight:
		if retry.Classify(err) != retry.ClassTransient {
			t.Errorf("the query in flight when Spark died failed with %v (class %v), want a transient error", err, retry.Classify(err))
		}
	case <-time.After(30 * time.Second):
		t.Error("the query in flight did not fail within 30s of the server's death")
	}
	select {
	case <-changed:
	case <-time.After(30 * time.Second):
		t.Fatal("health did not change within 30s of kill -9")
	}
	if h, _ := s.Health(); h {
		t.Fatal("healthy right after kill -9")
	}
	killed := time.Now()
	for !s.Healthy() {
		if time.Since(killed) > 3*time.Minute {
			t.Fatal("not restarted within 3 minutes")
		}
		_, changed = s.Health()
		select {
		case <-changed:
		case <-time.After(time.Second):
		}
	}
	t.Logf("healthy again %v after kill -9", time.Since(killed).Round(time.Millisecond))
	second := s.PID()
	if second == first || second == 0 {
		t.Errorf("PID after restart = %d, first was %d", second, first)
	}
	if s.Restarts() != 1 {
		t.Errorf("Restarts() = %d, want 1", s.Restarts())
	}
	if err := sparkserver.Ping(ctx, s.Remote()); err != nil {
		t.Fatalf("SELECT 1 after restart: %v", err)
	}
	// The old session's views died with the server: its next call says so,
	// retryably, and a new session works.
	_, err = sess.RunSQL(ctx, sparkconnect.NodeSpec{Name: "after", SQL: "SELECT x FROM one"}, nil)
	if !errors.Is(err, sparkconnect.ErrSessionLost) || retry.Classify(err) != retry.ClassTransient {
		t.Errorf("the old session after a restart: %v, want a transient ErrSessionLost", err)
	}
	fresh, err := sparkconnect.Connect(ctx, s.Remote(), sparkconnect.Config{RunID: "fresh"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fresh.RunSQL(ctx, sparkconnect.NodeSpec{Name: "n", SQL: "SELECT 1 AS x"}, nil); err != nil {
		t.Errorf("a new session after the restart: %v", err)
	}
	if err := fresh.Close(ctx); err != nil {
		t.Error(err)
	}

	stopCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := s.Stop(stopCtx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	select {
	case <-s.Done():
	default:
		t.Fatal("Done not closed after Stop")
	}
	if err := s.Wait(); err != nil {
		t.Errorf("Wait after Stop = %v, want nil", err)
	}
	for _, pid := range []int{first, second} {
		if err := syscall.Kill(-pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process group %d still exists after Stop (kill -0: %v)", pid, err)
		}
	}
	if s.Healthy() {
		t.Error("healthy after Stop")
	}
}

func TestStart_FailsWithTheLogTailWhenTheServerCannotStart(t *testing.T) {
	cfg := config(t)
	cfg.Conf = map[string]string{"spark.driver.memory": "lots"}
	_, err := sparkserver.Start(context.Background(), cfg)
	if err == nil {
		t.Fatal("Start succeeded with an invalid driver memory")
	}
	msg := err.Error()
	for _, want := range []string{"did not come up", "last lines of", "connect.log"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	t.Log(msg)
}

func TestStart_NamesAMissingSparkHome(t *testing.T) {
	_, err := sparkserver.Start(context.Background(), sparkserver.Config{SparkHome: t.TempDir(), StateDir: t.TempDir()})
	if !errors.Is(err, sparkserver.ErrSparkMissing) && !errors.Is(err, sparkserver.ErrJavaMissing) {
		t.Fatalf("Start = %v, want ErrSparkMissing", err)
	}
}

func TestStart_WithoutJarsStartsAndDeltaAndAvroFailWithSparksError(t *testing.T) {
	cfg := config(t)
	cfg.Jars = []string{}
	ctx := context.Background()
	s, err := sparkserver.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop(ctx)
	if len(s.Jars()) != 0 {
		t.Errorf("Jars() = %v, want none", s.Jars())
	}
	sess, err := sparkconnect.Connect(ctx, s.Remote(), sparkconnect.Config{RunID: "nojars"})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close(ctx)
	for _, format := range []string{"delta", "avro"} {
		_, err := sess.RunSQL(ctx, sparkconnect.NodeSpec{Name: "n_" + format, SQL: "SELECT 1 AS x",
			Outputs: []sparkconnect.OutputSpec{{Key: "o", Format: format, Path: filepath.Join(t.TempDir(), format)}}}, nil)
		var se *sparkconnect.Error
		if !errors.As(err, &se) || se.Retryable() {
			t.Errorf("%s without its jar: %v, want a permanent *sparkconnect.Error", format, err)
			continue
		}
		if !strings.Contains(se.Message, format) || !strings.Contains(se.Message, "make venv") {
			t.Errorf("%s without its jar: %q, want Spark's message naming %s and the hint 'make venv'", format, se.Message, format)
		}
		t.Logf("%s: class %s: %s", format, se.Class, se.Message)
	}
}

// A server on loopback is reachable by every local user; only a client
// with its token may use it, and the token shows in no command line and
// no log.
func TestServer_RefusesClientsWithoutItsTokenAndKeepsItOutOfPsAndLogs(t *testing.T) {
	cfg := config(t)
	cfg.Jars = []string{} // starts faster; the token has nothing to do with jars
	ctx := context.Background()
	s, err := sparkserver.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(context.Background()) })
	r, err := sparkurl.Parse(s.Remote())
	if err != nil {
		t.Fatal(err)
	}
	if r.Token == "" || r.TLS {
		t.Fatalf("Remote() = %s: want a token, sent without TLS on loopback", sparkurl.Redact(s.Remote()))
	}
	_, port, _ := strings.Cut(r.Addr, ":")

	pingCtx := func() context.Context {
		c, cancel := context.WithTimeout(ctx, 30*time.Second)
		t.Cleanup(cancel)
		return c
	}
	if err := sparkserver.Ping(pingCtx(), s.Remote()); err != nil {
		t.Fatalf("a client with the token: %v", err)
	}
	for name, remote := range map[string]string{
		"no token":    "sc://127.0.0.1:" + port,
		"wrong token": "sc://127.0.0.1:" + port + "/;token=" + sparkserver.NewToken(),
	} {
		err := sparkserver.Ping(pingCtx(), remote)
		if err == nil {
			t.Errorf("a client with %s ran a query", name)
			continue
		}
		if !strings.Contains(strings.ToLower(err.Error()), "authenticat") {
			t.Errorf("a client with %s: %v, want Spark's authentication error", name, err)
		}
		t.Logf("%s: %v", name, err)
	}
	sess, err := sparkconnect.Connect(ctx, s.Remote(), sparkconnect.Config{RunID: "token"})
	if err != nil {
		t.Fatalf("a session with the token: %v", err)
	}
	if _, err := sess.RunSQL(ctx, sparkconnect.NodeSpec{Name: "n", SQL: "SELECT 1 AS x"}, nil); err != nil {
		t.Errorf("a session with the token: %v", err)
	}
	_ = sess.Close(ctx)

	sawJVM := false
	for _, cmdline := range groupCommandLines(t, s.PID()) {
		if strings.Contains(cmdline, r.Token) {
			t.Errorf("a command line holds the token: %s", cmdline)
		}
		sawJVM = sawJVM || strings.Contains(cmdline, sparkserver.ConnectPlugin)
	}
	if !sawJVM {
		t.Errorf("no process of group %d loads %s; the check saw nothing", s.PID(), sparkserver.ConnectPlugin)
	}
	dir := filepath.Join(cfg.StateDir, "spark")
	if b, err := os.ReadFile(filepath.Join(dir, "connect.log")); err != nil || strings.Contains(string(b), r.Token) {
		t.Errorf("connect.log holds the token (or cannot be read: %v)", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "connect.properties")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the properties file with the token is still there once the server is up: %v", err)
	}
	for path, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, "connect.log"): 0o600} {
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v (%v), want %v", path, fi.Mode().Perm(), err, want)
		}
	}
}

// groupCommandLines returns what ps shows of every process in group pgid.
func groupCommandLines(t *testing.T, pgid int) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	var out []string
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if g, err := syscall.Getpgid(pid); err != nil || g != pgid {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil {
			out = append(out, strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return out
}
