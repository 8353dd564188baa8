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

// Watch returns a Watcher for the run's events with sequence > after. It
// fails with store.ErrNotFound for an unknown run and with store.ErrInvalidArgument
// when after is negative or beyond the run's last event (sequences are
// only ever learnt from the store, so such a value is a client's mistake).
// ctx bounds the whole watch.
func (s *Store) Watch(ctx context.Context, runID string, after int64) (*store.Watcher, error) {
	if s.closed() {
		return nil, store.ErrClosed
	}
	if after < 0 {
		return nil, fmt.Errorf("%w: after sequence %d is negative", store.ErrInvalidArgument, after)
	}
	var last int64
	err := s.queryRow(ctx, `SELECT last_seq FROM runs WHERE id = ?`, []any{runID}, &last)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: run %q", store.ErrNotFound, runID)
	}
	if err != nil {
		return nil, fmt.Errorf("store: reading run %s: %w", runID, err)
	}
	if after > last {
		return nil, fmt.Errorf("%w: after sequence %d is beyond the last event of run %s (%d)", store.ErrInvalidArgument, after, runID, last)
	}
	return store.NewWatcher(ctx, &s.hub, s, runID, after, s.opt.watchBuffer), nil
}

// Watchers is how many watchers are following runs live now.
func (s *Store) Watchers() int { return s.hub.Count() }

// ReadLog returns up to limit events of the run from sequence from on and,
// when that is all there is (fewer than limit), whether the run has ended:
// both from one snapshot, so "ended" means "ended with nothing after".
func (s *Store) ReadLog(ctx context.Context, runID string, from int64, limit int) (evs []run.Event, ended bool, err error) {
	err = s.read(ctx, func(tx Querier) error {
		var err error
		if evs, err = readEvents(ctx, tx, runID, from, limit); err != nil {
			return err
		}
		if len(evs) == limit {
			return nil
		}
		var state string
		err = tx.QueryRowContext(ctx, `SELECT state FROM runs WHERE id = ?`, runID).Scan(&state)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: run %q", store.ErrNotFound, runID)
		}
		ended = run.State(state).Terminal()
		return err
	})
	return evs, ended, err
}

// Events returns up to limit events of the run with sequence > after, in
// order (limit 0 means 1000; at most 10000). store.ErrNotFound for an unknown run.
func (s *Store) Events(ctx context.Context, runID string, after int64, limit int) ([]run.Event, error) {
	if s.closed() {
		return nil, store.ErrClosed
	}
	switch {
	case after < 0:
		return nil, fmt.Errorf("%w: after sequence %d is negative", store.ErrInvalidArgument, after)
	case limit < 0:
		return nil, fmt.Errorf("%w: limit %d is negative", store.ErrInvalidArgument, limit)
	case limit == 0:
		limit = 1000
	case limit > 10000:
		limit = 10000
	}
	var evs []run.Event
	err := s.read(ctx, func(tx Querier) error {
		var exists int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM runs WHERE id = ?`, runID).Scan(&exists)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: run %q", store.ErrNotFound, runID)
		}
		if err != nil {
			return err
		}
		evs, err = readEvents(ctx, tx, runID, after+1, limit)
		return err
	})
	return evs, err
}

func readEvents(ctx context.Context, q Querier, runID string, from int64, limit int) ([]run.Event, error) {
	rows, err := q.QueryContext(ctx,
		`SELECT seq, time, payload FROM events WHERE run_id = ? AND seq >= ? ORDER BY seq LIMIT ?`,
		runID, from, limit)
	if err != nil {
		return nil, fmt.Errorf("store: reading events of run %s: %w", runID, err)
	}
	var evs []run.Event
	err = eachRow(rows, func() error {
		var (
			ev      run.Event
			t       int64
			payload string
		)
		if err := rows.Scan(&ev.Sequence, &t, &payload); err != nil {
			return err
		}
		if err := json.Unmarshal([]byte(payload), &ev); err != nil {
			return fmt.Errorf("decoding event %d: %w", ev.Sequence, err)
		}
		ev.RunID, ev.Time = runID, fromNanos(t)
		evs = append(evs, ev)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: reading events of run %s: %w", runID, err)
	}
	return evs, nil
}
