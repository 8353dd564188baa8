package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"sync"

	"github.com/tauro-exec/tauro-exec/internal/engine/run"
)

// Watching a run, and why it is exactly-once
//
// A watcher subscribes to live events first and reads the database second.
// Every event is committed before it is published, and published in
// sequence order, so every event is in at least one of the two places the
// watcher looks: committed before the read (the read sees it) or published
// after the subscription (the buffer gets it). The watcher keeps the
// sequence it expects next and uses it to drop what it already has and to
// notice what it missed: a live event beyond the expected one means the
// buffer overflowed, and the watcher reads the database from where it is.
// Publishing never blocks; an overflowing buffer also raises a one-slot
// "missed" signal, so a watcher whose last events were dropped does not
// wait for a next event that may never come.

// hub hands committed events to the watchers of their run.
type hub struct {
	mu   sync.Mutex
	subs map[string]map[*subscriber]struct{}
}

type subscriber struct {
	events chan run.Event
	missed chan struct{}
}

func (h *hub) subscribe(runID string, buffer int) *subscriber {
	sub := &subscriber{events: make(chan run.Event, buffer), missed: make(chan struct{}, 1)}
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.subs[runID]
	if m == nil {
		m = map[*subscriber]struct{}{}
		h.subs[runID] = m
	}
	m[sub] = struct{}{}
	return sub
}

// count is how many watchers are subscribed.
func (h *hub) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, m := range h.subs {
		n += len(m)
	}
	return n
}

func (h *hub) unsubscribe(runID string, sub *subscriber) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.subs[runID], sub)
	if len(h.subs[runID]) == 0 {
		delete(h.subs, runID)
	}
}

// publish offers committed events to their watchers without blocking. The
// writer calls it before it lets the next write in, so events reach every
// watcher in sequence order.
func (h *hub) publish(evs []run.Event) {
	if len(evs) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, ev := range evs {
		for sub := range h.subs[ev.RunID] {
			e := ev
			e.Error = cloneError(ev.Error) // watchers must not share it
			select {
			case sub.events <- e:
			default:
				select {
				case sub.missed <- struct{}{}:
				default:
				}
			}
		}
	}
}

// Watcher streams one run's events: every event after the sequence given
// to Watch, exactly once and in order, first from the database and then
// live. It ends after the run's terminal event, when its context ends, or
// when the store closes; Err tells which.
//
// A terminal event ends the stream only if no later event exists when the
// watcher gets to it. That later event can only be a repair reopening the
// run, so a watcher replaying a repaired run from the start reads through
// the first failure into the repair, while a live watcher normally ends at
// the failure (watch again with its last sequence to follow a repair).
//
// A Watcher is used by one goroutine. Ranging over Events again after a
// break resumes where the previous range stopped.
type Watcher struct {
	s     *Store
	ctx   context.Context
	runID string
	next  int64 // the sequence owed to the consumer next
	done  bool
	err   error
	// fallbacks counts reads from the database after the live buffer
	// missed events; tests use it to prove that path runs.
	fallbacks int
}

// Watch returns a Watcher for the run's events with sequence > after. It
// fails with ErrNotFound for an unknown run and with ErrInvalidArgument
// when after is negative or beyond the run's last event (sequences are
// only ever learnt from the store, so such a value is a client's mistake).
// ctx bounds the whole watch.
func (s *Store) Watch(ctx context.Context, runID string, after int64) (*Watcher, error) {
	if s.closed() {
		return nil, ErrClosed
	}
	if after < 0 {
		return nil, fmt.Errorf("%w: after sequence %d is negative", ErrInvalidArgument, after)
	}
	var last int64
	err := s.reader.QueryRowContext(ctx, `SELECT last_seq FROM runs WHERE id = ?`, runID).Scan(&last)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: run %q", ErrNotFound, runID)
	}
	if err != nil {
		return nil, fmt.Errorf("store: reading run %s: %w", runID, err)
	}
	if after > last {
		return nil, fmt.Errorf("%w: after sequence %d is beyond the last event of run %s (%d)", ErrInvalidArgument, after, runID, last)
	}
	return &Watcher{s: s, ctx: ctx, runID: runID, next: after + 1}, nil
}

// Watchers is how many watchers are following runs live now.
func (s *Store) Watchers() int { return s.hub.count() }

// Err reports why the stream ended: nil after the run's terminal event,
// the context's error, ErrClosed, or a database error.
func (w *Watcher) Err() error { return w.err }

// Last is the sequence of the last event delivered (or the after given to
// Watch): the value to resume from.
func (w *Watcher) Last() int64 { return w.next - 1 }

// Events yields the events. Live events are buffered per watcher while the
// range is running; a consumer slower than the run's writer falls back to
// the database and never slows the writer down.
func (w *Watcher) Events() iter.Seq[run.Event] {
	return func(yield func(run.Event) bool) {
		if w.done {
			return
		}
		sub := w.s.hub.subscribe(w.runID, w.s.opt.watchBuffer)
		defer w.s.hub.unsubscribe(w.runID, sub)
		if w.catchUp(yield) {
			return
		}
		for {
			select {
			case <-w.ctx.Done():
				w.finish(w.ctx.Err())
				return
			case <-w.s.done:
				w.finish(ErrClosed)
				return
			case <-sub.missed:
				w.fallbacks++
				if w.catchUp(yield) {
					return
				}
			case ev := <-sub.events:
				switch {
				case ev.Sequence < w.next:
					// Already delivered from the database.
				case ev.Sequence > w.next:
					w.fallbacks++
					if w.catchUp(yield) {
						return
					}
				default:
					if !w.deliver(ev, yield) {
						return
					}
					// Whether the stream is over depends on whether a
					// repair has already followed; the database knows.
					if ev.Terminal() && w.catchUp(yield) {
						return
					}
				}
			}
		}
	}
}

// watchPage is how many events a watcher reads from the database at once.
const watchPage = 512

// catchUp delivers every stored event from w.next on. It reports whether
// the range must stop: the consumer broke off, the stream ended, or
// reading failed.
func (w *Watcher) catchUp(yield func(run.Event) bool) (stop bool) {
	for {
		evs, ended, err := w.s.readLog(w.ctx, w.runID, w.next, watchPage)
		if err != nil {
			w.finish(err)
			return true
		}
		for _, ev := range evs {
			if !w.deliver(ev, yield) {
				return true
			}
		}
		if len(evs) < watchPage {
			if ended {
				w.finish(nil)
			}
			return ended
		}
	}
}

// deliver hands ev, which must be the next in sequence, to the consumer and
// reports whether the consumer wants more.
func (w *Watcher) deliver(ev run.Event, yield func(run.Event) bool) bool {
	if ev.Sequence != w.next {
		w.finish(fmt.Errorf("store: run %s: expected event %d, got %d", w.runID, w.next, ev.Sequence))
		return false
	}
	w.next++
	return yield(ev)
}

func (w *Watcher) finish(err error) {
	if err != nil && w.s.closed() && w.ctx.Err() == nil {
		err = ErrClosed
	}
	w.done, w.err = true, err
}

// readLog returns up to limit events of the run from sequence from on and,
// when that is all there is (fewer than limit), whether the run has ended:
// both from one snapshot, so "ended" means "ended with nothing after".
func (s *Store) readLog(ctx context.Context, runID string, from int64, limit int) (evs []run.Event, ended bool, err error) {
	err = s.read(ctx, func(tx *sql.Tx) error {
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
			return fmt.Errorf("%w: run %q", ErrNotFound, runID)
		}
		ended = run.State(state).Terminal()
		return err
	})
	return evs, ended, err
}

// Events returns up to limit events of the run with sequence > after, in
// order (limit 0 means 1000; at most 10000). ErrNotFound for an unknown run.
func (s *Store) Events(ctx context.Context, runID string, after int64, limit int) ([]run.Event, error) {
	if s.closed() {
		return nil, ErrClosed
	}
	switch {
	case after < 0:
		return nil, fmt.Errorf("%w: after sequence %d is negative", ErrInvalidArgument, after)
	case limit < 0:
		return nil, fmt.Errorf("%w: limit %d is negative", ErrInvalidArgument, limit)
	case limit == 0:
		limit = 1000
	case limit > 10000:
		limit = 10000
	}
	var evs []run.Event
	err := s.read(ctx, func(tx *sql.Tx) error {
		var exists int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM runs WHERE id = ?`, runID).Scan(&exists)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: run %q", ErrNotFound, runID)
		}
		if err != nil {
			return err
		}
		evs, err = readEvents(ctx, tx, runID, after+1, limit)
		return err
	})
	return evs, err
}

func readEvents(ctx context.Context, q querier, runID string, from int64, limit int) ([]run.Event, error) {
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
