package main

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	execv1 "github.com/tauro-exec/tauro-exec/gen/tauro/exec/v1"
	sparkconnect "github.com/tauro-exec/tauro-exec/internal/spark/connect"
	"github.com/tauro-exec/tauro-exec/internal/spark/server/sparktest"
)

// The cdcproj project applies customers' change events, one JSON file per
// micro-batch, into Delta with the sinks' cdc: the latest row per id (SCD
// type 1) and each id's history (SCD type 2). The expected tables are
// computed below from the events, plainly.

// change is one change event; op "D" deletes its id.
type change struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Seq  int32  `json:"seq"`
	Op   string `json:"op"`
}

// changeFiles are the batches: out of order within and across files,
// duplicates within and across files, deletes, a late update older than its
// id's delete and a re-insert after one.
var changeFiles = [][]change{
	{{"a", "a1", 1, "U"}, {"b", "b1", 1, "U"}, {"a", "a3", 3, "U"}, {"c", "c2", 2, "U"}, {"a", "a3", 3, "U"}},
	{{"a", "a2", 2, "U"}, {"b", "", 5, "D"}, {"c", "c2", 2, "U"}, {"d", "d1", 1, "U"}},
	{{"b", "b4", 4, "U"}, {"b", "b6", 6, "U"}, {"c", "", 3, "D"}, {"c", "c1", 1, "U"}},
	{{"a", "", 9, "D"}, {"a", "a8", 8, "U"}, {"d", "d1", 1, "U"}, {"e", "e5", 5, "U"}, {"e", "e4", 4, "U"}},
}

// version is one row of the history: a change's columns but op, valid
// from its sequence until the id's next change (nil: still current).
type version struct {
	ID, Name string
	Seq      int32
	Start    int32
	End      *int32
}

func (v version) String() string {
	end := "current"
	if v.End != nil {
		end = fmt.Sprint(*v.End)
	}
	return fmt.Sprintf("%s %s seq %d [%d, %s)", v.ID, v.Name, v.Seq, v.Start, end)
}

// orderedChanges is every change of every file, each (id, seq) once, by id
// then seq.
func orderedChanges() []change {
	seen := map[[2]any]bool{}
	var all []change
	for _, f := range changeFiles {
		for _, c := range f {
			if k := [2]any{c.ID, c.Seq}; !seen[k] {
				seen[k] = true
				all = append(all, c)
			}
		}
	}
	slices.SortFunc(all, func(a, b change) int { return cmp.Or(cmp.Compare(a.ID, b.ID), cmp.Compare(a.Seq, b.Seq)) })
	return all
}

// wantHistory is each id's versions: every update, ended by the id's next
// change, an update or a delete.
func wantHistory() []version {
	all := orderedChanges()
	var out []version
	for i, c := range all {
		if c.Op == "D" {
			continue
		}
		v := version{ID: c.ID, Name: c.Name, Seq: c.Seq, Start: c.Seq}
		if i+1 < len(all) && all[i+1].ID == c.ID {
			end := all[i+1].Seq
			v.End = &end
		}
		out = append(out, v)
	}
	return out
}

// wantLatest is each id's newest change, unless that is a delete.
func wantLatest() []change {
	all := orderedChanges()
	var out []change
	for i, c := range all {
		if (i+1 == len(all) || all[i+1].ID != c.ID) && c.Op != "D" {
			out = append(out, change{ID: c.ID, Name: c.Name, Seq: c.Seq})
		}
	}
	return out
}

// dropChanges writes file number i (from 0) into the folder the streams
// follow.
func dropChanges(t *testing.T, project string, i int) {
	t.Helper()
	dropJSONLines(t, filepath.Join(project, "data", "changes"), fmt.Sprintf("c%03d.json", i), changeFiles[i])
}

// readTable runs query over the Delta table at table, "" when it does not
// exist yet; row gets each row's values.
func readTable(ctx context.Context, t *testing.T, table, query string, row func(vals func(int) any)) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(table, "_delta_log")); err != nil {
		return
	}
	df, err := sparktest.Session(ctx, t).Sql(ctx, strings.ReplaceAll(query, "TABLE", "delta.`"+table+"`"))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := df.Collect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		row(r.At)
	}
}

func latestRows(ctx context.Context, t *testing.T, table string) []change {
	var out []change
	readTable(ctx, t, table, "SELECT id, name, seq FROM TABLE ORDER BY id", func(at func(int) any) {
		id, _ := at(0).(string)
		name, _ := at(1).(string)
		seq, _ := at(2).(int32)
		out = append(out, change{ID: id, Name: name, Seq: seq})
	})
	return out
}

func historyRows(ctx context.Context, t *testing.T, table string) []version {
	var out []version
	readTable(ctx, t, table, "SELECT id, name, seq, __START_AT, __END_AT FROM TABLE ORDER BY id, __START_AT", func(at func(int) any) {
		v := version{}
		v.ID, _ = at(0).(string)
		v.Name, _ = at(1).(string)
		v.Seq, _ = at(2).(int32)
		v.Start, _ = at(3).(int32)
		if end, ok := at(4).(int32); ok {
			v.End = &end
		}
		out = append(out, v)
	})
	return out
}

func sameVersions(a, b []version) bool {
	return slices.EqualFunc(a, b, func(x, y version) bool { return x.String() == y.String() })
}

// Four files of changes, one micro-batch each, out of order, with
// duplicates and deletes: the SCD type 1 table ends as each id's newest
// change (deleted ids gone), and the SCD type 2 table as each id's
// versions with their validity intervals, row by row.
func TestExecd_CDCAppliesOutOfOrderDuplicateAndDeletedChangesAsSCD1AndSCD2(t *testing.T) {
	clusterParallel(t)
	py, err := sparktest.Python()
	if err != nil {
		t.Skip(err)
	}
	project := copyProject(t, "cdcproj")
	if err := os.MkdirAll(filepath.Join(project, "data", "changes"), 0o755); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, project, t.TempDir(), "--python", py, "--workers", "1")
	cl := d.client(t)
	ctx := testCtx(t, 6*time.Minute)

	if _, err := cl.ValidatePipeline(ctx, &execv1.ValidatePipelineRequest{Pipeline: "customer_changes"}); err != nil {
		t.Fatalf("validate: %v\n%s", err, d.Logs())
	}
	runID := startRun(ctx, t, cl, &execv1.ExecutePipelineRequest{Pipeline: "customer_changes"})
	for i := range changeFiles {
		dropChanges(t, project, i)
	}
	awaitCDCTables(ctx, t, cl, runID, project)
	stopped, err := cl.StopRun(ctx, &execv1.StopRunRequest{RunId: runID, Reason: "every change is in"})
	if err != nil {
		t.Fatalf("stopping the run: %v\n%s", err, d.Logs())
	}
	if r := stopped.GetRun(); r.GetState() != execv1.RunState_RUN_STATE_SUCCEEDED {
		t.Fatalf("stopped run %v (%s), want SUCCEEDED", r.GetState(), r.GetMessage())
	}
	// Each file was its own micro-batch of each query.
	batches := map[string]int{}
	for _, ev := range collect(ctx, t, cl, runID, 0) {
		if p := ev.GetNodeProgress(); p.GetInputRows() > 0 {
			batches[p.GetNode()]++
		}
	}
	for _, node := range []string{"customers_latest", "customers_history"} {
		if batches[node] != len(changeFiles) {
			t.Errorf("node %s reported %d batches with rows, want one per file, %d", node, batches[node], len(changeFiles))
		}
	}
	// The stop leaves the history as it was.
	if got, want := historyRows(ctx, t, filepath.Join(project, "output", "customers_history")), wantHistory(); !sameVersions(got, want) {
		t.Errorf("after the stop the SCD2 history is %v, want %v", got, want)
	}
}

// awaitCDCTables waits until both tables of the project's run are the ones
// every file's changes make, failing when the run stops running first.
func awaitCDCTables(ctx context.Context, t *testing.T, cl execv1.ExecServiceClient, runID, project string) {
	t.Helper()
	latest, history := filepath.Join(project, "output", "customers_latest"), filepath.Join(project, "output", "customers_history")
	wantL, wantH := wantLatest(), wantHistory()
	for {
		gotL, gotH := latestRows(ctx, t, latest), historyRows(ctx, t, history)
		if slices.Equal(gotL, wantL) && sameVersions(gotH, wantH) {
			return
		}
		r, err := cl.GetRun(ctx, &execv1.GetRunRequest{RunId: runID})
		if ctx.Err() != nil || err != nil || r.GetRun().GetState() != execv1.RunState_RUN_STATE_RUNNING {
			var errs []string
			for _, n := range r.GetRun().GetNodes() {
				errs = append(errs, fmt.Sprintf("%s %v: %s", n.GetName(), n.GetState(), n.GetError().GetMessage()))
			}
			t.Fatalf("run %v (%v): %s\nSCD1 table %v, want %v\nSCD2 history %v, want %v",
				r.GetRun().GetState(), err, strings.Join(errs, "\n"), gotL, wantL, gotH, wantH)
		}
		time.Sleep(2 * time.Second)
	}
}

// execd is killed with SIGKILL after the first batch, its session (and the
// queries) gone; RepairRun starts the queries again from their checkpoints,
// replaying a batch cut short, and the tables end exactly as without the kill.
func TestExecd_CDCKilledMidStreamAndRepairedEndsWithTheSameTables(t *testing.T) {
	clusterParallel(t)
	py, err := sparktest.Python()
	if err != nil {
		t.Skip(err)
	}
	project, state := copyProject(t, "cdcproj"), t.TempDir()
	if err := os.MkdirAll(filepath.Join(project, "data", "changes"), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t, 8*time.Minute)
	d := startDaemon(t, project, state, "--python", py, "--workers", "1")
	cl := d.client(t)
	runID := startRun(ctx, t, cl, &execv1.ExecutePipelineRequest{Pipeline: "customer_changes"})
	dropChanges(t, project, 0)
	dropChanges(t, project, 1)
	watchUntil(ctx, t, cl, runID, 0, "the first batch", func(ev *execv1.RunEvent) bool { return ev.GetNodeProgress().GetInputRows() > 0 })
	d.Kill()
	session, user := sessionOf(t, state, runID)
	if err := sparkconnect.ReleaseAbandoned(ctx, sparktest.Remote(t), session, user); err != nil {
		t.Fatal(err)
	}

	d2 := startDaemon(t, project, state, "--python", py, "--workers", "1")
	cl2 := d2.client(t)
	if _, err := cl2.RepairRun(ctx, &execv1.RepairRunRequest{RunId: runID, RequestId: "cdc-1"}); err != nil {
		t.Fatalf("repair: %v\n%s", err, d2.Logs())
	}
	dropChanges(t, project, 2)
	dropChanges(t, project, 3)
	awaitCDCTables(ctx, t, cl2, runID, project)
	stopped, err := cl2.StopRun(ctx, &execv1.StopRunRequest{RunId: runID, Reason: "every change is in"})
	if err != nil {
		t.Fatal(err)
	}
	if r := stopped.GetRun(); r.GetState() != execv1.RunState_RUN_STATE_SUCCEEDED {
		t.Fatalf("stopped repaired run %v (%s), want SUCCEEDED", r.GetState(), r.GetMessage())
	}
}

// ValidatePipeline analyses a cdc's columns and delete condition over a
// streaming SQL node's result: a key or sequence column the query does not
// select, and a condition that is not a boolean, are named at their fields.
func TestExecd_ValidateNamesCDCColumnsTheNodesResultLacksAndANonBooleanDeleteCondition(t *testing.T) {
	py, err := sparktest.Python()
	if err != nil {
		t.Skip(err)
	}
	project := copyProject(t, "cdcproj")
	if err := os.MkdirAll(filepath.Join(project, "data", "changes"), 0o755); err != nil {
		t.Fatal(err)
	}
	nodes := filepath.Join(project, "config", "nodes.yaml")
	cfg, err := os.ReadFile(nodes)
	if err != nil {
		t.Fatal(err)
	}
	cfg = []byte(strings.Replace(string(cfg), `cdc: {keys: [id], sequence_by: seq, apply_as_deletes: "op = 'D'"`,
		`cdc: {keys: [customer_id], sequence_by: version, apply_as_deletes: "op"`, 1))
	if err := os.WriteFile(nodes, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, project, t.TempDir(), "--python", py, "--workers", "1")
	_, err = d.client(t).ValidatePipeline(testCtx(t, 2*time.Minute), &execv1.ValidatePipelineRequest{Pipeline: "customer_changes"})
	br := badRequest(t, err)
	want := map[string]string{
		"nodes.customers_latest.output.cdc.keys[0]":          `cdc key "customer_id" is not a column of node "customers_latest"'s result`,
		"nodes.customers_latest.output.cdc.sequence_by":      `cdc sequence_by column "version" is not a column`,
		"nodes.customers_latest.output.cdc.apply_as_deletes": `not a boolean; write a condition such as "op = 'D'"`,
	}
	var found []string
	for _, v := range br.GetFieldViolations() {
		found = append(found, v.GetField()+": "+v.GetDescription())
		if text, ok := want[v.GetField()]; ok && strings.Contains(v.GetDescription(), text) {
			delete(want, v.GetField())
		}
	}
	if len(want) > 0 {
		t.Errorf("no problem names %v with its fix; got:\n%s", want, strings.Join(found, "\n"))
	}
}
