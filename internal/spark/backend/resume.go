package backend

// Runs that outlive execd. On a Spark Connect server execd did not start
// (--spark-remote), a run's session, the writes in flight and the streaming
// queries go on when execd is killed. The run's journal (engine.Journal,
// kept in the run store) records what a restarted execd needs to take the
// run up: the session's identity, each write as a reattachable operation
// (recorded before it is sent), which Python nodes' functions have
// returned, and which results the session holds. What does not survive:
// a Python node whose function was running, since its worker is execd's
// child and dies with it; that attempt ends and the node runs again.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/tauro-exec/tauro-exec/internal/engine"
	"github.com/tauro-exec/tauro-exec/internal/engine/plan"
	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	sparkconnect "github.com/tauro-exec/tauro-exec/internal/spark/connect"
)

// SetDurable says that the Spark server outlives execd (it is not execd's
// embedded one): runs keep a journal, and a restarted execd takes them up
// (engine.Resumer) instead of interrupting them.
func (b *Backend) SetDurable(on bool) { b.durable = on }

// Journal keys.
const (
	keySession = "session"    // the run's session, as sparkconnect.Identity
	keyRan     = "ran/"       // + node: its result is a view of the session
	keyNode    = "n/"         // + node/attempt: the attempt's steps
	stepPython = "/python"    // after the attempt's step: its function returned
	errNoJSON  = "unreadable" // for messages
)

// step names a node attempt in the journal; "" when the run keeps none.
func (r *runExec) step(node string, attempt int) string {
	if r.journal == nil {
		return ""
	}
	return fmt.Sprintf("%s%s/%d", keyNode, node, attempt)
}

// journalOrNil is the journal as the session takes it: an untyped nil
// when there is none.
func (r *runExec) journalOrNil() sparkconnect.Journal {
	if r.journal == nil {
		return nil
	}
	return r.journal
}

// recordSession keeps where the run's session is, before any node runs in
// it.
func (r *runExec) recordSession(ctx context.Context, s *sparkconnect.Session) error {
	if r.journal == nil {
		return nil
	}
	b, err := json.Marshal(s.Identity())
	if err != nil {
		return err
	}
	if err := r.journal.Save(context.WithoutCancel(ctx), keySession, b); err != nil {
		return fmt.Errorf("recording the run's Spark session: %w", err)
	}
	return nil
}

// markRan notes that node's result is a view of session s; a durable run
// records it too, so a run taken up in the same session reads it from
// there.
func (r *runExec) markRan(ctx context.Context, s *sparkconnect.Session, node string, shared bool, view string) {
	r.mu.Lock()
	current := r.sess == s
	if current {
		r.ran[node] = true
		r.gen[node]++
		if shared {
			r.cached[node] = view
		}
	}
	r.mu.Unlock()
	if current && r.journal != nil {
		if err := r.journal.Save(context.WithoutCancel(ctx), keyRan+node, []byte("{}")); err != nil {
			r.log.Warn("recording a node's result in the journal", "node", node, "err", err)
		}
	}
}

// pythonDone reports whether the attempt's function returned before a
// restart, so its result view is on the server.
func (r *runExec) pythonDone(ctx context.Context, node string, attempt int) bool {
	if _, ok := r.takenUp(node, attempt); !ok || r.journal == nil {
		return false
	}
	b, err := r.journal.Load(ctx, r.step(node, attempt)+stepPython)
	return err == nil && b != nil
}

func (r *runExec) notePythonDone(ctx context.Context, node string, attempt int) error {
	if r.journal == nil {
		return nil
	}
	if err := r.journal.Save(context.WithoutCancel(ctx), r.step(node, attempt)+stepPython, []byte("{}")); err != nil {
		return fmt.Errorf("recording that node %s's function returned: %w", node, err)
	}
	return nil
}

// takenUp returns the attempt of node that a killed execd left under way,
// when attempt is it.
func (r *runExec) takenUp(node string, attempt int) (run.LiveAttempt, bool) {
	a, ok := r.live[node]
	return a, ok && a.Attempt == attempt
}

// gone reports an error that says Spark no longer holds what an attempt
// taken up was to continue.
func gone(err error) bool {
	return errors.Is(err, sparkconnect.ErrOperationLost) || errors.Is(err, sparkconnect.ErrSessionLost) ||
		errors.Is(err, ErrQueryGone)
}

// ResumeRun implements engine.Resumer: it reopens the run's session from
// the journal. An embedded server died with execd, so only a durable
// backend takes runs up.
func (b *Backend) ResumeRun(ctx context.Context, rc engine.RunContext) (engine.ResumedRun, error) {
	if !b.durable || rc.Journal == nil {
		return nil, errors.New("the Spark Connect server was execd's own and stopped with it")
	}
	raw, err := rc.Journal.Load(ctx, keySession)
	if err != nil {
		return nil, err
	}
	if raw == nil {
		return nil, errors.New("the run recorded no Spark session")
	}
	var id sparkconnect.Identity
	if err := json.Unmarshal(raw, &id); err != nil {
		return nil, fmt.Errorf("the run's Spark session record is unreadable: %w", err)
	}
	r := newRunExec(b, rc)
	for _, a := range rc.Live {
		r.live[a.Node] = a
	}
	s, err := sparkconnect.Reopen(ctx, b.remote(), id, sparkconnect.Config{RunID: rc.RunID, Logger: r.log, Journal: r.journalOrNil()})
	if err != nil {
		return nil, err
	}
	ran, err := rc.Journal.List(ctx, keyRan)
	if err != nil {
		_ = s.Close(ctx)
		return nil, err
	}
	r.useSession(s)
	for key := range ran {
		node := strings.TrimPrefix(key, keyRan)
		n := r.byName[node]
		if n == nil {
			continue
		}
		r.ran[node] = true
		r.gen[node] = 1
		for _, d := range n.Dependencies {
			r.readers[d]--
		}
	}
	// A result still read by dependents was cached when it was made, if
	// cacheable.
	for node := range r.ran {
		if r.readers[node] > 0 && len(r.byName[node].OutputSpecs)+r.dependents[node] > 1 {
			r.cached[node] = s.ResultView(node)
			if plan.KeepCondition(r.byName[node].Expectations) != "" {
				r.cached[node] = s.UnfilteredView(node) // what a kept result caches
			}
		}
	}
	r.log.Info("Spark session taken up after a restart", "session", id.Session, "results", len(r.ran), "attempts", len(rc.Live))
	return r, nil
}

// Continues implements engine.ResumedRun: a SQL node's attempt goes on (its
// writes are journaled steps), a streaming node's when its query had
// started, a Python node's when its function had returned. A Python
// function that was running died with its worker.
func (r *runExec) Continues(ctx context.Context, a run.LiveAttempt) bool {
	n := r.byName[a.Node]
	switch {
	case n == nil:
		return false
	case n.Stream != nil:
		return a.Query != nil
	case n.Kind == plan.KindPython:
		b, err := r.journal.Load(ctx, r.step(n.Name, a.Attempt)+stepPython)
		return err == nil && b != nil
	}
	return true
}
