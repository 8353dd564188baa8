package backend_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/store/sqlite"

	"github.com/tauro-exec/tauro-exec/internal/engine"
	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	"github.com/tauro-exec/tauro-exec/internal/spark/server/sparktest"
)

// expectProject is a pipeline whose node clean reads 1,000 rows of which
// 37 ((id + 1) is a multiple of 27) break the expectation every_27th with
// the given action, and whose node after reads clean's result. Row 4's
// amount is NULL, which does not meet positive (a warn).
func expectProject(t *testing.T, action string) string {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"settings_yml.json": settings,
		"global.yaml":       "output_path: out\nmode: spark\nstart_date: \"2025-01-01\"\nend_date: \"2025-01-02\"\nmax_retries: 2\nretry_delay: 0.1\n",
		"pipelines.yaml":    "p: {nodes: [clean, after]}\n",
		"nodes.yaml": `clean:
  sql: "SELECT id, IF(id = 4, NULL, id * 2) AS amount FROM range(1000)"
  output: [o.t.clean]
  expectations:
    - {name: every_27th, condition: "(id + 1) % 27 <> 0", action: ` + action + `}
    - {name: positive, condition: "amount >= 0"}
  checks:
    - {row_count: {min: 1}}
    - {not_null: [id]}
  quarantine: q.t.bad
after:
  dependencies: [clean]
  sql: "SELECT count(*) AS n FROM clean"
  output: [o.t.after]
`,
		"input.yaml":  "{}\n",
		"output.yaml": "o.t.clean: {format: json}\no.t.after: {format: json}\nq.t.bad: {format: json}\n",
	})
	return dir
}

// jsonRows reads the rows a json output wrote.
func jsonRows(t *testing.T, dir string) []map[string]any {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	var rows []map[string]any
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.SplitSeq(strings.TrimSpace(string(b)), "\n") {
			if line == "" {
				continue
			}
			var row map[string]any
			if err := json.Unmarshal([]byte(line), &row); err != nil {
				t.Fatal(err)
			}
			rows = append(rows, row)
		}
	}
	return rows
}

func nodeOf(r run.Run, name string) run.Node {
	for _, n := range r.Nodes {
		if n.Name == name {
			return n
		}
	}
	return run.Node{}
}

func TestExpectations_ADropLeavesTheBrokenRowsOutCountsThemAndQuarantinesThem(t *testing.T) {
	dir := expectProject(t, "drop")
	r := runPipeline(t, dir, "p")
	if r.State != run.Succeeded {
		t.Fatalf("run %s: %s", r.State, r.Message)
	}
	if got := len(jsonRows(t, filepath.Join(dir, "out", "o", "t", "clean"))); got != 963 {
		t.Errorf("clean wrote %d rows; want 963", got)
	}
	bad := jsonRows(t, filepath.Join(dir, "out", "q", "t", "bad"))
	if len(bad) != 37 {
		t.Errorf("the quarantine holds %d rows; want 37", len(bad))
	}
	for _, row := range bad {
		if id := int64(row["id"].(float64)); (id+1)%27 != 0 {
			t.Errorf("the quarantine holds id %d, which meets the expectation", id)
		}
	}
	if after := jsonRows(t, filepath.Join(dir, "out", "o", "t", "after")); len(after) != 1 || after[0]["n"] != float64(963) {
		t.Errorf("after read %v; want the 963 rows clean kept", after)
	}
	a := nodeOf(r, "clean").Attempts
	if len(a) != 1 || len(a[0].Expectations) != 4 {
		t.Fatalf("clean's attempts = %+v; want one with four results", a)
	}
	want := []run.ExpectationResult{
		{Name: "every_27th", Kind: "drop", Passed: 963, Failed: 37, Severity: "warn"},
		{Name: "positive", Kind: "warn", Passed: 999, Failed: 1, Severity: "warn"},
		{Name: "row_count", Kind: "row_count", Passed: 963, Severity: "error", OK: true},
		{Name: "not_null(id)", Kind: "not_null", Passed: 963, Severity: "error", OK: true},
	}
	for i, w := range want {
		got := a[0].Expectations[i]
		got.Message = ""
		if got != w {
			t.Errorf("result %d = %+v; want %+v", i, got, w)
		}
	}
	if m := a[0].Metrics["rows_quarantined.q.t.bad"]; m != 37 {
		t.Errorf("rows_quarantined = %v; want 37", m)
	}
}

func TestExpectations_AFailFailsTheNodeOnceNamingItAndBlocksItsDependents(t *testing.T) {
	dir := expectProject(t, "fail")
	r := runPipeline(t, dir, "p")
	if r.State != run.Failed {
		t.Fatalf("run %s; want FAILED", r.State)
	}
	clean := nodeOf(r, "clean")
	if clean.State != run.NodeFailed || clean.Error == nil || clean.Error.Type != "ExpectationFailed" ||
		!strings.Contains(clean.Error.Message, `"every_27th"`) || !strings.Contains(clean.Error.Message, "37 of 1000 rows") {
		t.Fatalf("clean = %s %+v; want it failed naming every_27th and its 37 rows", clean.State, clean.Error)
	}
	if len(clean.Attempts) != 1 {
		t.Errorf("clean ran %d attempts; an expectation failure is not retried", len(clean.Attempts))
	}
	if after := nodeOf(r, "after"); after.State == run.NodeSucceeded || after.Attempt != 0 {
		t.Errorf("after = %s after %d attempts; want it not run", after.State, after.Attempt)
	}
}

func TestExpectations_BadConditionsAreValidationErrorsAtTheirField(t *testing.T) {
	dir := expectProject(t, "drop")
	writeFiles(t, dir, map[string]string{"nodes.yaml": `clean:
  sql: "SELECT id FROM range(10)"
  output: [o.t.clean]
  expectations:
    - {name: unknown_column, condition: "price > 0", action: drop}
    - {name: not_boolean, condition: "id + 1"}
  checks:
    - {not_null: [nope]}
after: {dependencies: [clean], sql: "SELECT 1 AS one", output: [o.t.after]}
`})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	eng := newEngine(ctx, t, dir, sparktest.Remote(t))
	_, err := eng.Validate(ctx, engine.ValidateRequest{Pipeline: "p"})
	if err == nil {
		t.Fatal("Validate passed; want the three problems")
	}
	for _, want := range []string{"nodes.clean.expectations[0].condition", "nodes.clean.expectations[1].condition", "nodes.clean.checks[0].not_null"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: %v\nwant a problem at %s", err, want)
		}
	}
}

// TestExpectations_CountingCostsNoSparkRequest compares, by the requests
// --profile-nodes counts, a node without expectations and the same node
// with a warn, a drop, a not_null and a row_count check (no quarantine, no
// unique check: those are jobs of their own): the counts come from the
// job that writes.
func TestExpectations_CountingCostsNoSparkRequest(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"settings_yml.json": settings,
		"global.yaml":       "output_path: out\nmode: spark\nstart_date: \"2025-01-01\"\nend_date: \"2025-01-02\"\nmax_retries: 0\n",
		"pipelines.yaml":    "p: {nodes: [plain, checked]}\n",
		"nodes.yaml": `plain: {sql: "SELECT id FROM range(1000)", output: [o.t.plain]}
checked:
  sql: "SELECT id FROM range(1000)"
  output: [o.t.checked]
  expectations:
    - {name: w, condition: "id >= 0"}
    - {name: d, condition: "id % 10 <> 0", action: drop}
  checks: [{not_null: id}, {row_count: {min: 1, max: 1000}}]
`,
		"input.yaml":  "{}\n",
		"output.yaml": "o.t.plain: {format: parquet}\no.t.checked: {format: parquet}\n",
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	remote := sparktest.Remote(t)
	st, err := sqlite.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	log := slog.New(slog.DiscardHandler)
	be := testBackend(remote, log)
	be.SetProfile(true)
	eng := engine.New(engine.Options{ProjectDir: dir, Env: "base", Store: st, Logger: log, Backend: be})
	r, err := eng.Execute(ctx, "", run.Params{Pipeline: "p"}, false)
	if err != nil {
		t.Fatal(err)
	}
	done := waitRun(ctx, t, eng, r.ID)
	if done.State != run.Succeeded {
		t.Fatalf("run %s: %s", done.State, done.Message)
	}
	plain, checked := nodeOf(done, "plain").Attempts[0].Metrics, nodeOf(done, "checked").Attempts[0].Metrics
	t.Logf("Spark Connect requests: %v ExecutePlan of %v without expectations, %v of %v with",
		plain["execd.calls.ExecutePlan"], plain["execd.calls"], checked["execd.calls.ExecutePlan"], checked["execd.calls"])
	for _, m := range []string{"execd.calls", "execd.calls.ExecutePlan"} {
		if plain[m] == 0 || plain[m] != checked[m] {
			t.Errorf("%s: %v without expectations, %v with; want the same", m, plain[m], checked[m])
		}
	}
	if x := nodeOf(done, "checked").Attempts[0].Expectations; len(x) != 4 || x[1].Failed != 100 {
		t.Errorf("checked's expectations = %+v", x)
	}
}

// TestExpectations_AStreamingNodeCountsEachMicroBatch streams ten files,
// one a micro-batch, through a drop expectation that 37 of the 1,000 rows
// break: each batch reports its counts, and their sums are what the sink
// holds and what it left out.
// tenBatches is a streaming project whose node clean reads ten files of
// 100 orders, one a micro-batch, through not_27 with the given action,
// writing the rows it leaves out to quarantine.orders.bad when quarantined.
func tenBatches(t *testing.T, action string, quarantined bool) string {
	quarantine := ""
	if quarantined {
		quarantine = "  quarantine: quarantine.orders.bad\n"
	}
	dir := streamProject(t, `clean:
  sql: "SELECT id, amount FROM orders"
  input: [orders]
  output: [silver.orders.clean]
  streaming: {trigger: {type: available_now}}
  expectations: [{name: not_27, condition: "id % 27 <> 0", action: `+action+`}]
  checks: [{not_null: id}]
`+quarantine,
		"orders: {format: file_stream, path: in, options: {header: true, format: csv, maxFilesPerTrigger: 1}, schema: \"id INT, day STRING, amount DOUBLE\"}\n",
		"silver.orders.clean: {format: delta}\nquarantine.orders.bad: {format: delta, write_mode: append}\n")
	files := map[string]string{}
	for f := range 10 {
		files[fmt.Sprintf("in/%02d.csv", f)] = csvFile("2025-01-01", f*100+1, f*100+100)
	}
	writeFiles(t, dir, files)
	return dir
}

// batchSums adds up the first expectation's per-batch counts in evs.
func batchSums(t *testing.T, evs []run.Event) (batches, passed, failed int64) {
	t.Helper()
	for _, ev := range evs {
		if ev.Kind != run.NodeExpectations {
			continue
		}
		if ev.Expectations.BatchID == nil {
			t.Errorf("a streaming node's expectations name no batch: %+v", ev.Expectations)
		}
		batches++
		passed += ev.Expectations.Results[0].Passed
		failed += ev.Expectations.Results[0].Failed
	}
	return batches, passed, failed
}

func TestExpectations_AStreamingNodeCountsEachMicroBatch(t *testing.T) {
	dir := tenBatches(t, "drop", false)
	eng := streamEngine(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	r, err := eng.Execute(ctx, "", run.Params{Pipeline: "s"}, false)
	if err != nil {
		t.Fatal(err)
	}
	evs := follow(ctx, t, eng, r.ID, nil)
	done, _ := eng.Get(ctx, r.ID)
	if done.State != run.Succeeded {
		t.Fatalf("run %s: %s", done.State, done.Message)
	}
	batches, passed, failed := batchSums(t, evs)
	sink := count(ctx, t, "SELECT count(*) FROM delta.`"+filepath.Join(dir, "out", "silver", "orders", "clean")+"`")
	t.Logf("%d batches: %d passed, %d failed; the sink holds %d", batches, passed, failed, sink)
	if batches != 10 || passed != 963 || failed != 37 || sink != passed {
		t.Errorf("%d batches, %d passed, %d failed, sink %d; want 10 batches, 963 passed (all in the sink), 37 failed", batches, passed, failed, sink)
	}
	if x := nodeOf(done, "clean").Attempts[0].Expectations; len(x) != 2 || x[0].Passed != 963 || x[0].Failed != 37 || x[1].Passed != 963 {
		t.Errorf("the attempt's expectations = %+v; want the batches' sums", x)
	}
}

// TestExpectations_AStreamingNodesQuarantineHoldsWhatItsBatchesLeftOut
// streams the ten files through the drop with a quarantine: one query
// writes both (see quarantineSplit), so the per-batch counts add up to
// what the sink and the quarantine hold, and the quarantine holds exactly
// the rows that break not_27.
func TestExpectations_AStreamingNodesQuarantineHoldsWhatItsBatchesLeftOut(t *testing.T) {
	remote := sparktest.Remote(t)
	python, err := sparktest.Python()
	if err != nil {
		t.Skipf("no Python for workers: %v", err)
	}
	dir := tenBatches(t, "drop", true)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	eng, _ := pythonEngine(ctx, t, python, dir, remote, slog.New(slog.DiscardHandler))
	r, err := eng.Execute(ctx, "", run.Params{Pipeline: "s"}, false)
	if err != nil {
		t.Fatal(err)
	}
	evs := follow(ctx, t, eng, r.ID, nil)
	done, _ := eng.Get(ctx, r.ID)
	if done.State != run.Succeeded {
		t.Fatalf("run %s: %s %+v", done.State, done.Message, nodeOf(done, "clean").Error)
	}
	batches, passed, failed := batchSums(t, evs)
	sinkPath := filepath.Join(dir, "out", "silver", "orders", "clean")
	badPath := filepath.Join(dir, "out", "quarantine", "orders", "bad")
	sink := count(ctx, t, "SELECT count(*) FROM delta.`"+sinkPath+"`")
	bad := count(ctx, t, "SELECT count(*) FROM delta.`"+badPath+"`")
	misplaced := count(ctx, t, "SELECT count(*) FROM delta.`"+badPath+"` WHERE id % 27 <> 0")
	t.Logf("%d batches: %d passed, %d failed; the sink holds %d, the quarantine %d", batches, passed, failed, sink, bad)
	if batches != 10 || passed != sink || failed != bad || passed+failed != 1000 {
		t.Errorf("%d batches, %d passed, %d failed; the sink holds %d, the quarantine %d; want 10 batches whose passed add up to the sink and failed to the quarantine, 1,000 rows in all",
			batches, passed, failed, sink, bad)
	}
	if bad != 37 || misplaced != 0 {
		t.Errorf("the quarantine holds %d rows, %d of them meeting not_27; want the 37 that break it", bad, misplaced)
	}
}

func TestExpectations_AStreamingQuarantineWithoutPythonWorkersFailsSayingSo(t *testing.T) {
	eng := streamEngine(t, tenBatches(t, "drop", true))
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	r, err := eng.Execute(ctx, "", run.Params{Pipeline: "s"}, false)
	if err != nil {
		t.Fatal(err)
	}
	done := waitRun(ctx, t, eng, r.ID)
	clean := nodeOf(done, "clean")
	if done.State != run.Failed || clean.Error == nil || clean.Error.Type != "UnsupportedNode" ||
		!strings.Contains(clean.Error.Message, "split of its sink and quarantine") || !strings.Contains(clean.Error.Message, "Python workers") {
		t.Fatalf("run %s, clean %+v; want it failed saying its quarantine needs the project's Python workers", done.State, clean.Error)
	}
}

// TestExpectations_ChecksCountDuplicatesStaleRowsAndBounds runs the
// whole-result checks: a unique key with 90 repeats, a fresh and a stale
// freshness, and a warn row_count that does not hold (the node succeeds).
func TestExpectations_ChecksCountDuplicatesStaleRowsAndBounds(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"settings_yml.json": settings,
		"global.yaml":       "output_path: out\nmode: spark\nstart_date: \"2025-01-01\"\nend_date: \"2025-01-02\"\nmax_retries: 0\n",
		"pipelines.yaml":    "p: {nodes: [n, bounded]}\n",
		"nodes.yaml": `bounded: {sql: "SELECT id FROM range(100)", output: [o.t.bounded], checks: [{row_count: {min: 1, max: 100}}]}
n:
  sql: "SELECT id, id % 10 AS k, current_timestamp() AS now_ts, TIMESTAMP '2020-01-01 00:00:00' AS old_ts FROM range(100)"
  output: [o.t.n]
  checks:
    - {unique: k, severity: warn}
    - {unique: [id]}
    - {name: fresh, freshness: {column: now_ts, max_age: 1h}}
    - {name: stale, freshness: {column: old_ts, max_age: 1h}, severity: warn}
    - {row_count: {max: 10}, severity: warn}
`,
		"input.yaml":  "{}\n",
		"output.yaml": "o.t.n: {format: parquet}\no.t.bounded: {format: parquet}\n",
	})
	r := runPipeline(t, dir, "p")
	if r.State != run.Succeeded {
		t.Fatalf("run %s: %s %+v; warn checks do not fail a node", r.State, r.Message, r.Nodes)
	}
	// A row_count check alone counts with the write's own row count.
	if x := nodeOf(r, "bounded").Attempts[0].Expectations; len(x) != 1 || !x[0].OK || x[0].Passed != 100 {
		t.Errorf("bounded's row_count = %+v; want 100 rows, ok", x)
	}
	x := nodeOf(r, "n").Attempts[0].Expectations
	if len(x) != 5 {
		t.Fatalf("results = %+v", x)
	}
	for i, w := range []struct {
		name           string
		passed, failed int64
		ok             bool
	}{{"unique(k)", 10, 90, false}, {"unique(id)", 100, 0, true}, {"fresh", 100, 0, true}, {"stale", 0, 100, false}, {"row_count", 100, 0, false}} {
		if g := x[i]; g.Name != w.name || g.Passed != w.passed || g.Failed != w.failed || g.OK != w.ok {
			t.Errorf("result %d = %+v; want %+v", i, g, w)
		}
	}
}

// TestExpectations_APythonNodesDropReachesItsOutputAndItsDependents runs a
// drop on a Python node's result: its output and the SQL node that reads
// it both see the rows it keeps.
func TestExpectations_APythonNodesDropReachesItsOutputAndItsDependents(t *testing.T) {
	remote := sparktest.Remote(t)
	python, err := sparktest.Python()
	if err != nil {
		t.Skipf("no Python for workers: %v", err)
	}
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"settings_yml.json": settings,
		"global.yaml":       "output_path: out\nmode: spark\nstart_date: \"2025-01-01\"\nend_date: \"2025-01-02\"\nmax_retries: 0\nallowed_module_prefixes: [expnodes]\n",
		"pipelines.yaml":    "p: {nodes: [py, after]}\n",
		"nodes.yaml": `py:
  function: expnodes.numbers
  output: [o.t.py]
  expectations: [{name: every_27th, condition: "(id + 1) % 27 <> 0", action: drop}]
after: {sql: "SELECT count(*) AS n FROM py", dependencies: [py], output: [o.t.after]}
`,
		"expnodes.py": "from pyspark.sql import SparkSession\n\ndef numbers(*, start_date, end_date):\n" +
			"    return SparkSession.getActiveSession().range(1000)\n",
		"input.yaml":  "{}\n",
		"output.yaml": "o.t.py: {format: json}\no.t.after: {format: json}\n",
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	eng, _ := pythonEngine(ctx, t, python, dir, remote, log)
	r, err := eng.Execute(ctx, "", run.Params{Pipeline: "p"}, false)
	if err != nil {
		t.Fatal(err)
	}
	done := waitRun(ctx, t, eng, r.ID)
	if done.State != run.Succeeded {
		t.Fatalf("run %s: %s %+v", done.State, done.Message, done.Nodes)
	}
	if got := len(jsonRows(t, filepath.Join(dir, "out", "o", "t", "py"))); got != 963 {
		t.Errorf("py wrote %d rows; want 963", got)
	}
	if after := jsonRows(t, filepath.Join(dir, "out", "o", "t", "after")); len(after) != 1 || after[0]["n"] != float64(963) {
		t.Errorf("after read %v; want the 963 rows py kept", after)
	}
	if x := nodeOf(done, "py").Attempts[0].Expectations; len(x) != 1 || x[0].Passed != 963 || x[0].Failed != 37 {
		t.Errorf("py's expectations = %+v", x)
	}
}

// TestExpectations_AStreamingFailStopsTheQueryAndFailsTheNodeOnce: the
// first batch holds ids 27, 54 and 81, so the query stops after it.
func TestExpectations_AStreamingFailStopsTheQueryAndFailsTheNodeOnce(t *testing.T) {
	eng := streamEngine(t, tenBatches(t, "fail", false))
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	r, err := eng.Execute(ctx, "", run.Params{Pipeline: "s"}, false)
	if err != nil {
		t.Fatal(err)
	}
	evs := follow(ctx, t, eng, r.ID, nil)
	done, _ := eng.Get(ctx, r.ID)
	clean := nodeOf(done, "clean")
	// Which file the first batch reads is Spark's choice (their times are
	// alike), and each holds three or four multiples of 27.
	if done.State != run.Failed || clean.Error == nil || clean.Error.Type != "ExpectationFailed" ||
		!regexp.MustCompile(`"not_27": [34] of 100 rows`).MatchString(clean.Error.Message) {
		t.Fatalf("run %s, clean %s %+v; want it failed by not_27's rows of the first batch", done.State, clean.State, clean.Error)
	}
	if len(clean.Attempts) != 1 {
		t.Errorf("clean ran %d attempts; an expectation failure is not retried", len(clean.Attempts))
	}
	batches := 0
	for _, ev := range evs {
		if ev.Kind == run.NodeExpectations {
			batches++
		}
	}
	if batches == 0 || batches >= 10 {
		t.Errorf("%d batches reported; want the query stopped after the first that broke not_27", batches)
	}
}

func TestExpectations_AStreamingNodesConditionsAreAnalysedByValidate(t *testing.T) {
	dir := streamProject(t, `clean:
  sql: "SELECT id, amount FROM orders"
  input: [orders]
  output: [silver.orders.clean]
  streaming: {trigger: {type: available_now}}
  expectations: [{name: priced, condition: "price > 0", action: drop}]
`,
		"orders: {format: file_stream, path: in, options: {header: true, format: csv}, schema: \"id INT, day STRING, amount DOUBLE\"}\n",
		"silver.orders.clean: {format: delta}\n")
	writeFiles(t, dir, map[string]string{"in/a.csv": csvFile("2025-01-01", 1, 5)})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, err := streamEngine(t, dir).Validate(ctx, engine.ValidateRequest{Pipeline: "s"})
	if err == nil || !strings.Contains(err.Error(), "nodes.clean.expectations[0].condition") || !strings.Contains(err.Error(), "price") {
		t.Errorf("Validate: %v; want the unknown column at the condition's field", err)
	}
}
