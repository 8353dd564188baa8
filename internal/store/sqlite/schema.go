package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
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
	// 6: projects. Runs, experiments and repair requests name the project
	// they belong to, and request ids are unique per project. SQLite cannot
	// drop the old column constraints, so the three tables are rebuilt
	// (https://www.sqlite.org/lang_altertable.html#otheralter): migrate
	// runs this with foreign keys off, or dropping runs would delete every
	// row that refers to it.
	`
CREATE TABLE runs_new (
	id             TEXT PRIMARY KEY,
	request_id     TEXT, -- NULL when the caller gave none
	pipeline       TEXT NOT NULL,
	params         TEXT NOT NULL, -- run.Params as JSON
	state          TEXT NOT NULL,
	message        TEXT NOT NULL,
	create_time    INTEGER NOT NULL,
	start_time     INTEGER NOT NULL,
	end_time       INTEGER NOT NULL,
	repair_count   INTEGER NOT NULL,
	last_seq       INTEGER NOT NULL,
	owner          TEXT NOT NULL DEFAULT '',
	epoch          INTEGER NOT NULL DEFAULT 0,
	control        TEXT NOT NULL DEFAULT '',
	control_reason TEXT NOT NULL DEFAULT '',
	admission_key  TEXT NOT NULL DEFAULT '',
	writes         TEXT NOT NULL DEFAULT '[]',
	max_active     INTEGER NOT NULL DEFAULT 1,
	priority       INTEGER NOT NULL DEFAULT 0,
	project        TEXT NOT NULL DEFAULT '',
	UNIQUE (project, request_id)
) STRICT;
INSERT INTO runs_new (id, request_id, pipeline, params, state, message, create_time, start_time, end_time,
	repair_count, last_seq, owner, epoch, control, control_reason, admission_key, writes, max_active, priority)
SELECT id, request_id, pipeline, params, state, message, create_time, start_time, end_time,
	repair_count, last_seq, owner, epoch, control, control_reason, admission_key, writes, max_active, priority
FROM runs;
DROP TABLE runs;
ALTER TABLE runs_new RENAME TO runs;
CREATE INDEX runs_by_time ON runs (create_time DESC, id DESC);
CREATE INDEX runs_by_pipeline ON runs (pipeline, create_time DESC, id DESC);
CREATE INDEX runs_by_state ON runs (state);
CREATE INDEX runs_by_owner ON runs (owner, state);
CREATE INDEX runs_by_project ON runs (project, create_time DESC, id DESC);

CREATE TABLE experiments_new (
	id            TEXT PRIMARY KEY,
	request_id    TEXT,
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
	last_seq      INTEGER NOT NULL,
	owner         TEXT NOT NULL DEFAULT '',
	project       TEXT NOT NULL DEFAULT '',
	UNIQUE (project, request_id)
) STRICT;
INSERT INTO experiments_new (id, request_id, pipeline, spec, state, message, shared_nodes, trial_nodes,
	shared_run_id, create_time, start_time, end_time, last_seq, owner)
SELECT id, request_id, pipeline, spec, state, message, shared_nodes, trial_nodes,
	shared_run_id, create_time, start_time, end_time, last_seq, owner
FROM experiments;
DROP TABLE experiments;
ALTER TABLE experiments_new RENAME TO experiments;
CREATE INDEX experiments_by_time ON experiments (create_time DESC, id DESC);
CREATE INDEX experiments_by_state ON experiments (state);
CREATE INDEX experiments_by_project ON experiments (project, create_time DESC, id DESC);

CREATE TABLE repair_requests_new (
	project    TEXT NOT NULL DEFAULT '', -- its run's
	request_id TEXT NOT NULL,
	run_id     TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
	PRIMARY KEY (project, request_id)
) STRICT, WITHOUT ROWID;
INSERT INTO repair_requests_new (request_id, run_id) SELECT request_id, run_id FROM repair_requests;
DROP TABLE repair_requests;
ALTER TABLE repair_requests_new RENAME TO repair_requests;
`,
	// 7: MLflow. The runs and experiments execd records in a tracking
	// server, how far each one's event log has been sent (the log is the
	// outbox) and who sends it; and the MLflow run made for a run (node
	// ''), for each of its ML node attempts and for an experiment.
	`
CREATE TABLE mlflow_mirror (
	run_id      TEXT PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
	spec        TEXT NOT NULL, -- what the mirror sends the run with, JSON
	sent_seq    INTEGER NOT NULL DEFAULT 0,
	warned      INTEGER NOT NULL DEFAULT 0,
	done        INTEGER NOT NULL DEFAULT 0,
	claimer     TEXT NOT NULL DEFAULT '',
	claim_until INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX mlflow_mirror_pending ON mlflow_mirror (done);

CREATE TABLE mlflow_runs (
	run_id        TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
	node          TEXT NOT NULL,
	attempt       INTEGER NOT NULL,
	tracking_uri  TEXT NOT NULL,
	experiment_id TEXT NOT NULL,
	mlflow_run_id TEXT NOT NULL,
	PRIMARY KEY (run_id, node, attempt)
) STRICT, WITHOUT ROWID;

CREATE TABLE mlflow_experiment_mirror (
	experiment_id        TEXT PRIMARY KEY REFERENCES experiments (id) ON DELETE CASCADE,
	spec                 TEXT NOT NULL,
	sent_seq             INTEGER NOT NULL DEFAULT 0,
	done                 INTEGER NOT NULL DEFAULT 0,
	claimer              TEXT NOT NULL DEFAULT '',
	claim_until          INTEGER NOT NULL DEFAULT 0,
	-- The experiment's parent run, once made.
	tracking_uri         TEXT NOT NULL DEFAULT '',
	mlflow_experiment_id TEXT NOT NULL DEFAULT '',
	mlflow_run_id        TEXT NOT NULL DEFAULT ''
) STRICT;
`,
}

// migrate applies the migrations the database has not seen, in one
// transaction, so a daemon killed halfway leaves the old schema intact.
//
// Foreign keys are off while it runs (a migration that rebuilds a table
// drops it, which would otherwise cascade), and checked before it commits.
// SQLite ignores the pragma inside a transaction, so migrate holds one
// connection for the pragma, the transaction and the pragma that turns
// them back on.
func migrate(ctx context.Context, db *sql.DB) (err error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `PRAGMA foreign_keys = OFF`); err != nil {
		return fmt.Errorf("turning foreign keys off to migrate: %w", err)
	}
	defer func() {
		// Open gives up on the database when this fails, so no write runs
		// without foreign keys.
		if _, ferr := conn.ExecContext(context.WithoutCancel(ctx), `PRAGMA foreign_keys = ON`); ferr != nil {
			err = errors.Join(err, fmt.Errorf("turning foreign keys back on: %w", ferr))
		}
	}()
	tx, err := conn.BeginTx(ctx, nil)
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
	if err := checkForeignKeys(ctx, tx); err != nil {
		return err
	}
	return tx.Commit()
}

// checkForeignKeys fails, naming the first few, when rows refer to rows
// that do not exist.
func checkForeignKeys(ctx context.Context, tx *sql.Tx) error {
	rows, err := tx.QueryContext(ctx, `PRAGMA foreign_key_check`)
	if err != nil {
		return fmt.Errorf("checking foreign keys: %w", err)
	}
	defer rows.Close()
	var bad []string
	n := 0
	for rows.Next() {
		var (
			table, parent string
			rowid         sql.NullInt64
			fkid          int
		)
		if err := rows.Scan(&table, &rowid, &parent, &fkid); err != nil {
			return fmt.Errorf("checking foreign keys: %w", err)
		}
		if n++; len(bad) < 5 {
			bad = append(bad, fmt.Sprintf("a row of %s refers to a missing row of %s", table, parent))
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("checking foreign keys: %w", err)
	}
	if n > 0 {
		return fmt.Errorf("migrating the schema would leave %d rows referring to rows that do not exist (%s); the database is left as it was", n, strings.Join(bad, "; "))
	}
	return nil
}
