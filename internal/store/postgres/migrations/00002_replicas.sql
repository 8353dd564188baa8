-- +goose Up
-- Replicas and the runs they own: a run's owner and the epoch of its
-- lease (every write for it is fenced by both), what another replica asked
-- of it, what its admission was judged by, the replicas' heartbeats and
-- each run's claims.
ALTER TABLE runs ADD COLUMN owner TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0;
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
	started   BIGINT NOT NULL,
	heartbeat BIGINT NOT NULL,
	expires   BIGINT NOT NULL
);

CREATE TABLE run_leases (
	run_id   TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
	epoch    BIGINT NOT NULL,
	owner    TEXT NOT NULL,
	acquired BIGINT NOT NULL,
	PRIMARY KEY (run_id, epoch)
);

-- +goose Down
DROP TABLE run_leases, replicas;
DROP INDEX runs_by_owner;
ALTER TABLE experiments DROP COLUMN owner;
ALTER TABLE runs DROP COLUMN priority, DROP COLUMN max_active, DROP COLUMN writes, DROP COLUMN admission_key, DROP COLUMN control_reason,
	DROP COLUMN control, DROP COLUMN epoch, DROP COLUMN owner;
