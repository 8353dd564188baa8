-- +goose Up
-- Runs, nodes, attempts, metrics, the event log, repair requests,
-- experiments and the run journal: the same record as the SQLite store's.
-- Times are unix nanoseconds, 0 meaning "not yet". JSON columns hold values
-- the store never queries into; everything a query filters or orders on
-- has its own column.
CREATE TABLE runs (
	id           TEXT PRIMARY KEY,
	request_id   TEXT UNIQUE,
	pipeline     TEXT NOT NULL,
	params       TEXT NOT NULL,
	state        TEXT NOT NULL,
	message      TEXT NOT NULL,
	create_time  BIGINT NOT NULL,
	start_time   BIGINT NOT NULL,
	end_time     BIGINT NOT NULL,
	repair_count INTEGER NOT NULL,
	last_seq     BIGINT NOT NULL
);
CREATE INDEX runs_by_time ON runs (create_time DESC, id DESC);
CREATE INDEX runs_by_pipeline ON runs (pipeline, create_time DESC, id DESC);
CREATE INDEX runs_by_state ON runs (state);

CREATE TABLE nodes (
	run_id     TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
	name       TEXT NOT NULL,
	position   INTEGER NOT NULL,
	state      TEXT NOT NULL,
	attempt    INTEGER NOT NULL,
	start_time BIGINT NOT NULL,
	end_time   BIGINT NOT NULL,
	error      TEXT,
	PRIMARY KEY (run_id, name),
	UNIQUE (run_id, position)
);

CREATE TABLE attempts (
	run_id     TEXT NOT NULL,
	node       TEXT NOT NULL,
	attempt    INTEGER NOT NULL,
	state      TEXT NOT NULL,
	start_time BIGINT NOT NULL,
	end_time   BIGINT NOT NULL,
	error      TEXT,
	PRIMARY KEY (run_id, node, attempt),
	FOREIGN KEY (run_id, node) REFERENCES nodes (run_id, name) ON DELETE CASCADE
);

CREATE TABLE attempt_metrics (
	run_id  TEXT NOT NULL,
	node    TEXT NOT NULL,
	attempt INTEGER NOT NULL,
	name    TEXT NOT NULL,
	value   DOUBLE PRECISION NOT NULL,
	PRIMARY KEY (run_id, node, attempt, name),
	FOREIGN KEY (run_id, node, attempt) REFERENCES attempts (run_id, node, attempt) ON DELETE CASCADE
);

CREATE TABLE events (
	run_id  TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
	seq     BIGINT NOT NULL,
	time    BIGINT NOT NULL,
	kind    TEXT NOT NULL,
	payload TEXT NOT NULL,
	PRIMARY KEY (run_id, seq)
);

CREATE TABLE repair_requests (
	request_id TEXT PRIMARY KEY,
	run_id     TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE
);
CREATE INDEX repair_requests_by_run ON repair_requests (run_id);

CREATE TABLE experiments (
	id            TEXT PRIMARY KEY,
	request_id    TEXT UNIQUE,
	pipeline      TEXT NOT NULL,
	spec          TEXT NOT NULL,
	state         TEXT NOT NULL,
	message       TEXT NOT NULL,
	shared_nodes  TEXT NOT NULL,
	trial_nodes   TEXT NOT NULL,
	shared_run_id TEXT NOT NULL,
	create_time   BIGINT NOT NULL,
	start_time    BIGINT NOT NULL,
	end_time      BIGINT NOT NULL,
	last_seq      BIGINT NOT NULL
);
CREATE INDEX experiments_by_time ON experiments (create_time DESC, id DESC);
CREATE INDEX experiments_by_state ON experiments (state);

CREATE TABLE trials (
	experiment_id TEXT NOT NULL REFERENCES experiments (id) ON DELETE CASCADE,
	number        INTEGER NOT NULL,
	body          TEXT NOT NULL,
	PRIMARY KEY (experiment_id, number)
);

CREATE TABLE experiment_events (
	experiment_id TEXT NOT NULL REFERENCES experiments (id) ON DELETE CASCADE,
	seq           BIGINT NOT NULL,
	time          BIGINT NOT NULL,
	payload       TEXT NOT NULL,
	PRIMARY KEY (experiment_id, seq)
);

CREATE TABLE run_journal (
	run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
	key    TEXT NOT NULL,
	value  BYTEA NOT NULL,
	PRIMARY KEY (run_id, key)
);

-- +goose Down
DROP TABLE run_journal, experiment_events, trials, experiments, repair_requests,
	events, attempt_metrics, attempts, nodes, runs;
