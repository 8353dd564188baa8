package backend_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	"github.com/tauro-exec/tauro-exec/internal/spark/server/sparktest"
)

// A batch run reads its sources one at a time: the Spark jobs that read
// one CSV source and infer its schema all end before the first job reading
// the other begins, though the two nodes reading them run at once. One
// node is SQL, the other Python (its source is shared with the worker by a
// global view): both ways of reading go through the gate.
func TestSourceReads_OneAtATimeThoughTheirNodesRunAtOnce(t *testing.T) {
	remote, ui := sparktest.ServerWithUI(t)
	python, err := sparktest.Python()
	if err != nil {
		t.Skipf("no Python for workers: %v", err)
	}
	dir := t.TempDir()
	var csv strings.Builder
	csv.WriteString("id,name,amount\n")
	for i := range 60000 {
		fmt.Fprintf(&csv, "%d,n%d,%d.5\n", i, i%97, i%1000)
	}
	writeFiles(t, dir, map[string]string{
		"settings_yml.json": settings,
		"global.yaml":       "input_path: in\noutput_path: out\nmode: spark\nmax_parallel_nodes: 2\nmax_retries: 0\n",
		"pipelines.yaml":    "p: {nodes: [la, lb], requires_dates: false}\n",
		"nodes.yaml": "la: {sql: \"SELECT count(*) AS n FROM a\", input: [a], output: [o.t.la]}\n" +
			"lb: {function: gatenodes.lb, input: [b], output: [o.t.lb]}\n",
		"gatenodes.py": "def lb(b, *, start_date=None, end_date=None):\n    return b.groupBy().count()\n",
		"input.yaml": "a: {format: csv, filepath: \"${input_path}/a.csv\", options: {header: true, inferSchema: true}}\n" +
			"b: {format: csv, filepath: \"${input_path}/b.csv\", options: {header: true, inferSchema: true}}\n",
		"output.yaml": "o.t.la: {format: parquet}\no.t.lb: {format: parquet}\n",
		"in/a.csv":    csv.String(),
		"in/b.csv":    csv.String(),
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	eng, _ := pythonEngine(ctx, t, python, dir, remote, slog.New(slog.DiscardHandler))
	r, err := eng.Execute(ctx, "", run.Params{Pipeline: "p"}, false)
	if err != nil {
		t.Fatal(err)
	}
	done := waitRun(ctx, t, eng, r.ID)
	if done.State != run.Succeeded {
		t.Fatalf("run %s: %s", done.State, done.Message)
	}
	la, lb := done.Nodes[0], done.Nodes[1]
	if la.StartTime.After(lb.EndTime) || lb.StartTime.After(la.EndTime) {
		t.Fatalf("la ran %v-%v and lb %v-%v: the nodes did not run at once, so this shows nothing",
			la.StartTime, la.EndTime, lb.StartTime, lb.EndTime)
	}

	// The run's session is the one whose writes went to dir; its other
	// operations with jobs are the two reads.
	session, writes := "", map[int]bool{}
	for _, x := range sparktest.SQLExecutionsWithPlans(t, ui) {
		if !strings.Contains(x.Plan, dir) || !strings.Contains(x.Plan, "InsertIntoHadoopFsRelationCommand") {
			continue
		}
		if _, rest, ok := strings.Cut(x.Description, `session_id: "`); ok {
			session, _, _ = strings.Cut(rest, `"`)
		}
		for _, id := range append(x.SuccessJobIDs, x.FailedJobIDs...) {
			writes[id] = true
		}
	}
	if session == "" {
		t.Fatal("Spark records no write to the run's outputs")
	}
	type span struct{ from, to time.Time }
	reads := map[string]span{}
	writeOps := map[string]bool{}
	jobs := sparktest.Jobs(t, ui)
	for _, j := range jobs {
		if j.InSession(session) && writes[j.ID] {
			writeOps[j.Operation()] = true
		}
	}
	for _, j := range jobs {
		op := j.Operation()
		if !j.InSession(session) || writeOps[op] {
			continue
		}
		from, to, ok := j.Times()
		if !ok {
			t.Fatalf("job %d of the run's read %s has no end (%q-%q)", j.ID, op, j.Submitted, j.Completed)
		}
		s, seen := reads[op]
		if !seen || from.Before(s.from) {
			s.from = from
		}
		if !seen || to.After(s.to) {
			s.to = to
		}
		reads[op] = s
	}
	if len(reads) != 2 {
		t.Fatalf("the run's session %s ran jobs for %d operations besides its writes, want the 2 reads: %v", session, len(reads), reads)
	}
	var spans []span
	for _, s := range reads {
		spans = append(spans, s)
	}
	if a, b := spans[0], spans[1]; a.from.Before(b.to) && b.from.Before(a.to) {
		t.Errorf("the two sources were read at once: %v-%v and %v-%v", a.from, a.to, b.from, b.to)
	}
}
