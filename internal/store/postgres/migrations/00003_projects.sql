-- +goose Up
-- Projects: runs, experiments and repair requests name the project they
-- belong to ('' for those recorded before execd named projects), and
-- request ids are unique per project.
ALTER TABLE runs ADD COLUMN project TEXT NOT NULL DEFAULT '';
ALTER TABLE runs DROP CONSTRAINT runs_request_id_key;
ALTER TABLE runs ADD CONSTRAINT runs_project_request_id_key UNIQUE (project, request_id);
CREATE INDEX runs_by_project ON runs (project, create_time DESC, id DESC);

ALTER TABLE experiments ADD COLUMN project TEXT NOT NULL DEFAULT '';
ALTER TABLE experiments DROP CONSTRAINT experiments_request_id_key;
ALTER TABLE experiments ADD CONSTRAINT experiments_project_request_id_key UNIQUE (project, request_id);
CREATE INDEX experiments_by_project ON experiments (project, create_time DESC, id DESC);

-- A repair request's project is its run's.
ALTER TABLE repair_requests ADD COLUMN project TEXT NOT NULL DEFAULT '';
ALTER TABLE repair_requests DROP CONSTRAINT repair_requests_pkey;
ALTER TABLE repair_requests ADD PRIMARY KEY (project, request_id);

-- +goose Down
-- Fails when two projects have used one request id: which to keep is not
-- the migration's to decide.
ALTER TABLE repair_requests DROP CONSTRAINT repair_requests_pkey;
ALTER TABLE repair_requests ADD PRIMARY KEY (request_id);
ALTER TABLE repair_requests DROP COLUMN project;

DROP INDEX experiments_by_project;
ALTER TABLE experiments DROP CONSTRAINT experiments_project_request_id_key;
ALTER TABLE experiments ADD CONSTRAINT experiments_request_id_key UNIQUE (request_id);
ALTER TABLE experiments DROP COLUMN project;

DROP INDEX runs_by_project;
ALTER TABLE runs DROP CONSTRAINT runs_project_request_id_key;
ALTER TABLE runs ADD CONSTRAINT runs_request_id_key UNIQUE (request_id);
ALTER TABLE runs DROP COLUMN project;
