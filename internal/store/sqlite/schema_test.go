package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// version5 is a database as execd left it at schema version 5: two ended
// runs with nodes, attempts, a metric, events, journal rows and leases, a
// repair request, an experiment with a trial and an event, and a replica.
const version5 = `
INSERT INTO runs (id, request_id, pipeline, params, state, message, create_time, start_time, end_time,
	repair_count, last_seq, owner, epoch, control, control_reason, admission_key, writes, max_active, priority)
VALUES
	('r1', 'req-1', 'sales', '{"pipeline":"sales","env":"dev"}', 'SUCCEEDED', 'done', 100, 110, 1000,
		0, 3, 'replica-a', 2, 'cancel', 'asked', 'sales/dev', '["t1"]', 2, 5),
	('r2', 'req-2', 'hr', '{"pipeline":"hr","env":"dev"}', 'FAILED', 'boom', 200, 210, 2000,
		1, 2, 'replica-a', 1, '', '', '', '[]', 1, 0);
INSERT INTO nodes (run_id, name, position, state, attempt, start_time, end_time, error) VALUES
	('r1', 'a', 0, 'SUCCEEDED', 2, 120, 900, NULL),
	('r1', 'b', 1, 'SUCCEEDED', 1, 130, 950, NULL),
	('r2', 'a', 0, 'FAILED', 1, 220, 1900, '{"type":"ValueError","message":"boom"}');
INSERT INTO attempts (run_id, node, attempt, state, start_time, end_time, error) VALUES
	('r1', 'a', 1, 'FAILED', 120, 500, '{"type":"IOError","message":"flaky"}'),
	('r1', 'a', 2, 'SUCCEEDED', 510, 900, NULL),
	('r1', 'b', 1, 'SUCCEEDED', 130, 950, NULL),
	('r2', 'a', 1, 'FAILED', 220, 1900, '{"type":"ValueError","message":"boom"}');
INSERT INTO attempt_metrics (run_id, node, attempt, name, value) VALUES ('r1', 'a', 2, 'auc', 0.9);
INSERT INTO events (run_id, seq, time, kind, payload) VALUES
	('r1', 1, 100, 'run_state', '{}'), ('r1', 2, 110, 'run_state', '{}'), ('r1', 3, 1000, 'run_state', '{}'),
	('r2', 1, 200, 'run_state', '{}'), ('r2', 2, 2000, 'run_state', '{}');
INSERT INTO run_journal (run_id, key, value) VALUES ('r1', 'session', x'01'), ('r2', 'session', x'02');
INSERT INTO run_leases (run_id, epoch, owner, acquired) VALUES
	('r1', 1, 'replica-b', 105), ('r1', 2, 'replica-a', 500), ('r2', 1, 'replica-a', 205);
INSERT INTO repair_requests (request_id, run_id) VALUES ('fix-1', 'r2');
INSERT INTO experiments (id, request_id, pipeline, spec, state, message, shared_nodes, trial_nodes,
	shared_run_id, create_time, start_time, end_time, last_seq, owner)
VALUES ('x1', 'xreq', 'train', '{"pipeline":"train"}', 'RUNNING', '', '[]', '["fit"]', 'r1', 300, 310, 0, 1, 'replica-a');
INSERT INTO trials (experiment_id, number, body) VALUES ('x1', 1, '{"number":1}');
INSERT INTO experiment_events (experiment_id, seq, time, payload) VALUES ('x1', 1, 300, '{}');
INSERT INTO replicas (name, address, started, heartbeat, expires) VALUES ('replica-a', 'host:1', 1, 2, 3);
`

// atVersion5 makes dir/execd.db at schema version 5 holding version5 and
// then runs extra, with foreign keys off.
func atVersion5(t *testing.T, dir, extra string) {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(dir, FileName)+"?_foreign_keys=1")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	stmts := append(slices.Clone(migrations[:5]),
		`CREATE TABLE schema_version (version INTEGER NOT NULL) STRICT; INSERT INTO schema_version (version) VALUES (5)`,
		version5, `PRAGMA foreign_keys = OFF`, extra)
	for i, q := range stmts {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("making a version 5 database, statement %d: %v", i, err)
		}
	}
}

// snapshot is every row of every table, as text, and every index.
type snapshot struct {
	cols    map[string][]string // table -> the columns its rows were read by
	rows    map[string][]string // table -> rows, sorted
	indexes []string
}

// take reads db's tables by the columns of cols (every column of each
// table when nil) and its indexes.
func take(t *testing.T, db *sql.DB, cols map[string][]string) snapshot {
	t.Helper()
	names := func(q string) []string {
		rows, err := db.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			out = append(out, s)
		}
		return out
	}
	snap := snapshot{cols: cols, rows: map[string][]string{},
		indexes: names(`SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_%' ORDER BY name`)}
	if snap.cols == nil {
		snap.cols = map[string][]string{}
		for _, table := range names(`SELECT name FROM sqlite_master WHERE type = 'table' AND name != 'schema_version' ORDER BY name`) {
			snap.cols[table] = names(`SELECT name FROM pragma_table_info('` + table + `')`)
		}
	}
	for table, cs := range snap.cols {
		rows, err := db.Query(`SELECT ` + strings.Join(cs, ", ") + ` FROM ` + table)
		if err != nil {
			t.Fatalf("reading %s: %v", table, err)
		}
		vals := make([]any, len(cs))
		for i := range vals {
			vals[i] = new(any)
		}
		for rows.Next() {
			if err := rows.Scan(vals...); err != nil {
				t.Fatal(err)
			}
			var row []string
			for _, v := range vals {
				row = append(row, fmt.Sprintf("%v", *v.(*any)))
			}
			snap.rows[table] = append(snap.rows[table], strings.Join(row, "|"))
		}
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
		slices.Sort(snap.rows[table])
	}
	return snap
}

func readOnly(t *testing.T, dir string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(dir, FileName)+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestMigrate_ProjectsKeepsEveryRowAndTheCascade(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	atVersion5(t, dir, "")
	db := readOnly(t, dir)
	before := take(t, db, nil)

	s, err := Open(ctx, dir)
	if err != nil {
		t.Fatalf("Open migrating from version 5: %v", err)
	}
	defer s.Close()

	var version int
	if err := db.QueryRow(`SELECT version FROM schema_version`).Scan(&version); err != nil || version != len(migrations) {
		t.Fatalf("schema version %d, %v; want %d", version, err, len(migrations))
	}
	// Every row, by the columns it had.
	after := take(t, db, before.cols)
	for _, table := range slices.Sorted(maps.Keys(before.rows)) {
		if !slices.Equal(after.rows[table], before.rows[table]) {
			t.Errorf("%s after the migration:\n%s\nwant:\n%s", table, strings.Join(after.rows[table], "\n"), strings.Join(before.rows[table], "\n"))
		}
	}
	for _, idx := range append(before.indexes, "runs_by_project", "experiments_by_project") {
		if !slices.Contains(after.indexes, idx) {
			t.Errorf("index %s is missing after the migration (there are %v)", idx, after.indexes)
		}
	}

	// The store reads what was there, in project "".
	r, err := s.RunByRequestID(ctx, "", "req-1")
	if err != nil || r.ID != "r1" || r.Params.Project != "" || len(r.Nodes) != 2 || len(r.Nodes[0].Attempts) != 2 ||
		r.Nodes[0].Attempts[1].Metrics["auc"] != 0.9 || r.Owner != "replica-a" || r.Epoch != 2 {
		t.Errorf("RunByRequestID(\"\", req-1) = %+v, %v", r, err)
	}
	if id, err := s.RepairRequest(ctx, "", "fix-1"); err != nil || id != "r2" {
		t.Errorf("RepairRequest(\"\", fix-1) = %q, %v; want r2", id, err)
	}
	if x, err := s.ExperimentByRequestID(ctx, "", "xreq"); err != nil || x.ID != "x1" || len(x.Trials) != 1 {
		t.Errorf("ExperimentByRequestID(\"\", xreq) = %+v, %v", x, err)
	}

	// Deleting a run still deletes what refers to it: the foreign keys
	// point at the new runs and are on again.
	if n, err := s.PruneRuns(ctx, time.Unix(0, 1500)); err != nil || n != 1 {
		t.Fatalf("PruneRuns = %d, %v; want r1 pruned", n, err)
	}
	for _, table := range []string{"nodes", "attempts", "attempt_metrics", "events", "run_journal", "run_leases"} {
		var left, other int
		if err := db.QueryRow(`SELECT count(*) FILTER (WHERE run_id = 'r1'), count(*) FILTER (WHERE run_id = 'r2') FROM `+table).Scan(&left, &other); err != nil {
			t.Fatal(err)
		}
		if left != 0 {
			t.Errorf("%d rows of %s outlived their run", left, table)
		}
		if want := strings.Count(strings.Join(before.rows[table], "\n"), "r2|"); other != want {
			t.Errorf("%s holds %d rows of r2; want %d", table, other, want)
		}
	}
	if _, err := s.GetRun(ctx, "r2"); err != nil {
		t.Errorf("GetRun(r2) after pruning r1: %v", err)
	}
}

func TestMigrate_RefusesToLeaveRowsReferringToNothing(t *testing.T) {
	dir := t.TempDir()
	// A node of a run that is not there, as a database written with
	// foreign keys off could hold.
	atVersion5(t, dir, `INSERT INTO nodes (run_id, name, position, state, attempt, start_time, end_time) VALUES ('ghost', 'a', 0, 'PENDING', 0, 0, 0)`)
	db := readOnly(t, dir)
	before := take(t, db, nil)

	s, err := Open(context.Background(), dir)
	if err == nil {
		s.Close()
		t.Fatal("Open migrated a database with a node of no run")
	}
	if !strings.Contains(err.Error(), "a row of nodes refers to a missing row of runs") {
		t.Errorf("err = %v; want it to name the nodes that refer to no run", err)
	}
	var version int
	if err := db.QueryRow(`SELECT version FROM schema_version`).Scan(&version); err != nil || version != 5 {
		t.Errorf("schema version %d, %v; want 5, left as it was", version, err)
	}
	if after := take(t, db, nil); !slices.Equal(after.indexes, before.indexes) || !maps.EqualFunc(after.rows, before.rows, slices.Equal) {
		t.Errorf("the failed migration changed the database")
	}
}
