// Package pyworker runs Python node functions in a pool of long-lived worker
// processes (python -m tauro_exec.worker, from clients/python) that it starts
// and supervises. The pool is a pycall.Runner: callers speak in pynode's
// values, and only this package knows the workers' protocol.
//
// Each worker serves WorkerService on a Unix socket and runs one node attempt
// at a time; the pool hands an attempt to a free worker. A worker that dies
// is started again, and the attempt it was running fails with a retryable
// *DiedError (pycall.ErrWorkerDied), so the retry lands on a live worker; the
// pool itself never goes down with a worker.
//
// Besides the socket, a worker writes control lines on a pipe (fd 3): "ready"
// once it serves, "session {json}" when it opens a Spark session, and
// "done CALL" once a node's code has really ended. A cancelled call ends at
// once on the gRPC side while the worker interrupts the node's Spark work;
// the pool waits for "done" before giving the worker another node, and kills
// it if the node does not stop within CancelGrace. When a worker dies, the
// pool ends its Spark session on the server (Config.ReleaseSession), which
// would otherwise run the dead worker's jobs to their end.
package pyworker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/pycall"
	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Config configures a Pool.
type Config struct {
	// Python is the interpreter with tauro_exec and pyspark installed.
	Python string
	// Project is the tauro project folder; it and its src/ and lib/ go on
	// the workers' sys.path.
	Project string
	// Dir is the workers' working directory; empty means Project.
	Dir string
	// SocketDir holds the workers' Unix sockets; empty means a temporary
	// folder. A path too long for a socket name falls back to one too.
	SocketDir string
	// Size is the number of workers; 0 means 2.
	Size int
	// SparkRemote is passed to workers as their default Spark Connect URL;
	// requests carry the current one anyway.
	SparkRemote string
	// PassEnv names variables of execd's environment the workers get
	// beyond BaseEnv ("NAME", or "PREFIX*").
	PassEnv []string
	// Env is added to the workers' environment (NAME=value).
	Env []string
	// Profile makes each call report the worker's phases and Spark Connect
	// requests as metrics of the node (worker.phase.*, worker.calls.*).
	Profile bool
	Logger  *slog.Logger
	// StartTimeout bounds one worker's start; 0 means two minutes.
	StartTimeout time.Duration
	// CancelGrace is how long a cancelled node may take to stop before its
	// worker is killed; 0 means ten seconds.
	CancelGrace time.Duration
	// ReleaseSession, if set, ends on the server the Spark session of a
	// worker that died: without it the server runs the dead worker's
	// operations to their end, holding cores the retry needs.
	ReleaseSession func(ctx context.Context, s SparkSession) error
}

// SparkSession is the Spark Connect session a worker opened, as it reports
// it on its control pipe.
type SparkSession struct {
	Remote    string `json:"remote"`
	SessionID string `json:"session_id"`
	UserID    string `json:"user_id"`
}

// ErrClosed is returned once the pool is closed.
var ErrClosed = errors.New("the Python worker pool is closed")

// DiedError is an attempt whose worker died (or stopped answering) under
// it. Another worker may well succeed, so it is retryable, and it is
// pycall.ErrWorkerDied to errors.Is.
type DiedError struct {
	Node   string
	Worker int
	// Exit is how the process ended ("signal: killed"), if it did.
	Exit string
	// Tail is the end of the worker's stderr.
	Tail string
}

func (e *DiedError) Error() string {
	msg := fmt.Sprintf("python worker %d died while running node %s", e.Worker, e.Node)
	if e.Exit != "" {
		msg += " (" + e.Exit + ")"
	}
	if e.Tail != "" {
		msg += "; its last output:\n" + e.Tail
	}
	return msg
}

// Retryable reports that a fresh worker may succeed.
func (e *DiedError) Retryable() bool { return true }

// Is reports target to be pycall.ErrWorkerDied.
func (e *DiedError) Is(target error) bool { return target == pycall.ErrWorkerDied }

// Pool is a set of supervised Python workers.
type Pool struct {
	cfg     Config
	log     *slog.Logger
	sockDir string
	tmpDir  bool

	idle   chan *worker
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	calls  atomic.Uint64
	// busy counts the workers running a node; restarts the workers
	// started again after one exited.
	busy     atomic.Int64
	restarts atomic.Uint64

	mu      sync.Mutex
	live    map[*worker]bool
	changed chan struct{} // closed and replaced when live changes
}

var _ pycall.Runner = (*Pool)(nil)

// maxSocketPath keeps socket names within sun_path on every Unix.
const maxSocketPath = 100

// Start starts the workers and waits for each to be ready. A worker that
// cannot start the first time (no tauro_exec in that Python, say) fails
// Start with its output.
func Start(ctx context.Context, cfg Config) (*Pool, error) {
	if cfg.Size <= 0 {
		cfg.Size = 2
	}
	if cfg.Python == "" {
		cfg.Python = "python3"
	}
	if cfg.Dir == "" {
		cfg.Dir = cfg.Project
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 2 * time.Minute
	}
	if cfg.CancelGrace <= 0 {
		cfg.CancelGrace = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Pool{cfg: cfg, log: cfg.Logger, sockDir: cfg.SocketDir, idle: make(chan *worker, cfg.Size),
		live: map[*worker]bool{}, changed: make(chan struct{})}
	if p.sockDir == "" || len(filepath.Join(p.sockDir, "w000.sock")) > maxSocketPath {
		dir, err := os.MkdirTemp("", "tauro-workers-")
		if err != nil {
			return nil, err
		}
		p.sockDir, p.tmpDir = dir, true
	} else if err := os.MkdirAll(p.sockDir, 0o700); err != nil {
		return nil, fmt.Errorf("worker socket folder: %w", err)
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())

	first := make(chan error, cfg.Size)
	for i := range cfg.Size {
		p.wg.Add(1)
		go func() { defer p.wg.Done(); p.supervise(i+1, first) }()
	}
	var errs []error
	for range cfg.Size {
		select {
		case err := <-first:
			if err != nil {
				errs = append(errs, err)
			}
		case <-ctx.Done():
			errs = append(errs, ctx.Err())
		}
		if len(errs) > 0 {
			break
		}
	}
	if len(errs) > 0 {
		_ = p.Close(context.Background())
		return nil, errors.Join(errs...)
	}
	return p, nil
}

// setLive adds w to the live workers or removes it, waking anyLive.
func (p *Pool) setLive(w *worker, live bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if live {
		p.live[w] = true
	} else {
		delete(p.live, w)
	}
	close(p.changed)
	p.changed = make(chan struct{})
}

// acquire takes a free live worker.
func (p *Pool) acquire(ctx context.Context) (*worker, error) {
	for {
		select {
		case w := <-p.idle:
			if w.dead() {
				continue
			}
			return w, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-p.ctx.Done():
			return nil, ErrClosed
		}
	}
}

func (p *Pool) release(w *worker) {
	if w.dead() {
		return
	}
	select {
	case p.idle <- w:
	default: // cannot happen: each worker is in the channel at most once
	}
}

// Run runs one node attempt on a free worker. on gets the attempt's metrics
// and log records as they arrive, and a log record when all workers are
// busy (a Call with IfIdle gets pycall.ErrBusy instead). The node's own
// failure comes back as *run.Error, and so does a call whose mappings JSON
// cannot carry (a ConfigError, before any worker is taken). A worker that
// dies under the attempt gives a *DiedError; a ctx that ends gives ctx's
// error once the worker has stopped the node (or been killed for not
// stopping).
func (p *Pool) Run(ctx context.Context, c pycall.Call, on func(pycall.Event)) (*run.Error, error) {
	req, nodeErr := runRequest(c, p.cfg.SparkRemote)
	if nodeErr != nil {
		return nodeErr, nil
	}
	var w *worker
	select {
	case w = <-p.idle:
		if w.dead() {
			w = nil
		}
	default:
	}
	if w == nil && c.IfIdle {
		return nil, pycall.ErrBusy
	}
	if w == nil {
		if on != nil { // the wait counts against the node's timeout: say why it is not starting
			on(pycall.Event{Log: &pycall.Log{Level: "info",
				Text: fmt.Sprintf("waiting for a free Python worker (all %d are busy; execd --workers sets how many)", p.cfg.Size)}})
		}
		var err error
		if w, err = p.acquire(ctx); err != nil {
			return nil, err
		}
	}
	p.busy.Add(1)
	defer p.busy.Add(-1)
	req.CallId = strconv.Itoa(w.slot) + "-" + strconv.FormatUint(p.calls.Add(1), 10)
	nodeErr, err := w.runNode(ctx, req, on)
	switch {
	case err == nil:
	case ctx.Err() != nil:
		if !w.waitDone(req.CallId, p.cfg.CancelGrace) && !w.dead() {
			p.log.Warn("a cancelled node did not stop; killing its python worker", "worker", w.slot, "node", c.Node, "grace", p.cfg.CancelGrace)
			w.kill()
			<-w.exited
		}
		err = ctx.Err()
	default:
		err = p.lost(w, c.Node, err)
	}
	p.release(w)
	return nodeErr, err
}

// CheckFunctions asks a live worker to import and check functions. It does
// not take the worker from the pool: checks may run beside a node.
func (p *Pool) CheckFunctions(ctx context.Context, fns []pycall.Function, allowed []string) ([]pycall.Problem, error) {
	var probs []pycall.Problem
	err := p.onAnyLive(ctx, "check functions", func(w *worker) (err error) {
		probs, err = w.checkFunctions(ctx, fns, allowed)
		return err
	})
	return probs, err
}

// PickleBatchFunction asks a live worker for fn pickled, beside any node it
// runs, as CheckFunctions does. A function the worker refuses is an error
// with the worker's reason.
func (p *Pool) PickleBatchFunction(ctx context.Context, fn pycall.Function, allowed []string) (pycall.PickledFunction, error) {
	var out pycall.PickledFunction
	err := p.onAnyLive(ctx, "pickle a foreachBatch function", func(w *worker) (err error) {
		out, err = w.pickleBatchFunction(ctx, fn, allowed)
		return err
	})
	return out, err
}

// refusal is the reason a worker refused a function (pycall.ErrRefused).
type refusal string

func (r refusal) Error() string        { return string(r) }
func (r refusal) Is(target error) bool { return target == pycall.ErrRefused }

// onAnyLive makes call on a live worker, on another one if that worker
// died under it; an answer the worker gave (INVALID_ARGUMENT) is final.
func (p *Pool) onAnyLive(ctx context.Context, what string, call func(*worker) error) error {
	var lastErr error
	for range 3 {
		w, err := p.anyLive(ctx)
		if err != nil {
			return err
		}
		err = call(w)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if st, ok := status.FromError(err); ok && st.Code() == codes.InvalidArgument {
			return refusal(st.Message())
		}
		lastErr = err
		select { // a worker that just died is being replaced
		case <-w.exited:
		case <-time.After(time.Second):
		}
	}
	return fmt.Errorf("python workers cannot %s: %w", what, lastErr)
}

func (p *Pool) anyLive(ctx context.Context) (*worker, error) {
	for {
		p.mu.Lock()
		var found *worker
		for w := range p.live {
			if !w.dead() && (found == nil || w.slot < found.slot) {
				found = w
			}
		}
		changed := p.changed
		p.mu.Unlock()
		if found != nil {
			return found, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-p.ctx.Done():
			return nil, ErrClosed
		}
	}
}

// Close stops the workers: a node still running is interrupted by its
// worker's shutdown.
func (p *Pool) Close(ctx context.Context) error {
	p.cancel()
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if p.tmpDir {
		_ = os.RemoveAll(p.sockDir)
	}
	return err
}

// Size is the number of worker slots.
func (p *Pool) Size() int { return p.cfg.Size }

// Load is how many live workers run a node now and how many wait for one.
func (p *Pool) Load() (busy, idle int) {
	p.mu.Lock()
	live := len(p.live)
	p.mu.Unlock()
	busy = int(p.busy.Load())
	return busy, max(live-busy, 0)
}

// Restarts counts the workers started again after one exited.
func (p *Pool) Restarts() uint64 { return p.restarts.Load() }

// Pids returns the process ids of the live workers, for tests and status.
func (p *Pool) Pids() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []int
	for w := range p.live {
		out = append(out, w.pid)
	}
	return out
}
