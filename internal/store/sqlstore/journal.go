package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/tauro-exec/tauro-exec/internal/engine/store"
)

// The journal is a small key-value space per run that a backend writes
// while the run executes: where its Spark session is, which operations are
// in flight and how far their results were read. A restarted execd reads
// it to take the run up instead of interrupting it. It is no part of the
// run's record: nothing of it is shown to clients, and it is cleared when
// an execution of the run begins and when it ends. Writes go through the
// one writer and are committed (durable against a killed process, as
// events are) when JournalPut returns.

// maxJournalBytes bounds one journal value.
const maxJournalBytes = 1 << 20

// JournalPut stores value under key for the run, replacing what was there.
func (s *Store) JournalPut(ctx context.Context, lease store.Lease, key string, value []byte) error {
	runID := lease.RunID
	if key == "" || len(key) > 1024 {
		return fmt.Errorf("%w: journal key of %d bytes", store.ErrInvalidArgument, len(key))
	}
	if len(value) > maxJournalBytes {
		return fmt.Errorf("%w: journal value of %d bytes for %s", store.ErrInvalidArgument, len(value), key)
	}
	return s.write(ctx, func(w *writeTx) error {
		if err := w.fence(runID, &lease); err != nil {
			return err
		}
		_, err := w.tx.ExecContext(w.ctx, `INSERT INTO run_journal (run_id, key, value) VALUES (?, ?, ?)
			ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value`, runID, key, value)
		if err != nil {
			return fmt.Errorf("store: journal %s of run %s: %w", key, runID, err)
		}
		return nil
	})
}

// JournalGet returns what JournalPut stored under key, nil when nothing.
func (s *Store) JournalGet(ctx context.Context, runID, key string) ([]byte, error) {
	if s.closed() {
		return nil, store.ErrClosed
	}
	var v []byte
	err := s.read(ctx, func(tx Querier) error {
		return tx.QueryRowContext(ctx, `SELECT value FROM run_journal WHERE run_id = ? AND key = ?`, runID, key).Scan(&v)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: reading journal %s of run %s: %w", key, runID, err)
	}
	return v, nil
}

// JournalList returns the run's journal entries whose keys start with
// prefix.
func (s *Store) JournalList(ctx context.Context, runID, prefix string) (map[string][]byte, error) {
	if s.closed() {
		return nil, store.ErrClosed
	}
	out := map[string][]byte{}
	err := s.read(ctx, func(tx Querier) error {
		rows, err := tx.QueryContext(ctx, `SELECT key, value FROM run_journal WHERE run_id = ? ORDER BY key`, runID)
		if err != nil {
			return err
		}
		return eachRow(rows, func() error {
			var k string
			var v []byte
			if err := rows.Scan(&k, &v); err != nil {
				return err
			}
			if strings.HasPrefix(k, prefix) {
				out[k] = v
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: reading the journal of run %s: %w", runID, err)
	}
	return out, nil
}

// JournalClear deletes the run's journal.
func (s *Store) JournalClear(ctx context.Context, lease store.Lease) error {
	runID := lease.RunID
	return s.write(ctx, func(w *writeTx) error {
		if err := w.fence(runID, &lease); err != nil {
			return err
		}
		if _, err := w.tx.ExecContext(w.ctx, `DELETE FROM run_journal WHERE run_id = ?`, runID); err != nil {
			return fmt.Errorf("store: clearing the journal of run %s: %w", runID, err)
		}
		return nil
	})
}
