package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/experiment"
	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	"github.com/tauro-exec/tauro-exec/internal/engine/store"
)

// querier is what reads need from a transaction or a pool.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// writeTx is one write transaction and the events it commits.
type writeTx struct {
	ctx context.Context
	tx  *writerConn
	// now stamps everything the transaction writes, so one batch of
	// events shares one time.
	now    time.Time
	limits store.Limits
	// committed are published to watchers once the transaction commits.
	committed []run.Event
	// lastExp is the experiment event the transaction appended last.
	lastExp experiment.Event
}

// write runs fn in the writer's transaction and publishes what it appended
// once the transaction has committed. ctx bounds only the wait for the
// writer; see the package documentation for why.
func (s *Store) write(ctx context.Context, fn func(*writeTx) error) error {
	if s.closed() {
		return store.ErrClosed
	}
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.done:
		return store.ErrClosed
	}
	defer func() { <-s.sem }()
	if s.closed() {
		return store.ErrClosed
	}

	wctx := context.WithoutCancel(ctx)
	if err := s.wconn.begin(wctx); err != nil {
		return fmt.Errorf("store: beginning a write: %w", err)
	}
	w := &writeTx{ctx: wctx, tx: s.wconn, now: s.opt.now(), limits: s.opt.limits}
	if err := fn(w); err != nil {
		if rerr := s.wconn.rollback(wctx); rerr != nil {
			return errors.Join(err, rerr)
		}
		return err
	}
	if err := s.wconn.commit(wctx); err != nil {
		return fmt.Errorf("store: committing: %w", err)
	}
	s.hub.Publish(w.committed)
	return nil
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
