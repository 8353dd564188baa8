package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	"github.com/tauro-exec/tauro-exec/internal/engine/store"
)

// TrackMLflow implements store.MLflow.
func (s *Store) TrackMLflow(ctx context.Context, runID string, spec []byte) error {
	return s.write(ctx, func(w *writeTx) error {
		if _, err := w.tx.ExecContext(w.ctx, `INSERT INTO mlflow_mirror (run_id, spec) VALUES (?, ?)
			ON CONFLICT (run_id) DO UPDATE SET done = 0`, runID, string(spec)); err != nil {
			return fmt.Errorf("store: tracking run %s in MLflow: %w", runID, err)
		}
		return nil
	})
}

// ClaimMLflow implements store.MLflow: one UPDATE takes every row that is
// free, lapsed or already the replica's, so two replicas cannot both win.
func (s *Store) ClaimMLflow(ctx context.Context, replica string, ttl time.Duration) ([]store.MLflowTrack, error) {
	// Most execds track nothing: a read says so without a write.
	var pending int
	err := s.read(ctx, func(q Querier) error {
		return q.QueryRowContext(ctx, `SELECT COUNT(*) FROM mlflow_mirror WHERE done = 0`).Scan(&pending)
	})
	if err != nil || pending == 0 {
		return nil, err
	}
	var out []store.MLflowTrack
	err = s.write(ctx, func(w *writeTx) error {
		now := toNanos(w.now)
		if _, err := w.tx.ExecContext(w.ctx, `UPDATE mlflow_mirror SET claimer = ?, claim_until = ?
			WHERE done = 0 AND (claimer = '' OR claimer = ? OR claim_until < ?)`,
			replica, now+int64(ttl), replica, now); err != nil {
			return fmt.Errorf("store: claiming MLflow mirrors: %w", err)
		}
		rows, err := w.tx.QueryContext(w.ctx, `SELECT run_id, spec, sent_seq, warned FROM mlflow_mirror
			WHERE done = 0 AND claimer = ? ORDER BY run_id`, replica)
		if err != nil {
			return fmt.Errorf("store: reading MLflow mirrors: %w", err)
		}
		return eachRow(rows, func() error {
			var (
				t      store.MLflowTrack
				spec   string
				warned int
			)
			if err := rows.Scan(&t.RunID, &spec, &t.Sent, &warned); err != nil {
				return err
			}
			t.Spec, t.Warned = []byte(spec), warned != 0
			out = append(out, t)
			return nil
		})
	})
	return out, err
}

// AdvanceMLflow implements store.MLflow.
func (s *Store) AdvanceMLflow(ctx context.Context, runID string, seq int64, done bool) error {
	d := 0
	if done {
		d = 1
	}
	return s.write(ctx, func(w *writeTx) error {
		_, err := w.tx.ExecContext(w.ctx, `UPDATE mlflow_mirror SET sent_seq = ?, done = ?
			WHERE run_id = ? AND sent_seq <= ?`, seq, d, runID, seq)
		if err != nil {
			return fmt.Errorf("store: recording what was sent of run %s to MLflow: %w", runID, err)
		}
		return nil
	})
}

// WarnMLflow implements store.MLflow.
func (s *Store) WarnMLflow(ctx context.Context, runID string) (bool, error) {
	var first bool
	err := s.write(ctx, func(w *writeTx) error {
		res, err := w.tx.ExecContext(w.ctx, `UPDATE mlflow_mirror SET warned = 1 WHERE run_id = ? AND warned = 0`, runID)
		if err != nil {
			return fmt.Errorf("store: recording the MLflow warning of run %s: %w", runID, err)
		}
		n, err := res.RowsAffected()
		first = n == 1
		return err
	})
	return first, err
}

// PutMLflowRun implements store.MLflow.
func (s *Store) PutMLflowRun(ctx context.Context, runID, node string, attempt int, m run.MLflowRun) (run.MLflowRun, error) {
	var kept run.MLflowRun
	err := s.write(ctx, func(w *writeTx) error {
		if _, err := w.tx.ExecContext(w.ctx, `INSERT INTO mlflow_runs (run_id, node, attempt, tracking_uri, experiment_id, mlflow_run_id)
			VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, node, attempt) DO NOTHING`,
			runID, node, attempt, m.TrackingURI, m.ExperimentID, m.RunID); err != nil {
			return fmt.Errorf("store: recording the MLflow run of %s/%s/%d: %w", runID, node, attempt, err)
		}
		got, err := mlflowRunOf(w.ctx, w.tx, runID, node, attempt)
		if got != nil {
			kept = *got
		}
		return err
	})
	return kept, err
}

// MLflowRunOf implements store.MLflow.
func (s *Store) MLflowRunOf(ctx context.Context, runID, node string, attempt int) (*run.MLflowRun, error) {
	var m *run.MLflowRun
	err := s.read(ctx, func(q Querier) error {
		var err error
		m, err = mlflowRunOf(ctx, q, runID, node, attempt)
		return err
	})
	return m, err
}

func mlflowRunOf(ctx context.Context, q Querier, runID, node string, attempt int) (*run.MLflowRun, error) {
	var m run.MLflowRun
	err := q.QueryRowContext(ctx, `SELECT tracking_uri, experiment_id, mlflow_run_id FROM mlflow_runs
		WHERE run_id = ? AND node = ? AND attempt = ?`, runID, node, attempt).Scan(&m.TrackingURI, &m.ExperimentID, &m.RunID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: reading the MLflow run of %s/%s/%d: %w", runID, node, attempt, err)
	}
	return &m, nil
}

// fillMLflow gives runs and their attempts the MLflow runs recorded for
// them.
func fillMLflow(ctx context.Context, q Querier, in string, ids []any, runs []run.Run) error {
	byID := make(map[string]*run.Run, len(runs))
	for i := range runs {
		byID[runs[i].ID] = &runs[i]
	}
	rows, err := q.QueryContext(ctx, `SELECT run_id, node, attempt, tracking_uri, experiment_id, mlflow_run_id
		FROM mlflow_runs WHERE run_id IN `+in, ids...)
	if err != nil {
		return fmt.Errorf("store: reading MLflow runs: %w", err)
	}
	return eachRow(rows, func() error {
		var (
			runID, node string
			attempt     int
			m           run.MLflowRun
		)
		if err := rows.Scan(&runID, &node, &attempt, &m.TrackingURI, &m.ExperimentID, &m.RunID); err != nil {
			return err
		}
		r := byID[runID]
		if r == nil {
			return nil
		}
		if node == "" {
			r.MLflow = &m
			return nil
		}
		for i := range r.Nodes {
			n := &r.Nodes[i]
			if n.Name != node {
				continue
			}
			// Attempts are numbered from 1 without gaps.
			if j := attempt - 1; j >= 0 && j < len(n.Attempts) && n.Attempts[j].Attempt == attempt {
				n.Attempts[j].MLflow = &m
			}
		}
		return nil
	})
}
