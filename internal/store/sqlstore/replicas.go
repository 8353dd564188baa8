package sqlstore

// Replicas: heartbeats, the owner and lease epoch of each run, its claims,
// and the cancels and stops one replica asks of another's runs.

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

// unended are the states of a run that has not ended.
var unended = []any{string(run.Pending), string(run.Queued), string(run.Running)}

// Heartbeat records that the replica is alive until ttl from now.
func (s *Store) Heartbeat(ctx context.Context, name, address string, ttl time.Duration) (lapsed bool, err error) {
	if err := checkIdentifier("replica name", name, maxNameBytes); err != nil {
		return false, err
	}
	err = s.write(ctx, func(w *writeTx) error {
		now := toNanos(w.now)
		var expires int64
		switch err := w.tx.QueryRowContext(w.ctx, `SELECT expires FROM replicas WHERE name = ?`+w.lock, name).Scan(&expires); {
		case errors.Is(err, sql.ErrNoRows):
			_, err = w.tx.ExecContext(w.ctx, `INSERT INTO replicas (name, address, started, heartbeat, expires) VALUES (?, ?, ?, ?, ?)`,
				name, address, now, now, now+int64(ttl))
			return err
		case err != nil:
			return err
		}
		lapsed = expires < now
		_, err := w.tx.ExecContext(w.ctx, `UPDATE replicas SET address = ?, heartbeat = ?, expires = ? WHERE name = ?`,
			address, now, now+int64(ttl), name)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("store: recording the heartbeat of %s: %w", name, err)
	}
	return lapsed, nil
}

// ListReplicas returns the replicas on record with the runs each owns.
func (s *Store) ListReplicas(ctx context.Context) ([]store.Replica, error) {
	var out []store.Replica
	err := s.read(ctx, func(q Querier) error {
		rows, err := q.QueryContext(ctx, `SELECT name, address, started, heartbeat, expires FROM replicas ORDER BY name`)
		if err != nil {
			return err
		}
		byName := map[string]int{}
		err = eachRow(rows, func() error {
			var r store.Replica
			var started, beat, expires int64
			if err := rows.Scan(&r.Name, &r.Address, &started, &beat, &expires); err != nil {
				return err
			}
			r.Started, r.Heartbeat, r.Expires = fromNanos(started), fromNanos(beat), fromNanos(expires)
			byName[r.Name] = len(out)
			out = append(out, r)
			return nil
		})
		if err != nil {
			return err
		}
		rows, err = q.QueryContext(ctx, `SELECT id, owner FROM runs WHERE owner != '' AND state IN (?, ?, ?) ORDER BY create_time, id`, unended...)
		if err != nil {
			return err
		}
		return eachRow(rows, func() error {
			var id, owner string
			if err := rows.Scan(&id, &owner); err != nil {
				return err
			}
			if i, ok := byName[owner]; ok {
				out[i].Runs = append(out[i].Runs, id)
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: listing replicas: %w", err)
	}
	return out, nil
}

// Claim makes replica the run's owner under the next epoch, unless a live
// replica other than it owns the run.
func (s *Store) Claim(ctx context.Context, runID, replica string) (store.Lease, error) {
	if err := checkIdentifier("replica name", replica, maxNameBytes); err != nil {
		return store.Lease{}, err
	}
	var lease store.Lease
	err := s.write(ctx, func(w *writeTx) error {
		var (
			state, owner string
			epoch        int64
		)
		err := w.tx.QueryRowContext(w.ctx, `SELECT state, owner, epoch FROM runs WHERE id = ?`+w.lock, runID).Scan(&state, &owner, &epoch)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: run %q", store.ErrNotFound, runID)
		}
		if err != nil {
			return err
		}
		if run.State(state).Terminal() {
			return fmt.Errorf("%w: run %s is %s", store.ErrRunEnded, runID, state)
		}
		if err := w.takeable(owner, replica); err != nil {
			return fmt.Errorf("run %s: %w", runID, err)
		}
		lease = store.Lease{RunID: runID, Owner: replica, Epoch: epoch + 1}
		if _, err := w.tx.ExecContext(w.ctx, `UPDATE runs SET owner = ?, epoch = ? WHERE id = ?`, replica, lease.Epoch, runID); err != nil {
			return err
		}
		return w.recordLease(runID, replica, lease.Epoch)
	})
	if err != nil {
		return store.Lease{}, fmt.Errorf("store: claiming run %s: %w", runID, err)
	}
	return lease, nil
}

// recordLease adds a claim to the run's lease history.
func (w *writeTx) recordLease(runID, owner string, epoch int64) error {
	_, err := w.tx.ExecContext(w.ctx, `INSERT INTO run_leases (run_id, epoch, owner, acquired) VALUES (?, ?, ?, ?)`,
		runID, epoch, owner, toNanos(w.now))
	return err
}

// takeable says whether replica may take what owner holds: it holds
// nothing, replica holds it itself, or owner's heartbeats have lapsed.
func (w *writeTx) takeable(owner, replica string) error {
	if owner == "" || owner == replica {
		return nil
	}
	var expires int64
	err := w.tx.QueryRowContext(w.ctx, `SELECT expires FROM replicas WHERE name = ?`, owner).Scan(&expires)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil
	case err != nil:
		return err
	case expires >= toNanos(w.now):
		return fmt.Errorf("%w: %s, whose heartbeats come, has it", store.ErrLeaseHeld, owner)
	}
	return nil
}

// Orphans returns the unended runs with no owner or a lapsed one.
func (s *Store) Orphans(ctx context.Context) ([]string, error) {
	ids, err := s.ids(ctx, `SELECT r.id FROM runs r LEFT JOIN replicas p ON p.name = r.owner
		WHERE r.state IN (?, ?, ?) AND (r.owner = '' OR p.name IS NULL OR p.expires < ?)
		ORDER BY r.create_time, r.id`, append(append([]any{}, unended...), toNanos(s.opt.now()))...)
	if err != nil {
		return nil, fmt.Errorf("store: finding runs without a live owner: %w", err)
	}
	return ids, nil
}

// LeaseHistory returns the run's claims in order.
func (s *Store) LeaseHistory(ctx context.Context, runID string) ([]store.LeaseRecord, error) {
	var out []store.LeaseRecord
	err := s.read(ctx, func(q Querier) error {
		rows, err := q.QueryContext(ctx, `SELECT epoch, owner, acquired FROM run_leases WHERE run_id = ? ORDER BY epoch`, runID)
		if err != nil {
			return err
		}
		return eachRow(rows, func() error {
			var l store.LeaseRecord
			var acquired int64
			if err := rows.Scan(&l.Epoch, &l.Owner, &acquired); err != nil {
				return err
			}
			l.Acquired = fromNanos(acquired)
			out = append(out, l)
			return nil
		})
	})
	return out, err
}

// RequestControl asks the run's owner to cancel or stop it.
func (s *Store) RequestControl(ctx context.Context, runID string, kind store.Control, reason string) error {
	if kind != store.ControlCancel && kind != store.ControlStop {
		return fmt.Errorf("%w: unknown control %q", store.ErrInvalidArgument, kind)
	}
	reason = clampText(reason, s.opt.limits.MaxTextBytes)
	return s.write(ctx, func(w *writeTx) error {
		var state, current string
		err := w.tx.QueryRowContext(w.ctx, `SELECT state, control FROM runs WHERE id = ?`+w.lock, runID).Scan(&state, &current)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: run %q", store.ErrNotFound, runID)
		}
		if err != nil {
			return err
		}
		if run.State(state).Terminal() {
			return fmt.Errorf("%w: run %s is %s", store.ErrRunEnded, runID, state)
		}
		if current == string(store.ControlCancel) && kind == store.ControlStop {
			return nil // a cancel asked already goes further than a stop
		}
		_, err = w.tx.ExecContext(w.ctx, `UPDATE runs SET control = ?, control_reason = ? WHERE id = ?`, string(kind), reason, runID)
		return err
	})
}

// TakeControlRequests returns and clears the requests made of the runs
// replica owns. It looks first, and writes only when there is one.
func (s *Store) TakeControlRequests(ctx context.Context, replica string) ([]store.ControlRequest, error) {
	const pending = `SELECT id, control, control_reason FROM runs WHERE owner = ? AND control != '' ORDER BY create_time, id`
	scan := func(rows *sql.Rows, out *[]store.ControlRequest) error {
		return eachRow(rows, func() error {
			var c store.ControlRequest
			var kind string
			if err := rows.Scan(&c.RunID, &kind, &c.Reason); err != nil {
				return err
			}
			c.Kind = store.Control(kind)
			*out = append(*out, c)
			return nil
		})
	}
	var seen []store.ControlRequest
	err := s.read(ctx, func(q Querier) error {
		rows, err := q.QueryContext(ctx, pending, replica)
		if err != nil {
			return err
		}
		return scan(rows, &seen)
	})
	if err != nil || len(seen) == 0 {
		return nil, err
	}
	var out []store.ControlRequest
	err = s.write(ctx, func(w *writeTx) error {
		out = out[:0]
		rows, err := w.tx.QueryContext(w.ctx, pending+w.lock, replica)
		if err != nil {
			return err
		}
		if err := scan(rows, &out); err != nil {
			return err
		}
		for _, c := range out {
			if _, err := w.tx.ExecContext(w.ctx, `UPDATE runs SET control = '', control_reason = '' WHERE id = ?`, c.RunID); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

// Queue records the run QUEUED with what its admission is judged by.
func (s *Store) Queue(ctx context.Context, lease store.Lease, a store.Admission) error {
	return s.write(ctx, func(w *writeTx) error {
		if err := w.fence(lease.RunID, &lease); err != nil {
			return err
		}
		if err := w.setAdmission(lease.RunID, a); err != nil {
			return err
		}
		_, err := w.appendEvents(lease.RunID, []run.Event{{Kind: run.RunStateChanged, RunState: run.Queued}}, false)
		return err
	})
}

func (w *writeTx) setAdmission(runID string, a store.Admission) error {
	writes, err := json.Marshal(nonNil(a.Writes))
	if err != nil {
		return err
	}
	_, err = w.tx.ExecContext(w.ctx, `UPDATE runs SET admission_key = ?, writes = ?, max_active = ?, priority = ? WHERE id = ?`,
		a.Key, string(writes), a.MaxActive, a.Priority, runID)
	return err
}

// StartRun records a queued run RUNNING when decide finds nothing blocking
// among the runs executing and waiting.
func (s *Store) StartRun(ctx context.Context, lease store.Lease, a store.Admission, decide func(executing, waiting []store.Admission) string) (string, error) {
	blocker := ""
	err := s.write(ctx, func(w *writeTx) error {
		if err := s.b.Exclusive(w.ctx, w.tx); err != nil {
			return err
		}
		if err := w.fence(lease.RunID, &lease); err != nil {
			return err
		}
		executing, err := w.admissions(run.Running, lease.RunID)
		if err != nil {
			return err
		}
		waiting, err := w.admissions(run.Queued, lease.RunID)
		if err != nil {
			return err
		}
		if blocker = decide(executing, waiting); blocker != "" {
			return nil
		}
		if err := w.setAdmission(lease.RunID, a); err != nil {
			return err
		}
		_, err = w.appendEvents(lease.RunID, []run.Event{{Kind: run.RunStateChanged, RunState: run.Running}}, false)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("store: admitting run %s: %w", lease.RunID, err)
	}
	return blocker, nil
}

// admissions reads what the runs in state (but except) were admitted or
// queued with.
func (w *writeTx) admissions(state run.State, except string) ([]store.Admission, error) {
	rows, err := w.tx.QueryContext(w.ctx, `SELECT id, pipeline, admission_key, max_active, writes, priority, create_time
		FROM runs WHERE state = ? AND id != ? ORDER BY create_time, id`, string(state), except)
	if err != nil {
		return nil, err
	}
	var out []store.Admission
	err = eachRow(rows, func() error {
		var a store.Admission
		var ws string
		var created int64
		if err := rows.Scan(&a.RunID, &a.Pipeline, &a.Key, &a.MaxActive, &ws, &a.Priority, &created); err != nil {
			return err
		}
		if err := json.Unmarshal([]byte(ws), &a.Writes); err != nil {
			return fmt.Errorf("decoding the outputs of run %s: %w", a.RunID, err)
		}
		a.Created = fromNanos(created)
		out = append(out, a)
		return nil
	})
	return out, err
}

// ClaimExperiment makes replica the experiment's driver, unless a live
// replica other than it drives it.
func (s *Store) ClaimExperiment(ctx context.Context, id, replica string) error {
	if err := checkIdentifier("replica name", replica, maxNameBytes); err != nil {
		return err
	}
	return s.write(ctx, func(w *writeTx) error {
		var state, owner string
		err := w.tx.QueryRowContext(w.ctx, `SELECT state, owner FROM experiments WHERE id = ?`+w.lock, id).Scan(&state, &owner)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: experiment %q", store.ErrNotFound, id)
		}
		if err != nil {
			return err
		}
		if experiment.State(state).Terminal() {
			return fmt.Errorf("%w: experiment %s is %s", store.ErrRunEnded, id, state)
		}
		if err := w.takeable(owner, replica); err != nil {
			return fmt.Errorf("experiment %s: %w", id, err)
		}
		_, err = w.tx.ExecContext(w.ctx, `UPDATE experiments SET owner = ? WHERE id = ?`, replica, id)
		return err
	})
}

// OrphanExperiments returns the experiments not ended with no driver or a
// lapsed one.
func (s *Store) OrphanExperiments(ctx context.Context) ([]string, error) {
	return s.ids(ctx, `SELECT x.id FROM experiments x LEFT JOIN replicas p ON p.name = x.owner
		WHERE x.state IN (?, ?) AND (x.owner = '' OR p.name IS NULL OR p.expires < ?)
		ORDER BY x.create_time, x.id`, string(experiment.Pending), string(experiment.Running), toNanos(s.opt.now()))
}
