package backend_test

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	"github.com/tauro-exec/tauro-exec/internal/pyworker"
	"github.com/tauro-exec/tauro-exec/internal/spark/server/sparktest"
)

// TestProfile_ANodeCostsItsViewItsWritesAndTheNamesItsReadersUse counts the
// Spark Connect requests each node makes, as --profile-nodes reports them:
// a SQL node's result view and its write, plus a session name for each
// name a SQL dependent reads it by and a cache when several read it; a
// Python node's result taken in and written. No schema request from execd,
// no name that nobody reads, no request after the node for its cleanup.
func TestProfile_ANodeCostsItsViewItsWritesAndTheNamesItsReadersUse(t *testing.T) {
	remote := sparktest.Remote(t)
	python, err := sparktest.Python()
	if err != nil {
		t.Skipf("no Python for workers: %v", err)
	}
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"settings_yml.json": settings,
		"global.yaml":       "output_path: out\nmode: spark\nstart_date: \"2025-01-01\"\nend_date: \"2025-01-02\"\nmax_parallel_nodes: 2\nmax_retries: 0\nallowed_module_prefixes: [profnodes]\n",
		"pipelines.yaml":    "p: {nodes: [a, b, c, d, e, f, g, h]}\n",
		"nodes.yaml": `a: {sql: "SELECT id, id % 3 AS k FROM range(100)", output: [o.t.a]}
b: {sql: "SELECT k, count(*) AS n FROM a GROUP BY k", dependencies: [a], output: [o.t.b]}
c: {sql: "SELECT max(id) AS m FROM a", dependencies: [a], output: [o.t.c]}
d: {function: profnodes.keep, input: [o.t.a], output: [o.t.d]}
e: {sql: "SELECT 1 AS one"}
f: {sql: "SELECT one FROM e", dependencies: [e], output: [o.t.f]}
g: {function: profnodes.keep, input: [raw], output: [o.t.g]}
h: {sql: "SELECT k FROM both", input: [both], output: [o.t.h]}
`,
		"profnodes.py": "def keep(df, *, start_date, end_date):\n    return df.where('k = 1')\n",
		"input.yaml":   "raw: {format: query, query: \"SELECT id % 3 AS k FROM range(9)\"}\nboth: {format: query, query: \"SELECT 1 AS k\"}\n",
		"output.yaml":  "o.t.a: {format: parquet}\no.t.b: {format: parquet}\no.t.c: {format: parquet}\no.t.d: {format: parquet}\no.t.f: {format: parquet}\no.t.g: {format: parquet}\no.t.h: {format: parquet}\n",
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	eng, be := pythonEngine(ctx, t, python, dir, remote, log, func(c *pyworker.Config) { c.Profile = true })
	be.SetProfile(true)
	r, err := eng.Execute(ctx, "", run.Params{Pipeline: "p"}, false)
	if err != nil {
		t.Fatal(err)
	}
	w, err := eng.Watch(ctx, r.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]map[string]float64{}
	phases := map[string][]string{}
	for ev := range w.Events() {
		if ev.Kind != run.NodeMetric {
			continue
		}
		if calls[ev.Node] == nil {
			calls[ev.Node] = map[string]float64{}
		}
		switch name := ev.MetricName; {
		case len(name) > 12 && name[:12] == "execd.calls.":
			calls[ev.Node][name[12:]] = ev.MetricValue
		case name == "execd.calls":
			calls[ev.Node]["total"] = ev.MetricValue
		case len(name) > 12 && name[:12] == "execd.phase.":
			phases[ev.Node] = append(phases[ev.Node], name[12:])
		case strings.HasPrefix(name, "worker.calls."):
			calls[ev.Node]["worker."+strings.TrimPrefix(name, "worker.calls.")] = ev.MetricValue
		case strings.HasPrefix(name, "worker.phase."):
			phases[ev.Node] = append(phases[ev.Node], name)
		}
	}
	done, err := eng.Get(ctx, r.ID)
	if err != nil || done.State != run.Succeeded {
		t.Fatalf("run %v %s: %v", done.State, done.Message, err)
	}
	// a: its view, the two names b and c read it by (a, o.t.a), a cache for
	// its two readers, its write. b and c: their view and their write. d:
	// its write (its input is a's global view; nobody reads d). e: its view
	// and the name f reads it by, no cache (computed once, by f alone); f:
	// its view and its write.
	// g, a Python node reading an input no SQL names: the input's global
	// view, made in one request, and its write. h, a SQL node: its input's
	// session view, its own view and its write.
	// The one analysis is a's cache (asked as a persist), never a schema.
	want := map[string]float64{"a": 5, "b": 2, "c": 2, "d": 1, "e": 2, "f": 2, "g": 2, "h": 3}
	analyses := map[string]float64{"a": 1}
	for node, n := range want {
		got := calls[node]
		if got["total"] != n || got["AnalyzePlan"] != analyses[node] {
			t.Errorf("node %s made %v Spark Connect requests (%v), want %v, %v of them AnalyzePlan", node, got["total"], got, n, analyses[node])
		}
	}
	// d's worker: its result view and the result's schema (sent together);
	// besides, only the release of the view's operation and, d being the
	// worker's first node, its session's setup (the server's version and
	// the settings PySpark reads).
	wantWorker := map[string]float64{"worker.ExecutePlan.create_dataframe_view": 1, "worker.AnalyzePlan.schema": 1}
	setup := []string{"worker.ReleaseExecute", "worker.AnalyzePlan.spark_version", "worker.Config.get"}
	for kind, n := range calls["d"] {
		if strings.HasPrefix(kind, "worker.") && !slices.Contains(setup, kind) && wantWorker[kind] != n {
			t.Errorf("node d's worker made %v requests of kind %s, want %v (all: %v)", n, kind, wantWorker[kind], calls["d"])
		}
	}
	for kind, n := range wantWorker {
		if calls["d"][kind] != n {
			t.Errorf("node d's worker made %v requests of kind %s, want %v (all: %v)", calls["d"][kind], kind, n, calls["d"])
		}
	}
	wantPhases := []string{"worker.phase.load_ms", "worker.phase.session_ms", "worker.phase.call_ms", "worker.phase.result_ms",
		"inputs_ms", "worker_ms", "handback_ms", "write_ms", "cleanup_ms"}
	if got := phases["d"]; !slices.Equal(got, wantPhases) {
		t.Errorf("Python node d's phases = %v, want %v", got, wantPhases)
	}
	if got := phases["b"]; len(got) != 4 || got[0] != "inputs_ms" || got[1] != "plan_ms" || got[2] != "write_ms" {
		t.Errorf("SQL node b's phases = %v", got)
	}
}
