package backend_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine"
	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	"github.com/tauro-exec/tauro-exec/internal/pyworker"
	sparkbackend "github.com/tauro-exec/tauro-exec/internal/spark/backend"
	"github.com/tauro-exec/tauro-exec/internal/spark/server/sparktest"
	"github.com/tauro-exec/tauro-exec/internal/store/sqlite"
	"github.com/tauro-exec/tauro-exec/internal/streaming"
)

// runPipeline runs one pipeline of the project in dir to its end on the
// test Spark server and returns the run's record.
func runPipeline(t *testing.T, dir, pipeline string) run.Run {
	t.Helper()
	remote := sparktest.Remote(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	eng := newEngine(ctx, t, dir, remote)
	r, err := eng.Execute(ctx, "", run.Params{Pipeline: pipeline}, false)
	if err != nil {
		t.Fatal(err)
	}
	return waitRun(ctx, t, eng, r.ID)
}

// newEngine is an engine on the project in dir, running on Spark at remote,
// with a store of its own.
func newEngine(ctx context.Context, t *testing.T, dir, remote string) *engine.Engine {
	t.Helper()
	st, err := sqlite.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	log := slog.New(slog.DiscardHandler)
	return engine.New(engine.Options{ProjectDir: dir, Env: "base", Store: st, Logger: log,
		Backend: testBackend(remote, log)})
}

func waitRun(ctx context.Context, t *testing.T, eng *engine.Engine, id string) run.Run {
	t.Helper()
	w, err := eng.Watch(ctx, id, 0)
	if err != nil {
		t.Fatal(err)
	}
	for range w.Events() {
	}
	done, err := eng.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return done
}

func writeFiles(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

const settings = `{"base_path": ".", "env_config": {"base": {
  "global_settings_path": "global.yaml", "pipelines_config_path": "pipelines.yaml",
  "nodes_config_path": "nodes.yaml", "input_config_path": "input.yaml", "output_config_path": "output.yaml"}}}`

func TestRun_IndependentNodesOverlapInTimeOnSpark(t *testing.T) {
	dir := t.TempDir()
	nap := `SELECT reflect('java.lang.Thread', 'sleep', CAST(1500 AS BIGINT)) AS slept`
	writeFiles(t, dir, map[string]string{
		"settings_yml.json": settings,
		"global.yaml":       "output_path: out\nmode: spark\nstart_date: \"2025-01-01\"\nend_date: \"2025-01-02\"\nmax_parallel_nodes: 3\nmax_retries: 0\n",
		"pipelines.yaml":    "p: {nodes: [a, b, c]}\n",
		"nodes.yaml":        "a: {sql: \"" + nap + "\", output: [o.t.a]}\nb: {sql: \"" + nap + "\", output: [o.t.b]}\nc: {sql: \"" + nap + "\", output: [o.t.c]}\n",
		"input.yaml":        "{}\n",
		"output.yaml":       "o.t.a: {format: parquet}\no.t.b: {format: parquet}\no.t.c: {format: parquet}\n",
	})
	r := runPipeline(t, dir, "p")
	if r.State != run.Succeeded {
		t.Fatalf("run %s: %s", r.State, r.Message)
	}
	overlaps := 0
	for i := range r.Nodes {
		for j := i + 1; j < len(r.Nodes); j++ {
			a, b := r.Nodes[i], r.Nodes[j]
			if a.StartTime.Before(b.EndTime) && b.StartTime.Before(a.EndTime) {
				overlaps++
			}
		}
	}
	if overlaps == 0 {
		for _, n := range r.Nodes {
			t.Logf("%s %s..%s", n.Name, n.StartTime.Format(time.StampMilli), n.EndTime.Format(time.StampMilli))
		}
		t.Error("no two independent nodes ran at the same time")
	}
}

func TestRun_ChainedSQLNodesWriteWhatTheirQueriesSay(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"settings_yml.json": settings,
		"global.yaml":       "input_path: data\noutput_path: out\nmode: spark\nstart_date: \"2025-01-02\"\nend_date: \"2025-01-03\"\nmax_retries: 0\n",
		"data/sales.csv":    "day,amount\n2025-01-01,5\n2025-01-02,7\n2025-01-03,11\n2025-01-04,13\n",
		"pipelines.yaml":    "p: {nodes: [window, total, check]}\n",
		"nodes.yaml": `window:
  input: [sales]
  sql: "SELECT day, amount FROM sales WHERE day BETWEEN :start_date AND :end_date"
  output: [s.t.window]
total:
  input: [s.t.window]
  sql: "SELECT sum(amount) AS total, count(*) AS days FROM ` + "`s.t.window`" + `"
  output: [s.t.total]
check:
  dependencies: total
  sql: "SELECT total * 2 AS doubled FROM total"
  output: [s.t.check]
`,
		"input.yaml":  "sales: {format: csv, filepath: \"${input_path}/sales.csv\", schema: \"day DATE, amount INT\", options: {header: true}}\n",
		"output.yaml": "s.t.window: {format: parquet}\ns.t.total: {format: json}\ns.t.check: {format: csv, options: {header: true}}\n",
	})
	r := runPipeline(t, dir, "p")
	if r.State != run.Succeeded {
		t.Fatalf("run %s: %s %+v", r.State, r.Message, r.Nodes)
	}
	totals, err := filepath.Glob(filepath.Join(dir, "out", "s", "t", "total", "*.json"))
	if err != nil || len(totals) == 0 {
		t.Fatalf("no json written: %v", err)
	}
	var body []byte
	for _, f := range totals {
		b, _ := os.ReadFile(f)
		body = append(body, b...)
	}
	if got := string(body); got != "{\"total\":18,\"days\":2}\n" {
		t.Errorf("total output = %q, want the two days in the window (7+11)", got)
	}
	checks, _ := filepath.Glob(filepath.Join(dir, "out", "s", "t", "check", "*.csv"))
	var csv []byte
	for _, f := range checks {
		b, _ := os.ReadFile(f)
		csv = append(csv, b...)
	}
	if got := string(csv); got != "doubled\n36\n" {
		t.Errorf("check output = %q", got)
	}
}

// testBackend is the Spark backend as execd wires it: on the server at
// remote, with internal/streaming following its streaming queries.
func testBackend(remote string, log *slog.Logger) *sparkbackend.Backend {
	b := sparkbackend.New(func() string { return remote }, func() error { return nil }, log)
	b.SetStreams(streaming.Follower{})
	return b
}

// pythonEngine is an engine on the project in dir whose Python nodes run in
// a pool of one worker of python (its config changed by opts), on the
// server at remote, with its store; all are closed when the test ends.
func pythonEngine(ctx context.Context, t *testing.T, python, dir, remote string, log *slog.Logger, opts ...func(*pyworker.Config)) (*engine.Engine, *sparkbackend.Backend) {
	t.Helper()
	cfg := pyworker.Config{Python: python, Project: dir, SocketDir: t.TempDir(), Size: 1, SparkRemote: remote, Logger: log}
	for _, o := range opts {
		o(&cfg)
	}
	pool, err := pyworker.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pool.Close(context.Background()) })
	st, err := sqlite.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	be := testBackend(remote, log)
	be.SetPython(pool)
	return engine.New(engine.Options{ProjectDir: dir, Env: "base", Store: st, Logger: log, Backend: be}), be
}
