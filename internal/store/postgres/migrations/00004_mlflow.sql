-- +goose Up
-- MLflow: the runs and experiments execd records in a tracking server, how far each one's
-- event log has been sent (the log is the outbox) and which replica sends
-- it; and the MLflow run made for a run (node '') and for each of its ML
-- node attempts.
CREATE TABLE mlflow_mirror (
	run_id      TEXT PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
	spec        TEXT NOT NULL,
	sent_seq    BIGINT NOT NULL DEFAULT 0,
	warned      INTEGER NOT NULL DEFAULT 0,
	done        INTEGER NOT NULL DEFAULT 0,
	claimer     TEXT NOT NULL DEFAULT '',
	claim_until BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX mlflow_mirror_pending ON mlflow_mirror (done);

CREATE TABLE mlflow_runs (
	run_id        TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
	node          TEXT NOT NULL,
	attempt       INTEGER NOT NULL,
	tracking_uri  TEXT NOT NULL,
	experiment_id TEXT NOT NULL,
	mlflow_run_id TEXT NOT NULL,
	PRIMARY KEY (run_id, node, attempt)
);

CREATE TABLE mlflow_experiment_mirror (
	experiment_id        TEXT PRIMARY KEY REFERENCES experiments (id) ON DELETE CASCADE,
	spec                 TEXT NOT NULL,
	sent_seq             BIGINT NOT NULL DEFAULT 0,
	done                 INTEGER NOT NULL DEFAULT 0,
	claimer              TEXT NOT NULL DEFAULT '',
	claim_until          BIGINT NOT NULL DEFAULT 0,
	-- The experiment's parent run, once made.
	tracking_uri         TEXT NOT NULL DEFAULT '',
	mlflow_experiment_id TEXT NOT NULL DEFAULT '',
	mlflow_run_id        TEXT NOT NULL DEFAULT ''
);

-- +goose Down
DROP TABLE mlflow_experiment_mirror;
DROP TABLE mlflow_runs;
DROP TABLE mlflow_mirror;
