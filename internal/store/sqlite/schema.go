package sqlite

import (
	"context"
	"database/sql"
	"fmt"
)

// migrations[i] brings the schema from version i to version i+1. They are
// append-only: a released migration is never edited, because databases in
// the field have already run it.
var migrations = []string{
	// 1: runs, nodes, attempts, metrics, the event log and repairs.
	//
	// Times are unix nanoseconds, 0 meaning "not yet". JSON columns hold
	// values the store never queries into (parameters, errors, event
	// payloads); everything a query filters or orders on has its own column.
	`
CREATE TABLE runs (
	id           TEXT PRIMARY KEY,
	request_id   TEXT UNIQUE, -- NULL when the caller gave none
	pipeline     TEXT NOT NULL,
	params       TEXT NOT NULL, -- run.Params as JSON
	state        TEXT NOT NULL,
	message      TEXT NOT NULL,
	create_time  INTEGER NOT NULL,
	start_time   INTEGER NOT NULL,
	end_time     INTEGER NOT NULL,
	repair_count INTEGER NOT NULL,
	last_seq     INTEGER NOT NULL
) STRICT;
CREATE INDEX runs_by_time ON runs (create_time DESC, id DESC);
CREATE INDEX runs_by_pipeline ON runs (pipeline, create_time DESC, id DESC);
CREATE INDEX runs_by_state ON runs (state);

CREATE TABLE nodes (
	run_id     TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
	name       TEXT NOT NULL,
	position   INTEGER NOT NULL,
	state      TEXT NOT NULL,
	attempt    INTEGER NOT NULL,
	start_time INTEGER NOT NULL,
	end_time   INTEGER NOT NULL,
	error      TEXT, -- run.Error as JSON
	PRIMARY KEY (run_id, name),
	UNIQUE (run_id, position)
) STRICT, WITHOUT ROWID;

CREATE TABLE attempts (
	run_id     TEXT NOT NULL,
	node       TEXT NOT NULL,
	attempt    INTEGER NOT NULL,
	state      TEXT NOT NULL,
	start_time INTEGER NOT NULL,
	end_time   INTEGER NOT NULL,
	error      TEXT,
	PRIMARY KEY (run_id, node, attempt),
	FOREIGN KEY (run_id, node) REFERENCES nodes (run_id, name) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;

CREATE TABLE attempt_metrics (
	run_id  TEXT NOT NULL,
	node    TEXT NOT NULL,
	attempt INTEGER NOT NULL,
	name    TEXT NOT NULL,
	value   REAL NOT NULL,
	PRIMARY KEY (run_id, node, attempt, name),
	FOREIGN KEY (run_id, node, attempt) REFERENCES attempts (run_id, node, attempt) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;

CREATE TABLE events (
	run_id  TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
	seq     INTEGER NOT NULL,
	time    INTEGER NOT NULL,
	kind    TEXT NOT NULL,
	payload TEXT NOT NULL, -- run.Event as JSON
	PRIMARY KEY (run_id, seq)
) STRICT, WITHOUT ROWID;
`,
	// 2: the request ids of repairs, so a retried RepairRun repairs once.
	`
CREATE TABLE repair_requests (
	request_id TEXT PRIMARY KEY,
	run_id     TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;
`,
	// 3: experiments, their trials and each experiment's event log. A
	// trial's run is only named: runs are pruned on their own schedule.
	`
CREATE TABLE experiments (
	id            TEXT PRIMARY KEY,
	request_id    TEXT UNIQUE,
	pipeline      TEXT NOT NULL,
	spec          TEXT NOT NULL, -- experiment.Spec as JSON
	state         TEXT NOT NULL,
	message       TEXT NOT NULL,
	shared_nodes  TEXT NOT NULL, -- JSON list
	trial_nodes   TEXT NOT NULL, -- JSON list
	shared_run_id TEXT NOT NULL,
	create_time   INTEGER NOT NULL,
	start_time    INTEGER NOT NULL,
	end_time      INTEGER NOT NULL,
	last_seq      INTEGER NOT NULL
) STRICT;
CREATE INDEX experiments_by_time ON experiments (create_time DESC, id DESC);
CREATE INDEX experiments_by_state ON experiments (state);

CREATE TABLE trials (
	experiment_id TEXT NOT NULL REFERENCES experiments (id) ON DELETE CASCADE,
	number        INTEGER NOT NULL,
	body          TEXT NOT NULL, -- experiment.Trial as JSON
	PRIMARY KEY (experiment_id, number)
) STRICT, WITHOUT ROWID;

CREATE TABLE experiment_events (
	experiment_id TEXT NOT NULL REFERENCES experiments (id) ON DELETE CASCADE,
	seq           INTEGER NOT NULL,
	time          INTEGER NOT NULL,
	payload       TEXT NOT NULL, -- experiment.Event as JSON
	PRIMARY KEY (experiment_id, seq)
) STRICT, WITHOUT ROWID;
`,
	// 4: a backend's journal of a running run: what a restarted execd needs
	// to take up the run's Spark work (its session, the operations in
	// flight). It is not part of the run's record.
	`
CREATE TABLE run_journal (
	run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
	key    TEXT NOT NULL,
	value  BLOB NOT NULL,
	PRIMARY KEY (run_id, key)
) STRICT, WITHOUT ROWID;
`,
	// 5: replicas and the runs they own: a run's owner and the epoch of
	// its lease (every write for it is fenced by both), what another
	// replica asked of it, what its admission was judged by, the
	// replicas' heartbeats and each run's claims.
	`
ALTER TABLE runs ADD COLUMN owner TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN control TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN control_reason TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN admission_key TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN writes TEXT NOT NULL DEFAULT '[]';
ALTER TABLE runs ADD COLUMN max_active INTEGER NOT NULL DEFAULT 1;
ALTER TABLE runs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
CREATE INDEX runs_by_owner ON runs (owner, state);
ALTER TABLE experiments ADD COLUMN owner TEXT NOT NULL DEFAULT '';

CREATE TABLE replicas (
	name      TEXT PRIMARY KEY,
	address   TEXT NOT NULL,
	started   INTEGER NOT NULL,
	heartbeat INTEGER NOT NULL,
	expires   INTEGER NOT NULL
) STRICT;

CREATE TABLE run_leases (
	run_id   TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
	epoch    INTEGER NOT NULL,
	owner    TEXT NOT NULL,
	acquired INTEGER NOT NULL,
	PRIMARY KEY (run_id, epoch)
) STRICT, WITHOUT ROWID;
`,
}

// migrate applies the migrations the database has not seen, in one
// transaction, so a daemon killed halfway leaves the old schema intact.
func migrate(ctx context.Context, db *sql.DB) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL) STRICT`); err != nil {
		return fmt.Errorf("creating schema_version: %w", err)
	}
	var version int
	err = tx.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&version)
	switch {
	case err == sql.ErrNoRows:
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version (version) VALUES (0)`); err != nil {
			return err
		}
	case err != nil:
		return fmt.Errorf("reading schema version: %w", err)
	}
	if version > len(migrations) {
		return fmt.Errorf("the database has schema version %d but this execd knows only up to %d; use a newer execd", version, len(migrations))
	}
	for v := version; v < len(migrations); v++ {
		if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
			return fmt.Errorf("migrating schema to version %d: %w", v+1, err)
		}
	}
	if version < len(migrations) {
		if _, err := tx.ExecContext(ctx, `UPDATE schema_version SET version = ?`, len(migrations)); err != nil {
			return err
		}
	}
	return tx.Commit()
}
