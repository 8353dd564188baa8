package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"

	"github.com/tauro-exec/tauro-exec/internal/engine/run"
)

// Append commits evs to the run's log in one transaction: each gets the
// next sequence (LastSequence+1, +2, ...) and the commit time, and is
// applied to the run, node and attempt rows as the package documentation
// describes. Either every event is stored or none is. Watchers receive the
// events only after the commit. The returned events are the stored ones;
// with no events Append does nothing.
func (s *Store) Append(ctx context.Context, runID string, evs ...run.Event) ([]run.Event, error) {
	if len(evs) == 0 {
		return nil, nil
	}
	evs, err := s.normalizeEvents(runID, evs)
	if err != nil {
		return nil, err
	}
	var out []run.Event
	err = s.write(ctx, func(w *writeTx) error {
		var err error
		out, err = w.appendEvents(runID, evs, false)
		return err
	})
	if err != nil {
		return nil, err
	}
	// The published events and the returned ones must not share an Error.
	for i := range out {
		out[i].Error = cloneError(out[i].Error)
	}
	return out, nil
}

// normalizeEvents checks what can be checked without the record and clamps
// free text, on copies: the caller's events are left as they were.
func (s *Store) normalizeEvents(runID string, in []run.Event) ([]run.Event, error) {
	maxText := s.opt.limits.MaxTextBytes
	out := make([]run.Event, len(in))
	for i, ev := range in {
		if ev.RunID != "" && ev.RunID != runID {
			return nil, fmt.Errorf("%w: event %d belongs to run %q, not %q", ErrInvalidEvent, i, ev.RunID, runID)
		}
		if ev.Attempt < 0 {
			return nil, fmt.Errorf("%w: event %d has attempt %d", ErrInvalidEvent, i, ev.Attempt)
		}
		switch ev.Kind {
		case run.RunStateChanged:
		case run.NodeStateChanged:
			if ev.Node == "" {
				return nil, fmt.Errorf("%w: event %d changes a node's state but names no node", ErrInvalidEvent, i)
			}
			if ev.Query != nil {
				q := *ev.Query
				for _, f := range []*string{&q.Session, &q.User, &q.ID, &q.RunID} {
					*f = clampText(*f, maxNameBytes)
				}
				ev.Query = &q
			}
		case run.NodeMessage:
		case run.NodeProgress:
			if ev.Node == "" || ev.Progress == nil {
				return nil, fmt.Errorf("%w: progress event %d names no node or carries no progress", ErrInvalidEvent, i)
			}
			p := *ev.Progress
			for _, f := range []float64{p.InputRate, p.ProcessRate} {
				if math.IsNaN(f) || math.IsInf(f, 0) {
					p.InputRate, p.ProcessRate = 0, 0 // Spark reports NaN before a rate is known
				}
			}
			p.Watermark = clampText(p.Watermark, maxNameBytes)
			ev.Progress = &p
		case run.NodeMetric:
			if ev.Node == "" {
				return nil, fmt.Errorf("%w: metric event %d names no node", ErrInvalidEvent, i)
			}
			if err := checkIdentifier("metric name", ev.MetricName, maxNameBytes); err != nil {
				return nil, fmt.Errorf("%w: event %d: %v", ErrInvalidEvent, i, err)
			}
			if math.IsNaN(ev.MetricValue) || math.IsInf(ev.MetricValue, 0) {
				return nil, fmt.Errorf("%w: metric %q of node %q is %v; only finite values can be stored", ErrInvalidEvent, ev.MetricName, ev.Node, ev.MetricValue)
			}
		default:
			return nil, fmt.Errorf("%w: event %d has unknown kind %q", ErrInvalidEvent, i, ev.Kind)
		}
		ev.Message = clampText(ev.Message, maxText)
		ev.Level = clampText(ev.Level, maxNameBytes)
		ev.Error = clampError(ev.Error, maxText)
		out[i] = ev
	}
	return out, nil
}

// runRow is the part of a run's row that events change.
type runRow struct {
	id      string
	state   run.State
	message string
	start   int64
	end     int64
	lastSeq int64
}

func (w *writeTx) loadRunRow(runID string) (*runRow, error) {
	r := &runRow{id: runID}
	var state string
	err := w.tx.QueryRowContext(w.ctx,
		`SELECT state, message, start_time, end_time, last_seq FROM runs WHERE id = ?`, runID).
		Scan(&state, &r.message, &r.start, &r.end, &r.lastSeq)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: run %q", ErrNotFound, runID)
	}
	if err != nil {
		return nil, fmt.Errorf("store: reading run %s: %w", runID, err)
	}
	r.state = run.State(state)
	return r, nil
}

// appendEvents applies and stores evs, which normalizeEvents has checked.
// repair admits the transitions only PrepareRepair makes: a terminal run
// back to PENDING and nodes back to PENDING.
func (w *writeTx) appendEvents(runID string, evs []run.Event, repair bool) ([]run.Event, error) {
	r, err := w.loadRunRow(runID)
	if err != nil {
		return nil, err
	}
	out := make([]run.Event, 0, len(evs))
	for _, ev := range evs {
		reopens := repair && ev.Kind == run.RunStateChanged && ev.RunState == run.Pending
		if r.state.Terminal() && !reopens {
			return nil, fmt.Errorf("%w: run %s is %s; its log is closed", ErrRunEnded, runID, r.state)
		}
		if (ev.Kind == run.NodeMessage || ev.Kind == run.NodeMetric || ev.Kind == run.NodeProgress) && r.lastSeq >= w.limits.MaxEventsPerRun {
			return nil, fmt.Errorf("%w: run %s holds %d events; the limit is %d (state changes are still accepted)",
				ErrTooManyEvents, runID, r.lastSeq, w.limits.MaxEventsPerRun)
		}
		ev.RunID, ev.Sequence, ev.Time = runID, r.lastSeq+1, w.now
		switch ev.Kind {
		case run.RunStateChanged:
			err = w.applyRunState(r, &ev, repair)
		case run.NodeStateChanged:
			err = w.applyNodeState(r, &ev, repair)
		case run.NodeMessage:
			err = w.applyMessage(r, &ev)
		case run.NodeMetric:
			err = w.applyMetric(r, &ev)
		case run.NodeProgress:
			err = w.applyProgress(r, &ev)
		}
		if err != nil {
			return nil, err
		}
		if err := w.insertEvent(ev); err != nil {
			return nil, err
		}
		r.lastSeq = ev.Sequence
		out = append(out, ev)
	}
	if _, err := w.tx.ExecContext(w.ctx,
		`UPDATE runs SET state = ?, message = ?, start_time = ?, end_time = ?, last_seq = ? WHERE id = ?`,
		string(r.state), r.message, r.start, r.end, r.lastSeq, r.id); err != nil {
		return nil, fmt.Errorf("store: updating run %s: %w", r.id, err)
	}
	return out, nil
}

func (w *writeTx) applyRunState(r *runRow, ev *run.Event, repair bool) error {
	now := toNanos(w.now)
	switch st := ev.RunState; {
	case st == run.Pending:
		if !repair {
			return fmt.Errorf("%w: run %s: only CreateRun and PrepareRepair set a run PENDING", ErrInvalidEvent, r.id)
		}
		r.end = 0
	case st == run.Queued:
		if r.state != run.Pending {
			return fmt.Errorf("%w: run %s is %s; only a PENDING run can be queued", ErrInvalidEvent, r.id, r.state)
		}
	case st == run.Running:
		if r.state != run.Pending && r.state != run.Queued {
			return fmt.Errorf("%w: run %s is %s; only a PENDING or QUEUED run can start", ErrInvalidEvent, r.id, r.state)
		}
		if r.start == 0 {
			r.start = now
		}
	case st.Terminal():
		// A run that ends with a node still running would leave that
		// node's attempt open for ever, and a repair could not tell
		// whether it finished.
		var name, state string
		err := w.tx.QueryRowContext(w.ctx, `SELECT name, state FROM nodes
			WHERE run_id = ? AND state IN (?, ?, ?) ORDER BY position LIMIT 1`,
			r.id, string(run.NodeRunning), string(run.NodeRetrying), string(run.NodeStreaming)).Scan(&name, &state)
		if err == nil {
			return fmt.Errorf("%w: run %s cannot end %s while node %q is %s; record how the node ended first",
				ErrInvalidEvent, r.id, st, name, state)
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("store: reading nodes of run %s: %w", r.id, err)
		}
		r.end = now
	default:
		return fmt.Errorf("%w: run %s: unknown run state %q", ErrInvalidEvent, r.id, st)
	}
	r.state = ev.RunState
	r.message = ev.Message
	return nil
}

// nodeRow is a node's row.
type nodeRow struct {
	name    string
	state   run.NodeState
	attempt int
	start   int64
	end     int64
	err     *run.Error
}

func (w *writeTx) loadNode(runID, name string) (*nodeRow, error) {
	n := &nodeRow{name: name}
	var (
		state   string
		errJSON sql.NullString
	)
	err := w.tx.QueryRowContext(w.ctx,
		`SELECT state, attempt, start_time, end_time, error FROM nodes WHERE run_id = ? AND name = ?`,
		runID, name).Scan(&state, &n.attempt, &n.start, &n.end, &errJSON)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: run %s has no node %q", ErrInvalidEvent, runID, name)
	}
	if err != nil {
		return nil, fmt.Errorf("store: reading node %q of run %s: %w", name, runID, err)
	}
	n.state = run.NodeState(state)
	if n.err, err = decodeError(errJSON); err != nil {
		return nil, err
	}
	return n, nil
}

func (w *writeTx) saveNode(runID string, n *nodeRow) error {
	errJSON, err := encodeError(n.err)
	if err != nil {
		return err
	}
	if _, err := w.tx.ExecContext(w.ctx,
		`UPDATE nodes SET state = ?, attempt = ?, start_time = ?, end_time = ?, error = ? WHERE run_id = ? AND name = ?`,
		string(n.state), n.attempt, n.start, n.end, errJSON, runID, n.name); err != nil {
		return fmt.Errorf("store: updating node %q of run %s: %w", n.name, runID, err)
	}
	return nil
}

// closeAttempt records how an attempt ended.
func (w *writeTx) closeAttempt(runID, node string, attempt int, state run.NodeState, e *run.Error) error {
	errJSON, err := encodeError(e)
	if err != nil {
		return err
	}
	if _, err := w.tx.ExecContext(w.ctx,
		`UPDATE attempts SET state = ?, end_time = ?, error = ? WHERE run_id = ? AND node = ? AND attempt = ?`,
		string(state), toNanos(w.now), errJSON, runID, node, attempt); err != nil {
		return fmt.Errorf("store: closing attempt %d of node %q: %w", attempt, node, err)
	}
	return nil
}

func (w *writeTx) applyNodeState(r *runRow, ev *run.Event, repair bool) error {
	n, err := w.loadNode(r.id, ev.Node)
	if err != nil {
		return err
	}
	now := toNanos(w.now)
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%w: run %s, node %q: %s", ErrInvalidEvent, r.id, n.name, fmt.Sprintf(format, args...))
	}
	// current checks the event's attempt against the node's, filling it in
	// when the caller left it 0.
	current := func() error {
		if ev.Attempt == 0 {
			ev.Attempt = n.attempt
		}
		if ev.Attempt != n.attempt {
			return fail("the event is about attempt %d but the node is at attempt %d", ev.Attempt, n.attempt)
		}
		return nil
	}

	switch st := ev.NodeState; {
	case st == run.NodePending:
		if !repair {
			return fail("only CreateRun and PrepareRepair set a node PENDING")
		}
		ev.Attempt = n.attempt
		n.start, n.end, n.err = 0, 0, nil

	case st == run.NodeRunning:
		if n.state != run.NodePending && n.state != run.NodeRetrying {
			return fail("the node is %s; only a PENDING or RETRYING node can start an attempt", n.state)
		}
		if ev.Attempt == 0 {
			ev.Attempt = n.attempt + 1
		}
		if ev.Attempt != n.attempt+1 {
			return fail("attempt %d cannot start: the next attempt is %d (attempt numbers continue across repairs)", ev.Attempt, n.attempt+1)
		}
		if _, err := w.tx.ExecContext(w.ctx, `INSERT INTO attempts (run_id, node, attempt, state, start_time, end_time, error)
			VALUES (?, ?, ?, ?, ?, 0, NULL)`, r.id, n.name, ev.Attempt, string(run.NodeRunning), now); err != nil {
			return fmt.Errorf("store: opening attempt %d of node %q: %w", ev.Attempt, n.name, err)
		}
		n.attempt = ev.Attempt
		if n.start == 0 {
			n.start = now
		}
		n.end, n.err = 0, nil

	case st == run.NodeStreaming:
		if n.state != run.NodeRunning {
			return fail("the node is %s; only a RUNNING node's query can start streaming", n.state)
		}
		if err := current(); err != nil {
			return err
		}

	case st == run.NodeRetrying:
		if !n.state.Live() {
			return fail("the node is %s; only a RUNNING or STREAMING node can be RETRYING", n.state)
		}
		if err := current(); err != nil {
			return err
		}
		// The attempt before a retry failed; its error says how (a
		// timeout has Error.Type "Timeout").
		if err := w.closeAttempt(r.id, n.name, n.attempt, run.NodeFailed, ev.Error); err != nil {
			return err
		}
		n.err = cloneError(ev.Error)

	case st.Terminal():
		if n.state.Terminal() {
			return fail("the node already ended %s", n.state)
		}
		if st == run.NodeSucceeded && !n.state.Live() {
			return fail("the node is %s; only a RUNNING or STREAMING node can succeed", n.state)
		}
		if err := current(); err != nil {
			return err
		}
		if n.state.Live() {
			if err := w.closeAttempt(r.id, n.name, n.attempt, st, ev.Error); err != nil {
				return err
			}
		}
		n.end, n.err = now, cloneError(ev.Error)

	default:
		return fail("unknown node state %q", st)
	}
	n.state = ev.NodeState
	return w.saveNode(r.id, n)
}

// applyProgress accepts a micro-batch's progress of a node whose query is
// under way; nothing but the event itself is stored.
func (w *writeTx) applyProgress(r *runRow, ev *run.Event) error {
	n, err := w.loadNode(r.id, ev.Node)
	if err != nil {
		return err
	}
	if !n.state.Live() {
		return fmt.Errorf("%w: run %s, node %q is %s; progress comes from a running query", ErrInvalidEvent, r.id, n.name, n.state)
	}
	if ev.Attempt == 0 {
		ev.Attempt = n.attempt
	}
	return nil
}

func (w *writeTx) applyMessage(r *runRow, ev *run.Event) error {
	if ev.Node == "" {
		if ev.Attempt != 0 {
			return fmt.Errorf("%w: run %s: a message with no node cannot name attempt %d", ErrInvalidEvent, r.id, ev.Attempt)
		}
		return nil
	}
	n, err := w.loadNode(r.id, ev.Node)
	if err != nil {
		return err
	}
	if ev.Attempt == 0 {
		ev.Attempt = n.attempt
	}
	if ev.Attempt > n.attempt {
		return fmt.Errorf("%w: run %s, node %q: a message about attempt %d, which has not started", ErrInvalidEvent, r.id, n.name, ev.Attempt)
	}
	return nil
}

func (w *writeTx) applyMetric(r *runRow, ev *run.Event) error {
	n, err := w.loadNode(r.id, ev.Node)
	if err != nil {
		return err
	}
	if ev.Attempt == 0 {
		ev.Attempt = n.attempt
	}
	if ev.Attempt < 1 || ev.Attempt > n.attempt {
		return fmt.Errorf("%w: run %s, node %q: metric %q is for attempt %d, which has not started", ErrInvalidEvent, r.id, n.name, ev.MetricName, ev.Attempt)
	}
	if _, err := w.tx.ExecContext(w.ctx, `INSERT INTO attempt_metrics (run_id, node, attempt, name, value)
		VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (run_id, node, attempt, name) DO UPDATE SET value = excluded.value`,
		r.id, n.name, ev.Attempt, ev.MetricName, ev.MetricValue); err != nil {
		return fmt.Errorf("store: recording metric %q of node %q: %w", ev.MetricName, n.name, err)
	}
	return nil
}
