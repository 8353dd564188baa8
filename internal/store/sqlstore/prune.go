package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/run"
)

// pruneBatch bounds how many runs one pruning transaction deletes, so that
// the writer is never held for long.
const pruneBatch = 200

// PruneRuns deletes the runs that ended before cutoff, with everything
// stored about them (nodes, attempts, metrics, events, repair requests),
// and returns how many went. Runs that have not ended are never touched;
// an interrupted run counts as ended, so an old one can no longer be
// repaired. A request id of a deleted run may start a new run.
func (s *Store) PruneRuns(ctx context.Context, cutoff time.Time) (int, error) {
	ended := []any{string(run.Succeeded), string(run.Failed), string(run.Cancelled), string(run.Interrupted)}
	total := 0
	for {
		var n int64
		err := s.write(ctx, func(w *writeTx) error {
			res, err := w.tx.ExecContext(w.ctx, `DELETE FROM runs WHERE id IN (
				SELECT id FROM runs WHERE state IN (?, ?, ?, ?) AND end_time > 0 AND end_time < ? LIMIT ?)`,
				append(ended, toNanos(cutoff), pruneBatch)...)
			if err != nil {
				return fmt.Errorf("store: pruning runs: %w", err)
			}
			n, err = res.RowsAffected()
			return err
		})
		total += int(n)
		if err != nil || n < pruneBatch {
			return total, err
		}
		if err := ctx.Err(); err != nil {
			return total, err
		}
	}
}
