package sqlstore

import (
	"context"
	"fmt"
)

// AdoptUnnamed gives project, in one transaction, the runs and experiments
// recorded before execd named projects (project "") and the repair
// requests of the runs it names, and returns how many runs it named.
//
// A record whose request id the project has already used keeps project "":
// request ids are unique per project, and neither record is the one to
// lose it. Such records are still listed without a projects filter.
func (s *Store) AdoptUnnamed(ctx context.Context, project string) (int, error) {
	if err := checkIdentifier("project", project, maxNameBytes); err != nil {
		return 0, err
	}
	var n int64
	err := s.write(ctx, func(w *writeTx) error {
		res, err := w.tx.ExecContext(w.ctx, `UPDATE runs SET project = ? WHERE project = '' AND (request_id IS NULL
			OR request_id NOT IN (SELECT request_id FROM runs WHERE project = ? AND request_id IS NOT NULL))`, project, project)
		if err != nil {
			return fmt.Errorf("naming runs: %w", err)
		}
		if n, err = res.RowsAffected(); err != nil {
			return err
		}
		if _, err := w.tx.ExecContext(w.ctx, `UPDATE experiments SET project = ? WHERE project = '' AND (request_id IS NULL
			OR request_id NOT IN (SELECT request_id FROM experiments WHERE project = ? AND request_id IS NOT NULL))`, project, project); err != nil {
			return fmt.Errorf("naming experiments: %w", err)
		}
		// A repair request follows its run, unless the project has used
		// its id for another.
		if _, err := w.tx.ExecContext(w.ctx, `UPDATE repair_requests SET project = ? WHERE project = ''
			AND run_id IN (SELECT id FROM runs WHERE project = ?)
			AND request_id NOT IN (SELECT request_id FROM repair_requests WHERE project = ?)`, project, project, project); err != nil {
			return fmt.Errorf("naming repair requests: %w", err)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store: giving unnamed runs and experiments to project %q: %w", project, err)
	}
	return int(n), nil
}
