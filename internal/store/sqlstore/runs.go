package sqlstore

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	"github.com/tauro-exec/tauro-exec/internal/engine/store"
)

// CreateRun records a new run in state PENDING with every node PENDING, and
// its first event (sequence 1, run_state PENDING, r.Message as message).
// Only r.ID, r.RequestID, r.Params, r.Message and the node names are read;
// an empty ID gets a random one, and CreateTime is the store's clock.
//
// A non-empty RequestID makes the call idempotent: if a run of the same
// project (r.Params.Project) has that request id, it is returned with
// created false and nothing is written, even if the parameters differ (the
// caller decides whether that is an error). (project, request id) is a
// unique key written in the same transaction as the run, so concurrent
// calls cannot both create one.
func (s *Store) CreateRun(ctx context.Context, r run.Run) (stored run.Run, created bool, err error) {
	if r.ID == "" {
		r.ID = newRunID()
	}
	if err := checkIdentifier("run id", r.ID, maxIDBytes); err != nil {
		return run.Run{}, false, err
	}
	if r.RequestID != "" {
		if err := checkIdentifier("request id", r.RequestID, maxIDBytes); err != nil {
			return run.Run{}, false, err
		}
	}
	if err := checkProject(r.Params.Project); err != nil {
		return run.Run{}, false, err
	}
	if len(r.Nodes) > s.opt.limits.MaxNodes {
		return run.Run{}, false, fmt.Errorf("%w: the run has %d nodes; the limit is %d", store.ErrInvalidArgument, len(r.Nodes), s.opt.limits.MaxNodes)
	}
	seen := make(map[string]bool, len(r.Nodes))
	for i, n := range r.Nodes {
		if err := checkIdentifier(fmt.Sprintf("nodes[%d].name", i), n.Name, maxNameBytes); err != nil {
			return run.Run{}, false, err
		}
		if seen[n.Name] {
			return run.Run{}, false, fmt.Errorf("%w: node %q is listed twice", store.ErrInvalidArgument, n.Name)
		}
		seen[n.Name] = true
	}
	params, err := encodeParams(r.Params, s.opt.limits.MaxParamsBytes)
	if err != nil {
		return run.Run{}, false, err
	}
	msg := clampText(r.Message, s.opt.limits.MaxTextBytes)

	err = s.write(ctx, func(w *writeTx) error {
		var requestID sql.NullString
		if r.RequestID != "" {
			requestID = sql.NullString{String: r.RequestID, Valid: true}
		}
		// DO NOTHING on either unique key (id, (project, request_id)) and
		// then tell which one it was: the request id's run is an answer, a
		// taken id is an error.
		var epoch int64
		if r.Owner != "" {
			epoch = 1
		}
		res, err := w.tx.ExecContext(w.ctx, `
			INSERT INTO runs (id, project, request_id, pipeline, params, state, message,
				create_time, start_time, end_time, repair_count, last_seq, owner, epoch)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, 0, 0, 1, ?, ?)
			ON CONFLICT DO NOTHING`,
			r.ID, r.Params.Project, requestID, r.Params.Pipeline, params, string(run.Pending), msg, toNanos(w.now), r.Owner, epoch)
		if err != nil {
			return fmt.Errorf("store: inserting run %s: %w", r.ID, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			if r.RequestID != "" {
				stored, err = readRunByRequestID(w.ctx, w.tx, r.Params.Project, r.RequestID)
				if !errors.Is(err, store.ErrNotFound) {
					return err
				}
			}
			return fmt.Errorf("%w: run %q", store.ErrAlreadyExists, r.ID)
		}
		if r.Owner != "" {
			if err := w.recordLease(r.ID, r.Owner, epoch); err != nil {
				return err
			}
		}
		for i, n := range r.Nodes {
			if _, err := w.tx.ExecContext(w.ctx, `
				INSERT INTO nodes (run_id, name, position, state, attempt, start_time, end_time, error)
				VALUES (?, ?, ?, ?, 0, 0, 0, NULL)`,
				r.ID, n.Name, i, string(run.NodePending)); err != nil {
				return fmt.Errorf("store: inserting node %q of run %s: %w", n.Name, r.ID, err)
			}
		}
		if err := w.insertEvent(run.Event{
			RunID: r.ID, Sequence: 1, Time: w.now,
			Kind: run.RunStateChanged, RunState: run.Pending, Message: msg,
		}); err != nil {
			return err
		}
		created = true
		stored, err = readRun(w.ctx, w.tx, r.ID)
		return err
	})
	if err != nil {
		return run.Run{}, false, err
	}
	return stored, created, nil
}

// encodeParams encodes p and decodes it again, so that nothing is stored
// that GetRun could not read back (NaN, nesting deeper than the decoder
// accepts, values JSON cannot hold).
func encodeParams(p run.Params, maxBytes int) (string, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return "", fmt.Errorf("%w: parameters cannot be stored: %v", store.ErrInvalidArgument, err)
	}
	if len(b) > maxBytes {
		return "", fmt.Errorf("%w: parameters are %d bytes as JSON; the limit is %d", store.ErrInvalidArgument, len(b), maxBytes)
	}
	if err := json.Unmarshal(b, new(run.Params)); err != nil {
		return "", fmt.Errorf("%w: parameters cannot be read back: %v", store.ErrInvalidArgument, err)
	}
	return string(b), nil
}

// newRunID is used only when the caller has no id of its own.
func newRunID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "run-" + hex.EncodeToString(b[:])
}

// GetRun returns a run with its nodes in the order they were created and
// each node's attempts in order. store.ErrNotFound if there is no such run.
func (s *Store) GetRun(ctx context.Context, id string) (run.Run, error) {
	if s.closed() {
		return run.Run{}, store.ErrClosed
	}
	var r run.Run
	err := s.read(ctx, func(tx Querier) error {
		var err error
		r, err = readRun(ctx, tx, id)
		return err
	})
	return r, err
}

// RunByRequestID returns the project's run created with the request id, or
// store.ErrNotFound.
func (s *Store) RunByRequestID(ctx context.Context, project, requestID string) (run.Run, error) {
	if s.closed() {
		return run.Run{}, store.ErrClosed
	}
	var r run.Run
	err := s.read(ctx, func(tx Querier) error {
		var err error
		r, err = readRunByRequestID(ctx, tx, project, requestID)
		return err
	})
	return r, err
}

func readRun(ctx context.Context, q Querier, id string) (run.Run, error) {
	rows, err := q.QueryContext(ctx, "SELECT "+runColumns+" FROM runs WHERE id = ?", id)
	if err != nil {
		return run.Run{}, fmt.Errorf("store: reading run %s: %w", id, err)
	}
	return oneRun(ctx, q, rows, fmt.Sprintf("run %q", id))
}

func readRunByRequestID(ctx context.Context, q Querier, project, requestID string) (run.Run, error) {
	rows, err := q.QueryContext(ctx, "SELECT "+runColumns+" FROM runs WHERE project = ? AND request_id = ?", project, requestID)
	if err != nil {
		return run.Run{}, fmt.Errorf("store: reading the run of request %s in project %q: %w", requestID, project, err)
	}
	return oneRun(ctx, q, rows, fmt.Sprintf("run with request id %q in project %q", requestID, project))
}

func oneRun(ctx context.Context, q Querier, rows *sql.Rows, what string) (run.Run, error) {
	runs, err := scanRuns(rows)
	if err != nil {
		return run.Run{}, err
	}
	if len(runs) == 0 {
		return run.Run{}, fmt.Errorf("%w: %s", store.ErrNotFound, what)
	}
	if err := fillNodes(ctx, q, runs); err != nil {
		return run.Run{}, err
	}
	return runs[0], nil
}

// scanRuns reads rows of runColumns and closes them.
func scanRuns(rows *sql.Rows) ([]run.Run, error) {
	defer rows.Close()
	var runs []run.Run
	for rows.Next() {
		var (
			r                      run.Run
			project, params, state string
			create, start, end_    int64
		)
		if err := rows.Scan(&r.ID, &project, &r.RequestID, &params, &state, &r.Message,
			&create, &start, &end_, &r.RepairCount, &r.LastSequence, &r.Owner, &r.Epoch); err != nil {
			return nil, fmt.Errorf("store: reading runs: %w", err)
		}
		if err := json.Unmarshal([]byte(params), &r.Params); err != nil {
			return nil, fmt.Errorf("store: decoding the parameters of run %s: %w", r.ID, err)
		}
		// The column, not the JSON: runs recorded before projects have
		// none in their parameters, and AdoptUnnamed changes only the
		// column.
		r.Params.Project = project
		r.State = run.State(state)
		r.CreateTime, r.StartTime, r.EndTime = fromNanos(create), fromNanos(start), fromNanos(end_)
		runs = append(runs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: reading runs: %w", err)
	}
	return runs, nil
}

// fillNodes loads the nodes, attempts, metrics and MLflow runs of runs
// with four queries, whatever the number of runs.
func fillNodes(ctx context.Context, q Querier, runs []run.Run) error {
	if len(runs) == 0 {
		return nil
	}
	ids := make([]any, len(runs))
	byID := make(map[string]*run.Run, len(runs))
	for i := range runs {
		ids[i] = runs[i].ID
		byID[runs[i].ID] = &runs[i]
	}
	in := "(" + placeholders(len(ids)) + ")"

	rows, err := q.QueryContext(ctx, `SELECT run_id, name, state, attempt, start_time, end_time, error
		FROM nodes WHERE run_id IN `+in+` ORDER BY run_id, position`, ids...)
	if err != nil {
		return fmt.Errorf("store: reading nodes: %w", err)
	}
	err = eachRow(rows, func() error {
		var (
			runID, state string
			n            run.Node
			start, end_  int64
			errJSON      sql.NullString
		)
		if err := rows.Scan(&runID, &n.Name, &state, &n.Attempt, &start, &end_, &errJSON); err != nil {
			return err
		}
		n.State, n.StartTime, n.EndTime = run.NodeState(state), fromNanos(start), fromNanos(end_)
		var err error
		if n.Error, err = decodeError(errJSON); err != nil {
			return err
		}
		r := byID[runID]
		r.Nodes = append(r.Nodes, n)
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: reading nodes: %w", err)
	}

	// Index the nodes only now: the slices above have stopped growing.
	type key struct{ run, node string }
	nodes := map[key]*run.Node{}
	for i := range runs {
		for j := range runs[i].Nodes {
			nodes[key{runs[i].ID, runs[i].Nodes[j].Name}] = &runs[i].Nodes[j]
		}
	}

	rows, err = q.QueryContext(ctx, `SELECT run_id, node, attempt, state, start_time, end_time, error
		FROM attempts WHERE run_id IN `+in+` ORDER BY run_id, node, attempt`, ids...)
	if err != nil {
		return fmt.Errorf("store: reading attempts: %w", err)
	}
	err = eachRow(rows, func() error {
		var (
			runID, node, state string
			a                  run.Attempt
			start, end_        int64
			errJSON            sql.NullString
		)
		if err := rows.Scan(&runID, &node, &a.Attempt, &state, &start, &end_, &errJSON); err != nil {
			return err
		}
		a.State, a.StartTime, a.EndTime = run.NodeState(state), fromNanos(start), fromNanos(end_)
		var err error
		if a.Error, err = decodeError(errJSON); err != nil {
			return err
		}
		if n := nodes[key{runID, node}]; n != nil {
			n.Attempts = append(n.Attempts, a)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: reading attempts: %w", err)
	}

	rows, err = q.QueryContext(ctx, `SELECT run_id, node, attempt, name, value
		FROM attempt_metrics WHERE run_id IN `+in, ids...)
	if err != nil {
		return fmt.Errorf("store: reading metrics: %w", err)
	}
	err = eachRow(rows, func() error {
		var (
			runID, node, name string
			attempt           int
			value             float64
		)
		if err := rows.Scan(&runID, &node, &attempt, &name, &value); err != nil {
			return err
		}
		n := nodes[key{runID, node}]
		if n == nil {
			return nil
		}
		// Attempts are numbered from 1 without gaps.
		if i := attempt - 1; i >= 0 && i < len(n.Attempts) && n.Attempts[i].Attempt == attempt {
			a := &n.Attempts[i]
			if a.Metrics == nil {
				a.Metrics = map[string]float64{}
			}
			a.Metrics[name] = value
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: reading metrics: %w", err)
	}
	// An attempt's expectations are the sum of its expectation events: one
	// for a batch attempt, one per micro-batch for a streaming one.
	rows, err = q.QueryContext(ctx, `SELECT run_id, payload FROM events
		WHERE run_id IN `+in+` AND kind = '`+string(run.NodeExpectations)+`' ORDER BY run_id, seq`, ids...)
	if err != nil {
		return fmt.Errorf("store: reading expectations: %w", err)
	}
	err = eachRow(rows, func() error {
		var runID, payload string
		if err := rows.Scan(&runID, &payload); err != nil {
			return err
		}
		var ev run.Event
		if err := json.Unmarshal([]byte(payload), &ev); err != nil || ev.Expectations == nil {
			return fmt.Errorf("an expectations event of run %s cannot be read: %v", runID, err)
		}
		n := nodes[key{runID, ev.Node}]
		if n == nil {
			return nil
		}
		if i := ev.Attempt - 1; i >= 0 && i < len(n.Attempts) && n.Attempts[i].Attempt == ev.Attempt {
			a := &n.Attempts[i]
			a.Expectations = run.SumExpectations(a.Expectations, ev.Expectations.Results)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: reading expectations: %w", err)
	}
	return fillMLflow(ctx, q, in, ids, runs)
}

// eachRow calls fn for every row and closes rows.
func eachRow(rows *sql.Rows, fn func() error) error {
	defer rows.Close()
	for rows.Next() {
		if err := fn(); err != nil {
			return err
		}
	}
	return rows.Err()
}
