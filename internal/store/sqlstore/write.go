package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/experiment"
	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	"github.com/tauro-exec/tauro-exec/internal/engine/store"
)

// writeTx is one write transaction and what it appends.
type writeTx struct {
	ctx context.Context
	tx  Querier
	// lock is the Backend's row lock.
	lock string
	// now stamps everything the transaction writes, so one batch of
	// events shares one time.
	now    time.Time
	limits store.Limits
	// committed are published to watchers once the transaction commits.
	committed []run.Event
	// experiments are the experiments the transaction appended to.
	experiments []string
	// lastExp is the experiment event the transaction appended last.
	lastExp experiment.Event
}

// write runs fn in a write transaction and, once it has committed, hands
// what it appended to the watchers.
func (s *Store) write(ctx context.Context, fn func(*writeTx) error) error {
	if s.closed() {
		return store.ErrClosed
	}
	var w *writeTx
	err := s.b.Write(ctx, func(ctx context.Context, q Querier) error {
		if s.closed() {
			return store.ErrClosed
		}
		w = &writeTx{ctx: ctx, tx: q, lock: s.lock, now: s.opt.now(), limits: s.opt.limits}
		if err := fn(w); err != nil {
			return err
		}
		if n, ok := s.b.(Notifier); ok && (len(w.committed) > 0 || len(w.experiments) > 0) {
			return n.Notify(ctx, q, runsOf(w.committed), w.experiments)
		}
		return nil
	}, func() {
		s.hub.Publish(w.committed)
		for _, id := range w.experiments {
			s.signal(id)
		}
	})
	if err != nil && s.closed() {
		return store.ErrClosed
	}
	return err
}

// runsOf lists the runs evs belong to, each once.
func runsOf(evs []run.Event) []string {
	var out []string
	for i, ev := range evs {
		if i == 0 || ev.RunID != evs[i-1].RunID {
			out = append(out, ev.RunID)
		}
	}
	return out
}

// insertEvent writes ev, whose RunID, Sequence and Time are set, to the log
// and queues it for publication. The payload holds every field but those
// three, which have columns.
func (w *writeTx) insertEvent(ev run.Event) error {
	payload, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("%w: encoding event: %v", store.ErrInvalidEvent, err)
	}
	if _, err := w.tx.ExecContext(w.ctx,
		`INSERT INTO events (run_id, seq, time, kind, payload) VALUES (?, ?, ?, ?, ?)`,
		ev.RunID, ev.Sequence, toNanos(ev.Time), string(ev.Kind), string(payload)); err != nil {
		return fmt.Errorf("store: inserting event %d of run %s: %w", ev.Sequence, ev.RunID, err)
	}
	w.committed = append(w.committed, ev)
	return nil
}
