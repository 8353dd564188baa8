package backend_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine"
	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	"github.com/tauro-exec/tauro-exec/internal/spark/server/sparktest"
	"github.com/tauro-exec/tauro-exec/internal/store/sqlite"
	"github.com/tauro-exec/tauro-exec/internal/streaming/kafkatest"
)

func TestMain(m *testing.M) {
	code := sparktest.Main(m)
	kafkatest.Stop()
	os.Exit(code)
}

// shape names each node's dependencies; nodes are n0..n(len-1).
type shape [][]int

func wide(n int) shape { s := make(shape, n); return s }

func deep(n int) shape {
	s := make(shape, n)
	for i := 1; i < n; i++ {
		s[i] = []int{i - 1}
	}
	return s
}

// mixed is five layers of ten; each node reads two nodes of the layer above.
func mixed() shape {
	s := make(shape, 50)
	for i := 10; i < 50; i++ {
		s[i] = []int{i - 10 - i%10 + (i+3)%10, i - 10}
	}
	return s
}

// writeProject writes a tauro project whose every node is a small SQL
// aggregate that writes parquet, so each node does real Spark work.
func writeProject(tb testing.TB, dir string, sh shape) {
	tb.Helper()
	writeShaped(tb, dir, sh, "", func(i int) string {
		return fmt.Sprintf("  sql: \"SELECT id %% 10 AS k, count(*) AS c FROM range(%d) GROUP BY 1\"\n", 20000+i)
	})
}

// writeShaped writes a tauro project with one pipeline, bench, whose nodes
// n0..n(len-1) follow sh; body gives each node's definition besides its
// dependencies and its parquet output. files adds files to the project.
func writeShaped(tb testing.TB, dir string, sh shape, globals string, body func(i int) string, files ...string) {
	tb.Helper()
	all := map[string]string{
		"settings_yml.json": `{"base_path": ".", "env_config": {"base": {
  "global_settings_path": "global.yaml", "pipelines_config_path": "pipelines.yaml",
  "nodes_config_path": "nodes.yaml", "input_config_path": "input.yaml", "output_config_path": "output.yaml"}}}`,
		"global.yaml": "output_path: out\nmode: spark\nstart_date: \"2025-01-01\"\nend_date: \"2025-01-31\"\nmax_parallel_nodes: 4\nmax_retries: 0\n" + globals,
		"input.yaml":  "{}\n",
	}
	var pipes, nodes, outs strings.Builder
	pipes.WriteString("bench:\n  nodes: [")
	for i, deps := range sh {
		if i > 0 {
			pipes.WriteString(", ")
		}
		fmt.Fprintf(&pipes, "n%d", i)
		fmt.Fprintf(&nodes, "n%d:\n%s  output: [b.t.n%d]\n", i, body(i), i)
		if len(deps) > 0 {
			nodes.WriteString("  dependencies: [")
			for j, d := range deps {
				if j > 0 {
					nodes.WriteString(", ")
				}
				fmt.Fprintf(&nodes, "n%d", d)
			}
			nodes.WriteString("]\n")
		}
		fmt.Fprintf(&outs, "b.t.n%d: {format: parquet, write_mode: overwrite}\n", i)
	}
	pipes.WriteString("]\n")
	all["pipelines.yaml"], all["nodes.yaml"], all["output.yaml"] = pipes.String(), nodes.String(), outs.String()
	for i := 0; i+1 < len(files); i += 2 {
		all[files[i]] = files[i+1]
	}
	for name, text := range all {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
}

// BenchmarkSQLPipeline runs 50-node SQL pipelines end to end on the test
// Spark server and reports how much of the wall time is not Spark's. The
// run's fixed cost (validation, the run record, opening and releasing its
// Spark session: from the request to the first node's start and from the
// last node's end to the run's end) is reported apart; what remains beyond
// the best a perfect scheduler could do with the measured node times (the
// longer of the critical path and the total over the workers) is the
// orchestration overhead, reported per node.
func BenchmarkSQLPipeline(b *testing.B) {
	remote := sparktest.Remote(b)
	for _, tc := range []struct {
		name string
		sh   shape
	}{{"wide50", wide(50)}, {"deep50", deep(50)}, {"mixed50", mixed()}} {
		b.Run(tc.name, func(b *testing.B) {
			dir := b.TempDir()
			writeProject(b, dir, tc.sh)
			ctx := context.Background()
			st, err := sqlite.Open(ctx, b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			log := slog.New(slog.DiscardHandler)
			eng := engine.New(engine.Options{ProjectDir: dir, Env: "base", Store: st, Logger: log,
				Backend: testBackend(remote, log)})
			var overhead, wallSum, bound, fixed time.Duration
			for i := 0; i < b.N; i++ {
				start := time.Now()
				done, wall := runBench(b, eng)
				lb := lowerBound(tc.sh, done, 4)
				first, last := done.Nodes[0].StartTime, done.Nodes[0].EndTime
				for _, nd := range done.Nodes {
					if nd.StartTime.Before(first) {
						first = nd.StartTime
					}
					if nd.EndTime.After(last) {
						last = nd.EndTime
					}
				}
				f := first.Sub(start) + start.Add(wall).Sub(last)
				wallSum += wall
				bound += lb
				fixed += f
				overhead += wall - f - lb
			}
			n := time.Duration(b.N)
			b.ReportMetric(float64(wallSum/n)/1e6, "wall-ms")
			b.ReportMetric(float64(bound/n)/1e6, "spark-bound-ms")
			b.ReportMetric(float64(fixed/n)/1e6, "run-fixed-ms")
			b.ReportMetric(float64(overhead/n/time.Duration(len(tc.sh)))/1e6, "overhead-ms/node")
		})
	}
}

// runBench runs the project's bench pipeline to its end and returns the
// run's record and the wall time from the request to the last event.
func runBench(tb testing.TB, eng *engine.Engine) (run.Run, time.Duration) {
	tb.Helper()
	ctx := context.Background()
	start := time.Now()
	r, err := eng.Execute(ctx, "", run.Params{Pipeline: "bench"}, false)
	if err != nil {
		tb.Fatal(err)
	}
	w, err := eng.Watch(ctx, r.ID, 0)
	if err != nil {
		tb.Fatal(err)
	}
	for range w.Events() {
	}
	wall := time.Since(start)
	done, err := eng.Get(ctx, r.ID)
	if err != nil {
		tb.Fatal(err)
	}
	if done.State != run.Succeeded {
		msg := done.Message
		for _, n := range done.Nodes {
			if n.State != run.NodeSucceeded {
				msg += fmt.Sprintf("; %s %s", n.Name, n.State)
				if n.Error != nil {
					msg += ": " + n.Error.Message
				}
			}
		}
		tb.Fatalf("run %s: %s", done.State, msg)
	}
	return done, wall
}

// lowerBound is the shortest wall time any scheduler could reach with these
// node durations: at least the longest dependency chain, and at least the
// total work spread over the workers.
func lowerBound(sh shape, r run.Run, workers int) time.Duration {
	dur := make([]time.Duration, len(sh))
	var total time.Duration
	for _, n := range r.Nodes {
		var idx int
		if _, err := fmt.Sscanf(n.Name, "n%d", &idx); err != nil {
			continue
		}
		dur[idx] = n.EndTime.Sub(n.StartTime)
		total += dur[idx]
	}
	finish := make([]time.Duration, len(sh))
	var chain time.Duration
	for i, deps := range sh {
		var ready time.Duration
		for _, d := range deps {
			ready = max(ready, finish[d])
		}
		finish[i] = ready + dur[i]
		chain = max(chain, finish[i])
	}
	return max(chain, total/time.Duration(workers))
}
