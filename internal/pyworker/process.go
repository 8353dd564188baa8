package pyworker

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	execv1 "github.com/tauro-exec/tauro-exec/gen/tauro/exec/v1"
)

// worker is one Python worker process and the gRPC client that reaches it.
type worker struct {
	slot   int
	pid    int
	cmd    *exec.Cmd
	stdin  io.Closer
	conn   *grpc.ClientConn
	client execv1.WorkerServiceClient
	tail   *tail

	exited   chan struct{}
	exitErr  error
	released chan struct{} // closed once a dead worker's session is dealt with

	// What the worker reported on its control pipe (control.go).
	mu       sync.Mutex
	lastDone string
	doneSig  chan struct{}
	session  *SparkSession // the worker's Spark session, once it has one
}

// spawn starts a worker in slot and returns it once it is ready to serve.
func (p *Pool) spawn(slot int) (*worker, error) {
	sock := filepath.Join(p.sockDir, fmt.Sprintf("w%d.sock", slot))
	_ = os.Remove(sock)
	ctlR, ctlW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	args := []string{"-m", "tauro_exec.worker", "--socket", sock, "--project", p.cfg.Project,
		"--control-fd", "3", "--watch-stdin"}
	if p.cfg.Profile {
		args = append(args, "--profile")
	}
	extra := []string{"PYTHONUNBUFFERED=1"}
	if p.cfg.SparkRemote != "" {
		extra = append(extra, remoteEnv+"="+p.cfg.SparkRemote)
	}
	cmd := exec.Command(p.cfg.Python, args...)
	cmd.Dir = p.cfg.Dir
	cmd.Env = workerEnv(os.Environ(), p.cfg.PassEnv, append(extra, p.cfg.Env...))
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
			p.restarts.Add(1)
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
