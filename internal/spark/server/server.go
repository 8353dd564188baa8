// Package server runs the embedded Spark Connect server: a local-mode
// Spark driver started from the project's pyspark install with spark-submit,
// bound to loopback on a free port, its log under the state directory. A
// supervisor restarts the server when it dies and tells observers whether it
// is healthy, so execd can report NOT_SERVING while Spark is down.
//
// The server requires a token (spark.connect.authenticate.token): loopback
// is reachable by every local user, and Spark runs code as execd's user. The
// token reaches the JVM in a properties file only its owner can read, never
// on a command line, and clients find it in Remote.
package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/spark/sparkurl"
)

// ConnectPlugin is the Spark plugin that serves Spark Connect from the
// driver it is loaded in; the embedded server is a driver started with it
// (see driverScript).
const ConnectPlugin = "org.apache.spark.sql.connect.SparkConnectPlugin"

// Config configures the embedded server. Only StateDir is required.
type Config struct {
	// SparkHome is the directory of Python's pyspark package (it holds
	// bin/spark-submit and jars/). Empty means: ask Python where pyspark
	// is. Spark's Python workers import pyspark as Python has it installed,
	// not from the home's python/lib/pyspark.zip (linkHomeWithoutPython).
	SparkHome string
	// Python finds pyspark when SparkHome is empty; default "python3".
	Python string
	// JavaHome is the JDK or JRE to run; empty means JAVA_HOME, then PATH.
	JavaHome string
	// StateDir holds the server's files: spark/connect.log, the warehouse and
	// Spark's scratch space.
	StateDir string
	// Conf is passed to spark-submit as --conf key=value, after and over the
	// defaults (local[*] master, 1g driver, UI off, 4 shuffle partitions,
	// no per-session class loaders (see driverScript), and, when Delta
	// Lake's jar is among Jars, its extension and catalog and
	// analyzer-bound SQL parameters; see deltaConf). Plugins it names are
	// loaded beside the Connect plugin.
	Conf map[string]string
	// Jars are added to the server's classpath (spark-submit --jars). nil
	// means every *.jar in JarsDir; an empty non-nil slice means none.
	Jars []string
	// JarsDir is searched when Jars is nil. Empty means the spark-jars
	// folder of the venv Python belongs to (or that holds SparkHome), which
	// `make venv` fills with Delta Lake and Avro. A missing folder is no
	// error: the server starts without them, and Delta or Avro reads and
	// writes fail with Spark's "data source not found".
	JarsDir string
	// StartTimeout bounds one start, from spark-submit to the first answered
	// query; default 3 minutes.
	StartTimeout time.Duration
	// StopGrace is how long Stop waits after SIGTERM before SIGKILL; default
	// 15 seconds.
	StopGrace time.Duration
	// RestartDelay is the wait before the first restart after a crash; it
	// doubles with each failed restart up to MaxRestartDelay. Defaults 1s
	// and 30s.
	RestartDelay    time.Duration
	MaxRestartDelay time.Duration
	// Token is the secret every client must send; empty means Start makes
	// a random one. It survives restarts, so clients keep working.
	Token  string
	Logger *slog.Logger
}

// Server is a running, supervised Spark Connect server.
type Server struct {
	cfg       Config
	log       *slog.Logger
	java      string
	sparkHome string
	// envHome is the JVM's SPARK_HOME: sparkHome in links, without python/.
	envHome string
	jars    []string
	logPath string

	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}

	mu       sync.Mutex
	port     int
	proc     *process
	healthy  bool
	changed  chan struct{}
	restarts int
	err      error
}

// Start launches the server and returns once it has answered a query. A
// server that fails to come up is stopped, and the error carries the tail
// of its log. Later crashes are not errors: the server is restarted.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.StateDir == "" {
		return nil, errors.New("sparkserver: a state directory is required")
	}
	cfg = withDefaults(cfg)
	if cfg.Token == "" {
		cfg.Token = NewToken()
	}
	java, err := CheckJava(ctx, cfg.JavaHome)
	if err != nil {
		return nil, err
	}
	home := cfg.SparkHome
	if home == "" {
		if home, err = FindSparkHome(ctx, cfg.Python); err != nil {
			return nil, err
		}
	} else if err := checkSparkHome(home); err != nil {
		return nil, err
	}
	jars, jarsDir, err := resolveJars(cfg, home)
	if err != nil {
		return nil, err
	}
	logJars(cfg.Logger, cfg, jars, jarsDir)
	dir := filepath.Join(cfg.StateDir, "spark")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("sparkserver: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("sparkserver: %w", err)
	}
	envHome := filepath.Join(dir, "home")
	if err := linkHomeWithoutPython(home, envHome); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:       cfg,
		log:       cfg.Logger,
		java:      java,
		sparkHome: home,
		envHome:   envHome,
		jars:      jars,
		logPath:   filepath.Join(dir, "connect.log"),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
		port:      port,
		changed:   make(chan struct{}),
	}
	first := make(chan error, 1)
	go s.supervise(ctx, first)
	if err := <-first; err != nil {
		<-s.done
		return nil, err
	}
	return s, nil
}

func withDefaults(cfg Config) Config {
	if cfg.Python == "" {
		cfg.Python = "python3"
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 3 * time.Minute
	}
	if cfg.StopGrace <= 0 {
		cfg.StopGrace = 15 * time.Second
	}
	if cfg.RestartDelay <= 0 {
		cfg.RestartDelay = time.Second
	}
	if cfg.MaxRestartDelay < cfg.RestartDelay {
		cfg.MaxRestartDelay = max(30*time.Second, cfg.RestartDelay)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg
}

// Remote is the connection string of the server with its token,
// sc://localhost:PORT/;token=TOKEN. The host is "localhost" because that is
// where PySpark, too, sends a token without TLS; the server listens on
// 127.0.0.1. The port stays the same across restarts unless it was taken
// meanwhile. Log sparkurl.Redact(Remote()), never Remote().
func (s *Server) Remote() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.remote(s.port)
}

func (s *Server) remote(port int) string {
	return "sc://" + net.JoinHostPort("localhost", strconv.Itoa(port)) + "/;token=" + s.cfg.Token
}

// NewToken returns a random token for a Spark Connect server.
func NewToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)          // never fails
	return hex.EncodeToString(b) // hex: safe in a properties file and a URL
}

// Jars are the jars the server runs with beyond pyspark's own.
func (s *Server) Jars() []string { return slices.Clone(s.jars) }

// LogPath is the file the server writes its log to.
func (s *Server) LogPath() string { return s.logPath }

// Healthy reports whether the server is up and has answered a query since
// it was last (re)started.
func (s *Server) Healthy() bool {
	h, _ := s.Health()
	return h
}

// Health returns the current health and a channel that is closed at the
// next change, so an observer can loop: h, ch := s.Health(); report(h); <-ch.
func (s *Server) Health() (healthy bool, changed <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.healthy, s.changed
}

// PID is the process id of the running JVM, or 0 while there is none.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return 0
	}
	return s.proc.pid
}

// Restarts counts the restarts after crashes.
func (s *Server) Restarts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.restarts
}

// Done is closed when the supervisor has stopped for good: after Stop, or
// when Start failed.
func (s *Server) Done() <-chan struct{} { return s.done }

// Wait blocks until Done and returns why the supervisor stopped: nil after
// Stop.
func (s *Server) Wait() error {
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Stop terminates the server's whole process group, SIGTERM first and
// SIGKILL after the grace period, and waits until it is gone. If ctx ends
// first the group is killed at once.
func (s *Server) Stop(ctx context.Context) error {
	s.stopOnce.Do(func() { close(s.stop) })
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
	}
	if p := s.current(); p != nil {
		p.signal(syscall.SIGKILL)
	}
	<-s.done
	return ctx.Err()
}

func (s *Server) current() *process {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc
}

func (s *Server) setHealthy(h bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.healthy == h {
		return
	}
	s.healthy = h
	close(s.changed)
	s.changed = make(chan struct{})
}

// supervise owns the JVM: it starts it, reports the first start on first,
// and restarts it after every crash until Stop. It runs on a locked OS
// thread because the JVM is started with a parent-death signal, which the
// kernel ties to the thread that forked it; the thread ends with this
// goroutine, after the JVM is gone.
func (s *Server) supervise(startCtx context.Context, first chan<- error) {
	runtime.LockOSThread()
	defer close(s.done)

	p, err := s.launch(startCtx)
	if err == nil {
		s.setHealthy(true)
	}
	first <- err
	if err != nil {
		s.finish(err)
		return
	}
	stopCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-s.stop:
			cancel()
		case <-s.done:
		}
	}()

	delay := s.cfg.RestartDelay
	for {
		up := time.Now()
		select {
		case <-s.stop:
			s.terminate(p)
			s.finish(nil)
			return
		case <-p.exited:
		}
		s.setHealthy(false)
		s.log.Error("Spark Connect server exited; restarting", "pid", p.pid, "err", p.err,
			"uptime", time.Since(up).Round(time.Second), "log_tail", tail(s.logPath, 20))
		if time.Since(up) > 5*time.Minute {
			delay = s.cfg.RestartDelay
		}
		for {
			select {
			case <-s.stop:
				s.finish(nil)
				return
			case <-time.After(delay):
			}
			delay = min(2*delay, s.cfg.MaxRestartDelay)
			if p, err = s.launch(stopCtx); err == nil {
				break
			}
			if stopCtx.Err() != nil {
				s.finish(nil)
				return
			}
			s.log.Error("Spark Connect server restart failed", "err", err, "next_in", delay)
			// The port may have been taken while the server was down.
			if port, perr := freePort(); perr == nil {
				s.mu.Lock()
				s.port = port
				s.mu.Unlock()
			}
		}
		// Counted before it is announced healthy, so a watcher that sees the
		// server back also sees the restart.
		s.mu.Lock()
		s.restarts++
		s.mu.Unlock()
		s.setHealthy(true)
		s.log.Info("Spark Connect server restarted", "remote", sparkurl.Redact(s.Remote()), "pid", p.pid)
	}
}

func (s *Server) finish(err error) {
	s.setHealthy(false)
	s.mu.Lock()
	s.err = err
	s.proc = nil
	s.mu.Unlock()
}
