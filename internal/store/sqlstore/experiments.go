package sqlstore

// Experiments: the record, its trials and its append-only event log. As
// with runs, every change is an event applied to the record in the
// transaction that stores the event, so the record and its log always
// agree; a watcher reads the log from the database and waits on a signal
// the writer raises after each commit.

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/tauro-exec/tauro-exec/internal/engine/experiment"
	"github.com/tauro-exec/tauro-exec/internal/engine/store"
)

// expSignals wakes the watchers of experiments after a commit.
type expSignals struct {
	mu sync.Mutex
	ch map[string]chan struct{}
}

// changed returns a channel closed at the next commit to experiment id.
func (s *Store) changed(id string) <-chan struct{} {
	s.exps.mu.Lock()
	defer s.exps.mu.Unlock()
	if s.exps.ch == nil {
		s.exps.ch = map[string]chan struct{}{}
	}
	c, ok := s.exps.ch[id]
	if !ok {
		c = make(chan struct{})
		s.exps.ch[id] = c
	}
	return c
}

func (s *Store) signal(id string) {
	s.exps.mu.Lock()
	defer s.exps.mu.Unlock()
	if c, ok := s.exps.ch[id]; ok {
		close(c)
		delete(s.exps.ch, id)
	}
}

func (s *Store) signalAll() {
	s.exps.mu.Lock()
	defer s.exps.mu.Unlock()
	for id, c := range s.exps.ch {
		close(c)
		delete(s.exps.ch, id)
	}
}

// CreateExperiment records a new experiment PENDING with its first event.
// A request id already used in the experiment's project (x.Spec.Project)
// returns that experiment with created false.
func (s *Store) CreateExperiment(ctx context.Context, x experiment.Record) (stored experiment.Record, created bool, err error) {
	if err := checkIdentifier("experiment id", x.ID, maxIDBytes); err != nil {
		return experiment.Record{}, false, err
	}
	if x.RequestID != "" {
		if err := checkIdentifier("request id", x.RequestID, maxIDBytes); err != nil {
			return experiment.Record{}, false, err
		}
	}
	if err := checkProject(x.Spec.Project); err != nil {
		return experiment.Record{}, false, err
	}
	spec, err := json.Marshal(x.Spec)
	if err != nil || len(spec) > s.opt.limits.MaxParamsBytes {
		return experiment.Record{}, false, fmt.Errorf("%w: the experiment's specification cannot be stored (%d bytes, %v)", store.ErrInvalidArgument, len(spec), err)
	}
	shared, _ := json.Marshal(nonNil(x.SharedNodes))
	trial, _ := json.Marshal(nonNil(x.TrialNodes))
	err = s.write(ctx, func(w *writeTx) error {
		var requestID sql.NullString
		if x.RequestID != "" {
			requestID = sql.NullString{String: x.RequestID, Valid: true}
		}
		// DO NOTHING on either unique key, then tell which it was: the
		// request id's experiment is an answer, a taken id an error.
		res, err := w.tx.ExecContext(w.ctx, `
			INSERT INTO experiments (id, project, request_id, pipeline, spec, state, message, shared_nodes, trial_nodes,
				shared_run_id, create_time, start_time, end_time, last_seq, owner)
			VALUES (?, ?, ?, ?, ?, ?, '', ?, ?, '', ?, 0, 0, 0, ?)
			ON CONFLICT DO NOTHING`,
			x.ID, x.Spec.Project, requestID, x.Spec.Pipeline, string(spec), string(experiment.Pending), string(shared), string(trial), toNanos(w.now), x.Owner)
		if err != nil {
			return fmt.Errorf("store: inserting experiment %s: %w", x.ID, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			if x.RequestID != "" {
				id, err := experimentByRequest(w.ctx, w.tx, x.Spec.Project, x.RequestID)
				if err == nil {
					stored.ID = id
				}
				if !errors.Is(err, store.ErrNotFound) {
					return err
				}
			}
			return fmt.Errorf("%w: experiment %q", store.ErrAlreadyExists, x.ID)
		}
		created = true
		return w.appendExperiment(x.ID, experiment.Event{Kind: experiment.StateChanged, State: experiment.Pending})
	})
	if err != nil {
		return experiment.Record{}, false, err
	}
	id := x.ID
	if !created {
		id = stored.ID
	}
	stored, err = s.GetExperiment(ctx, id)
	return stored, created, err
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func experimentByRequest(ctx context.Context, q Querier, project, requestID string) (string, error) {
	var id string
	err := q.QueryRowContext(ctx, `SELECT id FROM experiments WHERE project = ? AND request_id = ?`, project, requestID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("%w: experiment with request id %q in project %q", store.ErrNotFound, requestID, project)
	}
	return id, err
}

// ExperimentByRequestID returns the experiment a request id of the project
// started.
func (s *Store) ExperimentByRequestID(ctx context.Context, project, requestID string) (experiment.Record, error) {
	var id string
	err := s.read(ctx, func(q Querier) error {
		var err error
		id, err = experimentByRequest(ctx, q, project, requestID)
		return err
	})
	if err != nil {
		return experiment.Record{}, err
	}
	return s.GetExperiment(ctx, id)
}

// AppendExperiment stores ev and applies it to the experiment: its state
// (start and end times follow RUNNING and a terminal state), a trial as the
// event carries it, or its shared run. Nothing may follow a terminal state.
func (s *Store) AppendExperiment(ctx context.Context, id string, ev experiment.Event) (experiment.Event, error) {
	var out experiment.Event
	err := s.write(ctx, func(w *writeTx) error {
		if err := w.appendExperiment(id, ev); err != nil {
			return err
		}
		out = w.lastExp
		return nil
	})
	return out, err
}

func (w *writeTx) appendExperiment(id string, ev experiment.Event) error {
	var (
		state string
		last  int64
	)
	err := w.tx.QueryRowContext(w.ctx, `SELECT state, last_seq FROM experiments WHERE id = ?`+w.lock, id).Scan(&state, &last)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: experiment %q", store.ErrNotFound, id)
	}
	if err != nil {
		return err
	}
	if experiment.State(state).Terminal() {
		return fmt.Errorf("%w: experiment %s is %s", store.ErrRunEnded, id, state)
	}
	ev.ExperimentID, ev.Sequence, ev.Time = id, last+1, w.now
	ev.Message = clampText(ev.Message, w.limits.MaxTextBytes)
	now := toNanos(w.now)
	switch ev.Kind {
	case experiment.StateChanged:
		switch ev.State {
		case experiment.Running:
			_, err = w.tx.ExecContext(w.ctx, `UPDATE experiments SET state = ?, message = '',
				start_time = CASE start_time WHEN 0 THEN ? ELSE start_time END WHERE id = ?`, string(ev.State), now, id)
		case experiment.Pending:
		default:
			_, err = w.tx.ExecContext(w.ctx, `UPDATE experiments SET state = ?, message = ?, end_time = ? WHERE id = ?`,
				string(ev.State), ev.Message, now, id)
		}
	case experiment.TrialChanged:
		if ev.Trial == nil {
			return fmt.Errorf("%w: a trial event without its trial", store.ErrInvalidEvent)
		}
		t := *ev.Trial
		t.Message = clampText(t.Message, w.limits.MaxTextBytes)
		ev.Trial = &t
		body, jerr := json.Marshal(t)
		if jerr != nil {
			return fmt.Errorf("%w: encoding trial %d: %v", store.ErrInvalidEvent, t.Number, jerr)
		}
		_, err = w.tx.ExecContext(w.ctx, `INSERT INTO trials (experiment_id, number, body) VALUES (?, ?, ?)
			ON CONFLICT (experiment_id, number) DO UPDATE SET body = excluded.body`, id, t.Number, string(body))
	case experiment.SharedRunChanged:
		_, err = w.tx.ExecContext(w.ctx, `UPDATE experiments SET shared_run_id = ? WHERE id = ?`, ev.RunID, id)
	default:
		return fmt.Errorf("%w: unknown experiment event kind %q", store.ErrInvalidEvent, ev.Kind)
	}
	if err != nil {
		return fmt.Errorf("store: applying an event to experiment %s: %w", id, err)
	}
	payload, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("%w: encoding event: %v", store.ErrInvalidEvent, err)
	}
	if _, err := w.tx.ExecContext(w.ctx, `INSERT INTO experiment_events (experiment_id, seq, time, payload) VALUES (?, ?, ?, ?)`,
		id, ev.Sequence, now, string(payload)); err != nil {
		return fmt.Errorf("store: inserting event %d of experiment %s: %w", ev.Sequence, id, err)
	}
	if _, err := w.tx.ExecContext(w.ctx, `UPDATE experiments SET last_seq = ? WHERE id = ?`, ev.Sequence, id); err != nil {
		return err
	}
	w.lastExp = ev
	w.experiments = append(w.experiments, id)
	return nil
}

const experimentColumns = `id, project, COALESCE(request_id, ''), spec, state, message, shared_nodes, trial_nodes, shared_run_id,
	create_time, start_time, end_time, last_seq, owner`

func scanExperiment(sc interface{ Scan(...any) error }) (experiment.Record, error) {
	var (
		x                                  experiment.Record
		project, spec, state, shared, trls string
		ct, st, et                         int64
	)
	if err := sc.Scan(&x.ID, &project, &x.RequestID, &spec, &state, &x.Message, &shared, &trls, &x.SharedRunID, &ct, &st, &et, &x.LastSequence, &x.Owner); err != nil {
		return x, err
	}
	x.State = experiment.State(state)
	x.CreateTime, x.StartTime, x.EndTime = fromNanos(ct), fromNanos(st), fromNanos(et)
	if err := json.Unmarshal([]byte(spec), &x.Spec); err != nil {
		return x, fmt.Errorf("decoding the specification of experiment %s: %w", x.ID, err)
	}
	// The column, as for runs: older specifications name no project.
	x.Spec.Project = project
	_ = json.Unmarshal([]byte(shared), &x.SharedNodes)
	_ = json.Unmarshal([]byte(trls), &x.TrialNodes)
	return x, nil
}

// GetExperiment returns an experiment with its trials.
func (s *Store) GetExperiment(ctx context.Context, id string) (experiment.Record, error) {
	if s.closed() {
		return experiment.Record{}, store.ErrClosed
	}
	var x experiment.Record
	err := s.read(ctx, func(tx Querier) error {
		var err error
		x, err = scanExperiment(tx.QueryRowContext(ctx, `SELECT `+experimentColumns+` FROM experiments WHERE id = ?`, id))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: experiment %q", store.ErrNotFound, id)
		}
		if err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT body FROM trials WHERE experiment_id = ? ORDER BY number`, id)
		if err != nil {
			return err
		}
		err = eachRow(rows, func() error {
			var body string
			if err := rows.Scan(&body); err != nil {
				return err
			}
			var t experiment.Trial
			if err := json.Unmarshal([]byte(body), &t); err != nil {
				return fmt.Errorf("decoding a trial of experiment %s: %w", id, err)
			}
			x.Trials = append(x.Trials, t)
			return nil
		})
		if err != nil {
			return err
		}
		return fillExperimentMLflow(ctx, tx, &x)
	})
	return x, err
}

// ListExperiments returns experiments newest first, with their trials,
// and a token for the next page. f.Projects and f.Pipeline filter as in
// ListRuns; f.States is ignored.
func (s *Store) ListExperiments(ctx context.Context, f store.ListFilter, pageSize int, pageToken string) ([]experiment.Record, string, error) {
	if s.closed() {
		return nil, "", store.ErrClosed
	}
	switch {
	case pageSize < 0:
		return nil, "", fmt.Errorf("%w: page size %d is negative", store.ErrInvalidArgument, pageSize)
	case pageSize == 0:
		pageSize = store.DefaultPageSize
	case pageSize > store.MaxPageSize:
		pageSize = store.MaxPageSize
	}
	// The States of an experiment's token say it is one, so that a token
	// of ListRuns is refused here.
	filter := pageCursor{Pipeline: f.Pipeline, States: []string{"experiments"}, Projects: normalizeProjects(f.Projects)}
	query := `SELECT ` + experimentColumns + ` FROM experiments WHERE (? = '' OR pipeline = ?)`
	args := []any{f.Pipeline, f.Pipeline}
	if len(filter.Projects) > 0 {
		query += ` AND project IN (` + placeholders(len(filter.Projects)) + `)`
		args = append(args, anys(filter.Projects)...)
	}
	if pageToken != "" {
		c, err := decodePageToken(pageToken, filter)
		if err != nil {
			return nil, "", err
		}
		query += ` AND (create_time < ? OR (create_time = ? AND id < ?))`
		args = append(args, c.CreateTime, c.CreateTime, c.ID)
	}
	if filter.Projects != nil && len(filter.Projects) == 0 {
		return nil, "", nil // any of no projects: none
	}
	query += ` ORDER BY create_time DESC, id DESC LIMIT ?`
	args = append(args, pageSize+1)
	var out []experiment.Record
	err := s.read(ctx, func(q Querier) error {
		rows, err := q.QueryContext(ctx, query, args...)
		if err != nil {
			return err
		}
		return eachRow(rows, func() error {
			x, err := scanExperiment(rows)
			out = append(out, x)
			return err
		})
	})
	if err != nil {
		return nil, "", fmt.Errorf("store: listing experiments: %w", err)
	}
	for i := range out { // their trials too, for the best of each
		full, err := s.GetExperiment(ctx, out[i].ID)
		if err != nil {
			return nil, "", err
		}
		out[i].Trials = full.Trials
	}
	next := ""
	if len(out) > pageSize {
		out = out[:pageSize]
		lastX := out[len(out)-1]
		filter.CreateTime, filter.ID = toNanos(lastX.CreateTime), lastX.ID
		next = encodePageToken(filter)
	}
	return out, next, nil
}

// LiveExperiments returns the ids of experiments not ended, oldest first:
// those a restarted execd resumes.
func (s *Store) LiveExperiments(ctx context.Context) ([]string, error) {
	return s.ids(ctx, `SELECT id FROM experiments WHERE state IN (?, ?) ORDER BY create_time, id`,
		string(experiment.Pending), string(experiment.Running))
}

// ExperimentEvents returns up to limit events after sequence after, and
// whether the experiment had ended with nothing after them, from one
// snapshot; with it, the channel that is closed at the next commit (taken
// before the read, so no commit can fall between them unseen).
func (s *Store) ExperimentEvents(ctx context.Context, id string, after int64, limit int) (evs []experiment.Event, ended bool, next <-chan struct{}, err error) {
	if s.closed() {
		return nil, false, nil, store.ErrClosed
	}
	next = s.changed(id)
	err = s.read(ctx, func(tx Querier) error {
		var (
			state string
			last  int64
		)
		err := tx.QueryRowContext(ctx, `SELECT state, last_seq FROM experiments WHERE id = ?`, id).Scan(&state, &last)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: experiment %q", store.ErrNotFound, id)
		}
		if err != nil {
			return err
		}
		if after < 0 || after > last {
			return fmt.Errorf("%w: after sequence %d is outside the experiment's events (0 to %d)", store.ErrInvalidArgument, after, last)
		}
		rows, err := tx.QueryContext(ctx, `SELECT seq, time, payload FROM experiment_events
			WHERE experiment_id = ? AND seq > ? ORDER BY seq LIMIT ?`, id, after, limit)
		if err != nil {
			return err
		}
		err = eachRow(rows, func() error {
			var (
				ev      experiment.Event
				t       int64
				payload string
			)
			if err := rows.Scan(&ev.Sequence, &t, &payload); err != nil {
				return err
			}
			if err := json.Unmarshal([]byte(payload), &ev); err != nil {
				return err
			}
			ev.ExperimentID, ev.Time = id, fromNanos(t)
			evs = append(evs, ev)
			return nil
		})
		ended = experiment.State(state).Terminal() && (len(evs) == 0 || evs[len(evs)-1].Sequence == last)
		return err
	})
	return evs, ended, next, err
}
