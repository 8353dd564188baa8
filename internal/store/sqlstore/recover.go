package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	"github.com/tauro-exec/tauro-exec/internal/engine/store"
)

// Unfinished returns the ids of the runs a previous execd left PENDING or
// RUNNING, oldest first.
func (s *Store) Unfinished(ctx context.Context) ([]string, error) {
	if s.closed() {
		return nil, store.ErrClosed
	}
	ids, err := s.idsInState(ctx, run.Pending, run.Running)
	if err != nil {
		return nil, fmt.Errorf("store: finding unfinished runs: %w", err)
	}
	return ids, nil
}

// Interrupt ends a run a previous execd left PENDING or RUNNING as
// INTERRUPTED, in one transaction, and reports whether it did (false for a
// run that had ended meanwhile).
//
// Its nodes that were RUNNING, STREAMING or RETRYING become CANCELLED with
// an error of type "Interrupted" (closing a running attempt the same way),
// because nothing is running them any more and a run cannot end with nodes
// in flight. (A streaming query on a Spark server that outlived the execd
// does run on: InterruptedQueries says where, for the caller to end it.)
// PENDING nodes stay PENDING: they never started, and a repair runs them
// like any other. Nodes that had ended keep their state. Every event
// already stored is kept; Interrupt only appends.
func (s *Store) Interrupt(ctx context.Context, id string) (bool, error) {
	interrupted := false
	err := s.write(ctx, func(w *writeTx) error {
		// Read the nodes inside the write: what a run holds is decided by
		// the transaction that changes it.
		r, _, err := w.loadRunRow(id)
		if err != nil || r.State.Terminal() || r.State == run.Queued {
			return err
		}
		rows, err := w.tx.QueryContext(w.ctx, `SELECT name FROM nodes WHERE run_id = ? AND state IN (?, ?, ?) ORDER BY position`,
			id, string(run.NodeRunning), string(run.NodeRetrying), string(run.NodeStreaming))
		if err != nil {
			return err
		}
		var evs []run.Event
		err = eachRow(rows, func() error {
			var name string
			if err := rows.Scan(&name); err != nil {
				return err
			}
			evs = append(evs, run.Event{
				Kind: run.NodeStateChanged, Node: name, NodeState: run.NodeCancelled,
				Error: &run.Error{Type: store.InterruptedErrorType, Message: store.InterruptedMessage},
			})
			return nil
		})
		if err != nil {
			return err
		}
		evs = append(evs, run.Event{Kind: run.RunStateChanged, RunState: run.Interrupted, Message: store.InterruptedMessage})
		_, err = w.appendEvents(id, evs, false)
		interrupted = err == nil
		return err
	})
	if err != nil {
		return false, fmt.Errorf("store: interrupting run %s: %w", id, err)
	}
	return interrupted, nil
}

// LiveAttempts returns, for a run a previous execd left RUNNING, each node
// attempt that was under way (RUNNING or STREAMING), in plan order: what a
// restarted execd needs to take it up. A streaming attempt carries where
// its query runs (its STREAMING event) and the newest micro-batch a
// progress event reported, so the events that follow repeat none.
func (s *Store) LiveAttempts(ctx context.Context, runID string) ([]run.LiveAttempt, error) {
	if s.closed() {
		return nil, store.ErrClosed
	}
	var out []run.LiveAttempt
	err := s.read(ctx, func(tx Querier) error {
		rows, err := tx.QueryContext(ctx, `SELECT name, state, attempt, start_time FROM nodes WHERE run_id = ? AND state IN (?, ?) ORDER BY position`,
			runID, string(run.NodeRunning), string(run.NodeStreaming))
		if err != nil {
			return err
		}
		byNode := map[string]int{}
		err = eachRow(rows, func() error {
			var a run.LiveAttempt
			var state string
			var started int64
			if err := rows.Scan(&a.Node, &state, &a.Attempt, &started); err != nil {
				return err
			}
			a.Streaming, a.Started, a.LastBatch = state == string(run.NodeStreaming), fromNanos(started), -1
			byNode[a.Node] = len(out)
			out = append(out, a)
			return nil
		})
		if err != nil || len(out) == 0 {
			return err
		}
		evs, err := tx.QueryContext(ctx, `SELECT payload FROM events WHERE run_id = ? AND kind IN (?, ?) ORDER BY seq`,
			runID, string(run.NodeStateChanged), string(run.NodeProgress))
		if err != nil {
			return err
		}
		return eachRow(evs, func() error {
			var payload string
			var ev run.Event
			if err := evs.Scan(&payload); err != nil {
				return err
			}
			if err := json.Unmarshal([]byte(payload), &ev); err != nil {
				return err
			}
			i, ok := byNode[ev.Node]
			if !ok || ev.Attempt != out[i].Attempt {
				return nil
			}
			switch {
			case ev.Kind == run.NodeStateChanged && ev.NodeState == run.NodeStreaming:
				out[i].Query = ev.Query
			case ev.Kind == run.NodeProgress && ev.Progress != nil:
				out[i].LastBatch = max(out[i].LastBatch, ev.Progress.BatchID)
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: reading the live attempts of run %s: %w", runID, err)
	}
	return out, nil
}

// Queued returns the ids of the QUEUED runs, oldest first.
func (s *Store) Queued(ctx context.Context) ([]string, error) {
	if s.closed() {
		return nil, store.ErrClosed
	}
	ids, err := s.idsInState(ctx, run.Queued)
	if err != nil {
		return nil, fmt.Errorf("store: finding queued runs: %w", err)
	}
	return ids, nil
}

// idsInState returns the ids of the runs in one of states, oldest first.
func (s *Store) idsInState(ctx context.Context, states ...run.State) ([]string, error) {
	args := make([]any, len(states))
	for i, st := range states {
		args[i] = string(st)
	}
	return s.ids(ctx, `SELECT id FROM runs WHERE state IN (`+placeholders(len(states))+`) ORDER BY create_time, id`, args...)
}

// PrepareRepair reopens an ended run for a repair, in one transaction: the
// run goes back to PENDING (its end time cleared, its start time kept),
// its repair count grows by one, and each node in reset goes back to
// PENDING with its error and times cleared. The events say so: a
// run_state PENDING event, then a node_state PENDING event per reset node
// that was not already PENDING. The engine decides which nodes to reset
// and then drives the run as usual, starting with a run_state RUNNING.
//
// Only FAILED, CANCELLED and INTERRUPTED runs can be repaired
// (store.ErrNotRepairable otherwise). A node's attempts are kept and its attempt
// number is kept too, so its next RUNNING event opens attempt n+1.
//
// A non-empty requestID is remembered with the repair, under the run's
// project: a second call with it changes nothing and returns the run as it
// is (repeated=true). The same id in another project is another request.
func (s *Store) PrepareRepair(ctx context.Context, runID string, reset []string, requestID, owner string) (stored run.Run, repeated bool, err error) {
	if len(reset) == 0 {
		return run.Run{}, false, fmt.Errorf("%w: a repair must reset at least one node", store.ErrInvalidArgument)
	}
	if requestID != "" {
		if err := checkIdentifier("request id", requestID, maxIDBytes); err != nil {
			return run.Run{}, false, err
		}
	}
	err = s.write(ctx, func(w *writeTx) error {
		r, _, err := w.loadRunRow(runID)
		if err != nil {
			return err
		}
		if requestID != "" {
			var project string
			if err := w.tx.QueryRowContext(w.ctx, `SELECT project FROM runs WHERE id = ?`, runID).Scan(&project); err != nil {
				return fmt.Errorf("store: reading the project of run %s: %w", runID, err)
			}
			var owner string
			switch err := w.tx.QueryRowContext(w.ctx, `SELECT run_id FROM repair_requests WHERE project = ? AND request_id = ?`, project, requestID).Scan(&owner); {
			case err == nil && owner == runID:
				repeated = true
				stored, err = readRun(w.ctx, w.tx, runID)
				return err
			case err == nil:
				return fmt.Errorf("%w: request id %q already repaired run %s of project %q", store.ErrAlreadyExists, requestID, owner, project)
			case !errors.Is(err, sql.ErrNoRows):
				return fmt.Errorf("store: reading repair request %q: %w", requestID, err)
			}
			if _, err := w.tx.ExecContext(w.ctx, `INSERT INTO repair_requests (project, request_id, run_id) VALUES (?, ?, ?)`, project, requestID, runID); err != nil {
				return fmt.Errorf("store: recording repair request %q: %w", requestID, err)
			}
		}
		switch r.State {
		case run.Failed, run.Cancelled, run.Interrupted:
		default:
			return fmt.Errorf("%w: run %s is %s; only FAILED, CANCELLED or INTERRUPTED runs can be repaired", store.ErrNotRepairable, runID, r.State)
		}
		var (
			count int
			epoch int64
		)
		if err := w.tx.QueryRowContext(w.ctx,
			`UPDATE runs SET repair_count = repair_count + 1 WHERE id = ? RETURNING repair_count, epoch`, runID).Scan(&count, &epoch); err != nil {
			return fmt.Errorf("store: counting the repair of run %s: %w", runID, err)
		}
		if owner != "" {
			// The repairing replica executes the run: it claims it in the
			// transaction that reopens it, so no other takes it as an orphan.
			if _, err := w.tx.ExecContext(w.ctx, `UPDATE runs SET owner = ?, epoch = ?, control = '', control_reason = '' WHERE id = ?`, owner, epoch+1, runID); err != nil {
				return err
			}
			if err := w.recordLease(runID, owner, epoch+1); err != nil {
				return err
			}
		}
		var nodeEvs []run.Event
		seen := map[string]bool{}
		for _, name := range reset {
			if seen[name] {
				continue
			}
			seen[name] = true
			n, err := w.loadNode(runID, name)
			if errors.Is(err, store.ErrInvalidEvent) {
				return fmt.Errorf("%w: run %s has no node %q to reset", store.ErrInvalidArgument, runID, name)
			}
			if err != nil {
				return err
			}
			if n.State != run.NodePending {
				nodeEvs = append(nodeEvs, run.Event{Kind: run.NodeStateChanged, Node: name, NodeState: run.NodePending})
			}
		}
		// The run event comes first: it is what reopens the log.
		evs := append([]run.Event{{
			Kind: run.RunStateChanged, RunState: run.Pending,
			Message: fmt.Sprintf("repair %d: re-running %d node(s)", count, len(seen)),
		}}, nodeEvs...)
		if _, err := w.appendEvents(runID, evs, true); err != nil {
			return err
		}
		stored, err = readRun(w.ctx, w.tx, runID)
		return err
	})
	if err != nil {
		return run.Run{}, false, err
	}
	return stored, repeated, nil
}

// RepairRequest returns the run a repair request id of the project was
// used for (store.ErrNotFound when it was not).
func (s *Store) RepairRequest(ctx context.Context, project, requestID string) (string, error) {
	var runID string
	err := s.read(ctx, func(tx Querier) error {
		return tx.QueryRowContext(ctx, `SELECT run_id FROM repair_requests WHERE project = ? AND request_id = ?`, project, requestID).Scan(&runID)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return "", store.ErrNotFound
	}
	return runID, err
}

// InterruptedQueries returns the streaming queries that were running when
// Recover interrupted the run: for each node that Recover cancelled while
// it was STREAMING, where its query runs, as that STREAMING event recorded
// it. A stream never ends by itself, so the caller ends them. Nodes whose
// STREAMING event recorded no query are left out.
func (s *Store) InterruptedQueries(ctx context.Context, runID string) ([]run.QueryRef, error) {
	if s.closed() {
		return nil, store.ErrClosed
	}
	var out []run.QueryRef
	err := s.read(ctx, func(tx Querier) error {
		rows, err := tx.QueryContext(ctx, `SELECT payload FROM events WHERE run_id = ? AND kind = ? ORDER BY seq`,
			runID, string(run.NodeStateChanged))
		if err != nil {
			return err
		}
		live := map[string]*run.QueryRef{} // node -> its open query
		return eachRow(rows, func() error {
			var payload string
			var ev run.Event
			if err := rows.Scan(&payload); err != nil {
				return err
			}
			if err := json.Unmarshal([]byte(payload), &ev); err != nil {
				return err
			}
			switch {
			case ev.NodeState == run.NodeStreaming:
				live[ev.Node] = ev.Query
			case ev.NodeState == run.NodeCancelled && ev.Error != nil && ev.Error.Type == store.InterruptedErrorType && live[ev.Node] != nil:
				out = append(out, *live[ev.Node])
				fallthrough
			default:
				delete(live, ev.Node)
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: reading the streaming queries of run %s: %w", runID, err)
	}
	return out, nil
}
