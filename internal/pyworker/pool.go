// Package pyworker runs Python node functions in a pool of long-lived worker
// processes (python -m tauro_exec.worker, from clients/python) that it starts
// and supervises.
//
// Each worker serves WorkerService on a Unix socket and runs one node attempt
// at a time; the pool hands an attempt to a free worker. A worker that dies
// is started again, and the attempt it was running fails with a retryable
// *DiedError, so the retry lands on a live worker; the pool itself never
// goes down with a worker.
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
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	execv1 "github.com/tauro-exec/tauro-exec/gen/tauro/exec/v1"
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
	// Env is added to the workers' environment.
	Env    []string
	Logger *slog.Logger
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
// it. Another worker may well succeed, so it is retryable.
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

	mu      sync.Mutex
	live    map[*worker]bool
	changed chan struct{} // closed and replaced when live changes
}

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

// supervise keeps worker slot running until the pool closes. first gets the
// outcome of the first start.
func (p *Pool) supervise(slot int, first chan<- error) {
	const minBackoff, maxBackoff = 200 * time.Millisecond, 30 * time.Second
	backoff := minBackoff
	for {
		w, err := p.spawn(slot)
		if err != nil && first != nil {
			first <- err
			return
		}
		if err != nil {
			p.log.Error("python worker did not start; trying again", "worker", slot, "in", backoff, "err", err)
		} else {
			began := time.Now()
			p.setLive(w, true)
			p.idle <- w // capacity Size: a slot has at most one worker in it
			// Start returns with every worker live and idle.
			if first != nil {
				first <- nil
				first = nil
			}
			select {
			case <-w.exited:
			case <-p.ctx.Done():
				p.setLive(w, false)
				w.stop(5 * time.Second) // a stopping worker releases its own session
				close(w.released)
				return
			}
			p.setLive(w, false)
			p.log.Warn("python worker exited; starting another", "worker", slot, "pid", w.pid, "exit", w.exitText())
			p.releaseSession(w)
			if time.Since(began) > time.Minute {
				backoff = minBackoff // it had been healthy: not a crash loop
			}
		}
		select {
		case <-time.After(backoff):
		case <-p.ctx.Done():
			return
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

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
// and log records as they arrive; the result is the final response, a
// result or a node error. A worker that dies under the attempt gives a
// *DiedError; a ctx that ends gives ctx's error once the worker has stopped
// the node (or been killed for not stopping).
func (p *Pool) Run(ctx context.Context, req *execv1.RunNodeRequest, on func(*execv1.RunNodeResponse)) (*execv1.RunNodeResponse, error) {
	var w *worker
	select {
	case w = <-p.idle:
		if w.dead() {
			w = nil
		}
	default:
	}
	if w == nil {
		if on != nil { // the wait counts against the node's timeout: say why it is not starting
			on(&execv1.RunNodeResponse{Event: &execv1.RunNodeResponse_Log{Log: &execv1.WorkerLog{Level: "info",
				Text: fmt.Sprintf("waiting for a free Python worker (all %d are busy; execd --workers sets how many)", p.cfg.Size)}}})
		}
		var err error
		if w, err = p.acquire(ctx); err != nil {
			return nil, err
		}
	}
	req = proto.Clone(req).(*execv1.RunNodeRequest)
	req.CallId = strconv.Itoa(w.slot) + "-" + strconv.FormatUint(p.calls.Add(1), 10)
	if req.SparkRemote == "" {
		req.SparkRemote = p.cfg.SparkRemote
	}
	final, err := p.call(ctx, w, req, on)
	switch {
	case err == nil:
	case ctx.Err() != nil:
		if !w.waitDone(req.CallId, p.cfg.CancelGrace) && !w.dead() {
			p.log.Warn("a cancelled node did not stop; killing its python worker", "worker", w.slot, "node", req.Node, "grace", p.cfg.CancelGrace)
			w.kill()
			<-w.exited
		}
		err = ctx.Err()
	default:
		err = p.lost(w, req.Node, err)
	}
	p.release(w)
	return final, err
}

func (p *Pool) call(ctx context.Context, w *worker, req *execv1.RunNodeRequest, on func(*execv1.RunNodeResponse)) (*execv1.RunNodeResponse, error) {
	stream, err := w.client.RunNode(ctx, req)
	if err != nil {
		return nil, err
	}
	var final *execv1.RunNodeResponse
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			if final == nil {
				return nil, errors.New("the worker ended the call without a result")
			}
			return final, nil
		}
		if err != nil {
			return nil, err
		}
		switch resp.GetEvent().(type) {
		case *execv1.RunNodeResponse_Result, *execv1.RunNodeResponse_Error:
			final = resp
		default:
			if on != nil {
				on(resp)
			}
		}
	}
}

// releaseSession ends the dead worker w's Spark session on the server.
func (p *Pool) releaseSession(w *worker) {
	defer close(w.released)
	w.mu.Lock()
	sess := w.session
	w.mu.Unlock()
	if sess == nil || p.cfg.ReleaseSession == nil {
		return
	}
	ctx, cancel := context.WithTimeout(p.ctx, 15*time.Second)
	defer cancel()
	if err := p.cfg.ReleaseSession(ctx, *sess); err != nil {
		p.log.Warn("could not end a dead python worker's Spark session; its work runs on until the server drops it", "worker", w.slot, "session", sess.SessionID, "err", err)
		return
	}
	p.log.Info("ended a dead python worker's Spark session", "worker", w.slot, "session", sess.SessionID)
}

// lost turns a broken call into a DiedError. A worker that broke the call
// but still runs is in an unknown state, so it is killed and replaced.
func (p *Pool) lost(w *worker, node string, callErr error) error {
	select {
	case <-w.exited:
	case <-time.After(3 * time.Second):
		p.log.Warn("python worker broke a call but still runs; killing it", "worker", w.slot, "node", node, "err", callErr)
		w.kill()
		<-w.exited
	}
	// The retry should find the cores the dead worker's Spark work held.
	select {
	case <-w.released:
	case <-time.After(20 * time.Second):
	}
	return &DiedError{Node: node, Worker: w.slot, Exit: w.exitText(), Tail: w.tail.String()}
}

// CheckFunctions asks a live worker to import and check functions. It does
// not take the worker from the pool: checks may run beside a node.
func (p *Pool) CheckFunctions(ctx context.Context, req *execv1.CheckFunctionsRequest) (*execv1.CheckFunctionsResponse, error) {
	var lastErr error
	for range 3 {
		w, err := p.anyLive(ctx)
		if err != nil {
			return nil, err
		}
		resp, err := w.client.CheckFunctions(ctx, req)
		if err == nil {
			return resp, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		lastErr = err
		select { // a worker that just died is being replaced
		case <-w.exited:
		case <-time.After(time.Second):
		}
	}
	return nil, fmt.Errorf("python workers cannot check functions: %w", lastErr)
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

// ---- one worker process ----------------------------------------------------

type worker struct {
	slot   int
	pid    int
	cmd    *exec.Cmd
	stdin  io.Closer
	conn   *grpc.ClientConn
	client execv1.WorkerServiceClient
	tail   *tail

	exited  chan struct{}
	exitErr error

	mu       sync.Mutex
	lastDone string
	doneSig  chan struct{}
	session  *SparkSession // the worker's Spark session, once it has one
	released chan struct{} // closed once a dead worker's session is dealt with
}

func (p *Pool) spawn(slot int) (*worker, error) {
	sock := filepath.Join(p.sockDir, fmt.Sprintf("w%d.sock", slot))
	_ = os.Remove(sock)
	ctlR, ctlW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	args := []string{"-m", "tauro_exec.worker", "--socket", sock, "--project", p.cfg.Project,
		"--control-fd", "3", "--watch-stdin"}
	if p.cfg.SparkRemote != "" {
		args = append(args, "--spark-remote", p.cfg.SparkRemote)
	}
	cmd := exec.Command(p.cfg.Python, args...)
	cmd.Dir = p.cfg.Dir
	cmd.Env = append(append(os.Environ(), "PYTHONUNBUFFERED=1"), p.cfg.Env...)
	cmd.ExtraFiles = []*os.File{ctlW}
	w := &worker{slot: slot, cmd: cmd, tail: newTail(40), exited: make(chan struct{}), doneSig: make(chan struct{}), released: make(chan struct{})}
	out := &logLines{log: p.log.With("worker", slot), tail: w.tail}
	cmd.Stdout, cmd.Stderr = out, out
	stdin, err := cmd.StdinPipe()
	if err != nil {
		ctlR.Close()
		ctlW.Close()
		return nil, err
	}
	w.stdin = stdin
	if err := cmd.Start(); err != nil {
		ctlR.Close()
		ctlW.Close()
		return nil, fmt.Errorf("start python worker with %s: %w", p.cfg.Python, err)
	}
	ctlW.Close()
	w.pid = cmd.Process.Pid
	go func() {
		w.exitErr = cmd.Wait()
		out.flush()
		close(w.exited)
	}()

	ready := make(chan struct{})
	go w.readControl(ctlR, ready)
	timer := time.NewTimer(p.cfg.StartTimeout)
	defer timer.Stop()
	select {
	case <-ready:
	case <-w.exited:
		return nil, fmt.Errorf("python worker %d (%s) exited before it was ready (%s):\n%s", slot, p.cfg.Python, w.exitText(), w.tail.String())
	case <-timer.C:
		w.kill()
		return nil, fmt.Errorf("python worker %d was not ready after %s:\n%s", slot, p.cfg.StartTimeout, w.tail.String())
	case <-p.ctx.Done():
		w.kill()
		return nil, ErrClosed
	}
	conn, err := grpc.NewClient("unix:"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		w.kill()
		return nil, err
	}
	w.conn, w.client = conn, execv1.NewWorkerServiceClient(conn)
	go func() { <-w.exited; _ = conn.Close() }()
	p.log.Debug("python worker ready", "worker", slot, "pid", w.pid)
	return w, nil
}

// readControl follows the worker's control lines; the pipe must be read to
// its end so that the worker never blocks writing to it.
func (w *worker) readControl(r io.ReadCloser, ready chan<- struct{}) {
	defer r.Close()
	sc := bufio.NewScanner(r)
	signalled := false
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "ready" && !signalled:
			signalled = true
			close(ready)
		case strings.HasPrefix(line, "session "):
			var sess SparkSession
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "session ")), &sess); err == nil && sess.SessionID != "" {
				w.mu.Lock()
				w.session = &sess
				w.mu.Unlock()
			}
		case strings.HasPrefix(line, "done "):
			w.mu.Lock()
			w.lastDone = strings.TrimPrefix(line, "done ")
			close(w.doneSig)
			w.doneSig = make(chan struct{})
			w.mu.Unlock()
		}
	}
}

// waitDone waits until the worker reports call's code ended. Calls run one
// after another in a worker, so the last one reported is the one to wait for.
func (w *worker) waitDone(call string, grace time.Duration) bool {
	timer := time.NewTimer(grace)
	defer timer.Stop()
	for {
		w.mu.Lock()
		done, sig := w.lastDone == call, w.doneSig
		w.mu.Unlock()
		if done {
			return true
		}
		select {
		case <-sig:
		case <-w.exited:
			return false
		case <-timer.C:
			return false
		}
	}
}

func (w *worker) dead() bool {
	select {
	case <-w.exited:
		return true
	default:
		return false
	}
}

func (w *worker) kill() {
	if w.cmd.Process != nil {
		_ = w.cmd.Process.Kill()
	}
}

// stop asks the worker to exit (its stdin closes, then SIGTERM) and kills it
// after grace.
func (w *worker) stop(grace time.Duration) {
	_ = w.stdin.Close()
	_ = w.cmd.Process.Signal(os.Interrupt)
	select {
	case <-w.exited:
	case <-time.After(grace):
		w.kill()
		<-w.exited
	}
}

func (w *worker) exitText() string {
	if !w.dead() {
		return ""
	}
	if w.exitErr == nil {
		return "exit status 0"
	}
	return w.exitErr.Error()
}
