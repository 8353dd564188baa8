package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"

	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	"github.com/tauro-exec/tauro-exec/internal/engine/store"
)

// Append commits evs to the run's log in one transaction: each gets the
// next sequence (LastSequence+1, +2, ...) and the commit time, and is
// applied to the run, node and attempt rows as the package documentation
// describes. Either every event is stored or none is. Watchers receive the
// events only after the commit. The returned events are the stored ones;
// with no events Append does nothing.
func (s *Store) Append(ctx context.Context, runID string, evs ...run.Event) ([]run.Event, error) {
	return s.appendFenced(ctx, runID, nil, evs)
}

// AppendAs is Append under lease: refused with store.ErrFenced once
// another replica has claimed the run.
func (s *Store) AppendAs(ctx context.Context, lease store.Lease, evs ...run.Event) ([]run.Event, error) {
	return s.appendFenced(ctx, lease.RunID, &lease, evs)
}

func (s *Store) appendFenced(ctx context.Context, runID string, lease *store.Lease, evs []run.Event) ([]run.Event, error) {
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
		if err := w.fence(runID, lease); err != nil {
			return err
		}
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
			return nil, fmt.Errorf("%w: event %d belongs to run %q, not %q", store.ErrInvalidEvent, i, ev.RunID, runID)
		}
		if ev.Attempt < 0 {
			return nil, fmt.Errorf("%w: event %d has attempt %d", store.ErrInvalidEvent, i, ev.Attempt)
		}
		switch ev.Kind {
		case run.RunStateChanged:
		case run.NodeStateChanged:
			if ev.Node == "" {
				return nil, fmt.Errorf("%w: event %d changes a node's state but names no node", store.ErrInvalidEvent, i)
			}
			if ev.Query != nil {
				q := *ev.Query
				for _, f := range []*string{&q.Session, &q.User, &q.ID, &q.RunID} {
					*f = clampText(*f, maxNameBytes)
				}
				ev.Query = &q
			}
		case run.NodeMessage:
		case run.RunMessage:
			if ev.Node != "" || ev.Attempt != 0 {
				return nil, fmt.Errorf("%w: run message %d names a node or an attempt", store.ErrInvalidEvent, i)
			}
		case run.NodeProgress:
			if ev.Node == "" || ev.Progress == nil {
				return nil, fmt.Errorf("%w: progress event %d names no node or carries no progress", store.ErrInvalidEvent, i)
			}
			p := *ev.Progress
			for _, f := range []float64{p.InputRate, p.ProcessRate} {
				if math.IsNaN(f) || math.IsInf(f, 0) {
					p.InputRate, p.ProcessRate = 0, 0 // Spark reports NaN before a rate is known
				}
			}
			p.Watermark = clampText(p.Watermark, maxNameBytes)
			p.Sources = clampSources(p.Sources, maxText)
			if p.Sink != nil {
				sink := *p.Sink
				sink.Description = clampText(sink.Description, maxNameBytes)
				p.Sink = &sink
			}
			if len(p.Observed) > maxObservations {
				return nil, fmt.Errorf("%w: progress event %d holds %d observed metrics; at most %d are kept", store.ErrInvalidEvent, i, len(p.Observed), maxObservations)
			}
			ev.Progress = &p
		case run.NodeLag:
			if ev.Node == "" || ev.Lag == nil {
				return nil, fmt.Errorf("%w: lag event %d names no node or carries no lag", store.ErrInvalidEvent, i)
			}
			l := *ev.Lag
			l.Reason = clampText(l.Reason, maxText)
			ev.Lag = &l
		case run.NodeExpectations:
			if ev.Node == "" || ev.Expectations == nil {
				return nil, fmt.Errorf("%w: expectations event %d names no node or carries no results", store.ErrInvalidEvent, i)
			}
			if len(ev.Expectations.Results) > maxObservations {
				return nil, fmt.Errorf("%w: expectations event %d holds %d results; at most %d are kept", store.ErrInvalidEvent, i, len(ev.Expectations.Results), maxObservations)
			}
			x := *ev.Expectations
			x.Results = clampExpectations(x.Results, maxText)
			ev.Expectations = &x
		case run.NodeMetric:
			if ev.Node == "" {
				return nil, fmt.Errorf("%w: metric event %d names no node", store.ErrInvalidEvent, i)
			}
			if err := checkIdentifier("metric name", ev.MetricName, maxNameBytes); err != nil {
				return nil, fmt.Errorf("%w: event %d: %v", store.ErrInvalidEvent, i, err)
			}
			if math.IsNaN(ev.MetricValue) || math.IsInf(ev.MetricValue, 0) {
				return nil, fmt.Errorf("%w: metric %q of node %q is %v; only finite values can be stored", store.ErrInvalidEvent, ev.MetricName, ev.Node, ev.MetricValue)
			}
		default:
			return nil, fmt.Errorf("%w: event %d has unknown kind %q", store.ErrInvalidEvent, i, ev.Kind)
		}
		ev.Message = clampText(ev.Message, maxText)
		ev.Level = clampText(ev.Level, maxNameBytes)
		ev.Error = clampError(ev.Error, maxText)
		out[i] = ev
	}
	return out, nil
}

// loadRunRow reads the part of run id's row that events change, and its
// last sequence.
func (w *writeTx) loadRunRow(runID string) (*run.RunRecord, int64, error) {
	var (
		state      string
		start, end int64
		lastSeq    int64
	)
	r := &run.RunRecord{ID: runID}
	err := w.tx.QueryRowContext(w.ctx,
		`SELECT state, message, start_time, end_time, last_seq FROM runs WHERE id = ?`+w.lock, runID).
		Scan(&state, &r.Message, &start, &end, &lastSeq)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, 0, fmt.Errorf("%w: run %q", store.ErrNotFound, runID)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("store: reading run %s: %w", runID, err)
	}
	r.State, r.Start, r.End = run.State(state), fromNanos(start), fromNanos(end)
	return r, lastSeq, nil
}

// fence locks the run's row and checks that lease (when given) is still
// the run's.
func (w *writeTx) fence(runID string, lease *store.Lease) error {
	if lease == nil {
		return nil
	}
	var (
		owner string
		epoch int64
	)
	err := w.tx.QueryRowContext(w.ctx, `SELECT owner, epoch FROM runs WHERE id = ?`+w.lock, runID).Scan(&owner, &epoch)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: run %q", store.ErrNotFound, runID)
	}
	if err != nil {
		return fmt.Errorf("store: reading the lease of run %s: %w", runID, err)
	}
	if owner != lease.Owner || epoch != lease.Epoch {
		return fmt.Errorf("%w: run %s is %s's under epoch %d, not %s's under epoch %d", store.ErrFenced, runID, owner, epoch, lease.Owner, lease.Epoch)
	}
	return nil
}

// appendEvents applies and stores evs, which normalizeEvents has checked.
// repair admits the transitions only PrepareRepair makes: a terminal run
// back to PENDING and nodes back to PENDING.
func (w *writeTx) appendEvents(runID string, evs []run.Event, repair bool) ([]run.Event, error) {
	r, lastSeq, err := w.loadRunRow(runID)
	if err != nil {
		return nil, err
	}
	out := make([]run.Event, 0, len(evs))
	for _, ev := range evs {
		if err := run.CheckAppend(*r, ev, repair); err != nil {
			return nil, err
		}
		if (ev.Kind == run.NodeMessage || ev.Kind == run.RunMessage || ev.Kind == run.NodeMetric || ev.Kind == run.NodeProgress || ev.Kind == run.NodeLag || ev.Kind == run.NodeExpectations) && lastSeq >= w.limits.MaxEventsPerRun {
			return nil, fmt.Errorf("%w: run %s holds %d events; the limit is %d (state changes are still accepted)",
				store.ErrTooManyEvents, runID, lastSeq, w.limits.MaxEventsPerRun)
		}
		ev.RunID, ev.Sequence, ev.Time = runID, lastSeq+1, w.now
		if err := w.apply(r, &ev, repair); err != nil {
			return nil, err
		}
		if err := w.insertEvent(ev); err != nil {
			return nil, err
		}
		lastSeq = ev.Sequence
		out = append(out, ev)
	}
	if _, err := w.tx.ExecContext(w.ctx,
		`UPDATE runs SET state = ?, message = ?, start_time = ?, end_time = ?, last_seq = ? WHERE id = ?`,
		string(r.State), r.Message, toNanos(r.Start), toNanos(r.End), lastSeq, r.ID); err != nil {
		return nil, fmt.Errorf("store: updating run %s: %w", r.ID, err)
	}
	return out, nil
}

// apply applies one event to the record by package run's rules and writes
// what it changed of the node and its attempts.
func (w *writeTx) apply(r *run.RunRecord, ev *run.Event, repair bool) error {
	if ev.Kind == run.RunStateChanged {
		return run.ApplyRunState(r, ev, repair, w.now, func() (string, run.NodeState, error) { return w.liveNode(r.ID) })
	}
	if ev.Kind == run.RunMessage || (ev.Kind == run.NodeMessage && ev.Node == "") {
		return run.ApplyMessage(r.ID, nil, ev)
	}
	n, err := w.loadNode(r.ID, ev.Node)
	if err != nil {
		return err
	}
	switch ev.Kind {
	case run.NodeStateChanged:
		ch, err := run.ApplyNodeState(r.ID, n, ev, repair, w.now)
		if err != nil {
			return err
		}
		if ch.Open > 0 {
			if _, err := w.tx.ExecContext(w.ctx, `INSERT INTO attempts (run_id, node, attempt, state, start_time, end_time, error)
				VALUES (?, ?, ?, ?, ?, 0, NULL)`, r.ID, n.Name, ch.Open, string(run.NodeRunning), toNanos(w.now)); err != nil {
				return fmt.Errorf("store: opening attempt %d of node %q: %w", ch.Open, n.Name, err)
			}
		}
		if ch.Close > 0 {
			if err := w.closeAttempt(r.ID, n.Name, ch.Close, ch.CloseState, ch.CloseError); err != nil {
				return err
			}
		}
		return w.saveNode(r.ID, n)
	case run.NodeMessage:
		return run.ApplyMessage(r.ID, n, ev)
	case run.NodeProgress:
		return run.ApplyProgress(r.ID, *n, ev)
	case run.NodeLag:
		return run.ApplyLag(r.ID, *n, ev)
	case run.NodeExpectations:
		return run.ApplyExpectations(r.ID, *n, ev)
	case run.NodeMetric:
		if err := run.ApplyMetric(r.ID, *n, ev); err != nil {
			return err
		}
		if _, err := w.tx.ExecContext(w.ctx, `INSERT INTO attempt_metrics (run_id, node, attempt, name, value)
			VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (run_id, node, attempt, name) DO UPDATE SET value = excluded.value`,
			r.ID, n.Name, ev.Attempt, ev.MetricName, ev.MetricValue); err != nil {
			return fmt.Errorf("store: recording metric %q of node %q: %w", ev.MetricName, n.Name, err)
		}
		return nil
	}
	return fmt.Errorf("%w: unknown event kind %q", store.ErrInvalidEvent, ev.Kind)
}

// liveNode finds the first node of the run, in plan order, with an attempt
// under way or about to be retried.
func (w *writeTx) liveNode(runID string) (string, run.NodeState, error) {
	var name, state string
	err := w.tx.QueryRowContext(w.ctx, `SELECT name, state FROM nodes
		WHERE run_id = ? AND state IN (?, ?, ?) ORDER BY position LIMIT 1`,
		runID, string(run.NodeRunning), string(run.NodeRetrying), string(run.NodeStreaming)).Scan(&name, &state)
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", nil
	}
	if err != nil {
		return "", "", fmt.Errorf("store: reading nodes of run %s: %w", runID, err)
	}
	return name, run.NodeState(state), nil
}

func (w *writeTx) loadNode(runID, name string) (*run.NodeRecord, error) {
	n := &run.NodeRecord{Name: name}
	var (
		state      string
		start, end int64
		errJSON    sql.NullString
	)
	err := w.tx.QueryRowContext(w.ctx,
		`SELECT state, attempt, start_time, end_time, error FROM nodes WHERE run_id = ? AND name = ?`,
		runID, name).Scan(&state, &n.Attempt, &start, &end, &errJSON)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: run %s has no node %q", store.ErrInvalidEvent, runID, name)
	}
	if err != nil {
		return nil, fmt.Errorf("store: reading node %q of run %s: %w", name, runID, err)
	}
	n.State, n.Start, n.End = run.NodeState(state), fromNanos(start), fromNanos(end)
	if n.Error, err = decodeError(errJSON); err != nil {
		return nil, err
	}
	return n, nil
}

func (w *writeTx) saveNode(runID string, n *run.NodeRecord) error {
	errJSON, err := encodeError(n.Error)
	if err != nil {
		return err
	}
	if _, err := w.tx.ExecContext(w.ctx,
		`UPDATE nodes SET state = ?, attempt = ?, start_time = ?, end_time = ?, error = ? WHERE run_id = ? AND name = ?`,
		string(n.State), n.Attempt, toNanos(n.Start), toNanos(n.End), errJSON, runID, n.Name); err != nil {
		return fmt.Errorf("store: updating node %q of run %s: %w", n.Name, runID, err)
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

// maxObservations bounds a batch's observed metrics: a query has as many
// as its transform observes, a handful.
const maxObservations = 64

// clampSources bounds what a batch's sources say, each text at most max
// bytes; a query has a source per input, a handful.
func clampSources(in []run.SourceProgress, max int) []run.SourceProgress {
	if len(in) == 0 {
		return nil
	}
	out := make([]run.SourceProgress, len(in))
	for i, s := range in {
		for _, f := range []*string{&s.Description, &s.StartOffset, &s.EndOffset, &s.LatestOffset} {
			*f = clampText(*f, max)
		}
		for _, f := range []*float64{&s.InputRate, &s.ProcessRate} {
			if math.IsNaN(*f) || math.IsInf(*f, 0) {
				*f = 0
			}
		}
		out[i] = s
	}
	return out
}

// clampExpectations bounds what expectation results say: names and kinds
// at most maxNameBytes, messages at most max bytes.
func clampExpectations(in []run.ExpectationResult, max int) []run.ExpectationResult {
	out := make([]run.ExpectationResult, len(in))
	for i, r := range in {
		r.Name, r.Kind, r.Severity = clampText(r.Name, maxNameBytes), clampText(r.Kind, maxNameBytes), clampText(r.Severity, maxNameBytes)
		r.Message = clampText(r.Message, max)
		out[i] = r
	}
	return out
}
