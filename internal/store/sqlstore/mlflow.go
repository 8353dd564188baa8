package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/experiment"
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

// ClaimMLflow implements store.MLflow.
func (s *Store) ClaimMLflow(ctx context.Context, replica string, ttl time.Duration) ([]store.MLflowTrack, error) {
	return s.claimMirrors(ctx, "mlflow_mirror", "run_id", "warned", replica, ttl)
}

// ClaimMLflowExperiments implements store.MLflow.
func (s *Store) ClaimMLflowExperiments(ctx context.Context, replica string, ttl time.Duration) ([]store.MLflowTrack, error) {
	return s.claimMirrors(ctx, "mlflow_experiment_mirror", "experiment_id", "0", replica, ttl)
}

// claimMirrors claims the rows of a mirror table not wholly sent: one
// UPDATE takes every row that is free, lapsed or already the replica's,
// so two replicas cannot both win. key is the table's id column, warned
// its warned column (or a constant).
func (s *Store) claimMirrors(ctx context.Context, table, key, warned, replica string, ttl time.Duration) ([]store.MLflowTrack, error) {
	// Most execds track nothing: a read says so without a write.
	var pending int
	err := s.read(ctx, func(q Querier) error {
		return q.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+table+` WHERE done = 0`).Scan(&pending)
	})
	if err != nil || pending == 0 {
		return nil, err
	}
	var out []store.MLflowTrack
	err = s.write(ctx, func(w *writeTx) error {
		now := toNanos(w.now)
		if _, err := w.tx.ExecContext(w.ctx, `UPDATE `+table+` SET claimer = ?, claim_until = ?
			WHERE done = 0 AND (claimer = '' OR claimer = ? OR claim_until < ?)`,
			replica, now+int64(ttl), replica, now); err != nil {
			return fmt.Errorf("store: claiming MLflow mirrors: %w", err)
		}
		rows, err := w.tx.QueryContext(w.ctx, `SELECT `+key+`, spec, sent_seq, `+warned+` FROM `+table+`
			WHERE done = 0 AND claimer = ? ORDER BY `+key, replica)
		if err != nil {
			return fmt.Errorf("store: reading MLflow mirrors: %w", err)
		}
		return eachRow(rows, func() error {
			var (
				t      store.MLflowTrack
				spec   string
				warned int
			)
			if err := rows.Scan(&t.ID, &spec, &t.Sent, &warned); err != nil {
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
	return s.advanceMirror(ctx, "mlflow_mirror", "run_id", runID, seq, done)
}

// AdvanceMLflowExperiment implements store.MLflow.
func (s *Store) AdvanceMLflowExperiment(ctx context.Context, id string, seq int64, done bool) error {
	return s.advanceMirror(ctx, "mlflow_experiment_mirror", "experiment_id", id, seq, done)
}

func (s *Store) advanceMirror(ctx context.Context, table, key, id string, seq int64, done bool) error {
	d := 0
	if done {
		d = 1
	}
	return s.write(ctx, func(w *writeTx) error {
		_, err := w.tx.ExecContext(w.ctx, `UPDATE `+table+` SET sent_seq = ?, done = ?
			WHERE `+key+` = ? AND sent_seq <= ?`, seq, d, id, seq)
		if err != nil {
			return fmt.Errorf("store: recording what was sent of %s to MLflow: %w", id, err)
		}
		return nil
	})
}

// TrackMLflowExperiment implements store.MLflow.
func (s *Store) TrackMLflowExperiment(ctx context.Context, id string, spec []byte) error {
	return s.write(ctx, func(w *writeTx) error {
		if _, err := w.tx.ExecContext(w.ctx, `INSERT INTO mlflow_experiment_mirror (experiment_id, spec) VALUES (?, ?)
			ON CONFLICT (experiment_id) DO NOTHING`, id, string(spec)); err != nil {
			return fmt.Errorf("store: tracking experiment %s in MLflow: %w", id, err)
		}
		return nil
	})
}

// PutMLflowExperimentRun implements store.MLflow.
func (s *Store) PutMLflowExperimentRun(ctx context.Context, id string, m run.MLflowRun) (run.MLflowRun, error) {
	var kept run.MLflowRun
	err := s.write(ctx, func(w *writeTx) error {
		if _, err := w.tx.ExecContext(w.ctx, `UPDATE mlflow_experiment_mirror
			SET tracking_uri = ?, mlflow_experiment_id = ?, mlflow_run_id = ? WHERE experiment_id = ? AND mlflow_run_id = ''`,
			m.TrackingURI, m.ExperimentID, m.RunID, id); err != nil {
			return fmt.Errorf("store: recording the MLflow run of experiment %s: %w", id, err)
		}
		got, err := mlflowExperimentRun(w.ctx, w.tx, id)
		if got != nil {
			kept = *got
		}
		return err
	})
	return kept, err
}

// mlflowExperimentRun is the experiment's parent run, nil before it is
// made.
func mlflowExperimentRun(ctx context.Context, q Querier, id string) (*run.MLflowRun, error) {
	var m run.MLflowRun
	err := q.QueryRowContext(ctx, `SELECT tracking_uri, mlflow_experiment_id, mlflow_run_id FROM mlflow_experiment_mirror
		WHERE experiment_id = ? AND mlflow_run_id <> ''`, id).Scan(&m.TrackingURI, &m.ExperimentID, &m.RunID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: reading the MLflow run of experiment %s: %w", id, err)
	}
	return &m, nil
}

// fillExperimentMLflow gives an experiment its parent run and each trial
// its run's (the trial's run is nested under the experiment's).
func fillExperimentMLflow(ctx context.Context, q Querier, x *experiment.Record) error {
	m, err := mlflowExperimentRun(ctx, q, x.ID)
	if err != nil || m == nil {
		return err
	}
	x.MLflow = m
	for i := range x.Trials {
		if id := x.Trials[i].RunID; id != "" {
			if x.Trials[i].MLflow, err = mlflowRunOf(ctx, q, id, "", 0); err != nil {
				return err
			}
		}
	}
	return nil
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
