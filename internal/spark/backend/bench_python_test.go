package backend_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine"
	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	"github.com/tauro-exec/tauro-exec/internal/pyworker"
	"github.com/tauro-exec/tauro-exec/internal/spark/server/sparktest"
	"github.com/tauro-exec/tauro-exec/internal/store/sqlite"
)

// identityNodes is the Python module of the Python variant: the function
// hands its input back unchanged.
const identityNodes = `def identity(df, *, start_date, end_date):
    return df
`

// BenchmarkPythonNodeOverhead measures what running a node in a Python
// worker costs beyond running the same node as SQL. Both variants have 50
// nodes: n0 is the same SQL source, and n1..n49 each pass their one
// dependency's result through unchanged and write it as parquet: as
// "SELECT * FROM dep" in one, and as a Python identity function in the
// other. The Spark work is then the same (both write the same rows from the
// same plan), so the difference in node time is the Python path: the worker
// call, reading the inputs as views, checking the result's schema and
// handing it back as a view.
//
// It reports the mean identity node time of each variant and their
// difference per node (the figure with a 50 ms target), for a chain (each
// node waits for the one before) and a fan-out (up to four side by side,
// with a pool of four workers).
func BenchmarkPythonNodeOverhead(b *testing.B) {
	remote := sparktest.Remote(b)
	python, err := sparktest.Python()
	if err != nil {
		b.Skipf("no Python for workers: %v", err)
	}
	fanout := make(shape, 50)
	for i := 1; i < 50; i++ {
		fanout[i] = []int{0}
	}
	for _, tc := range []struct {
		name string
		sh   shape
	}{{"chain50", deep(50)}, {"fanout50", fanout}} {
		b.Run(tc.name, func(b *testing.B) {
			ctx := context.Background()
			log := slog.New(slog.DiscardHandler)
			source := "  sql: \"SELECT id, id % 10 AS k, id * 2 AS v FROM range(2000)\"\n"
			sqlDir, pyDir := b.TempDir(), b.TempDir()
			writeShaped(b, sqlDir, tc.sh, "", func(i int) string {
				if i == 0 {
					return source
				}
				return fmt.Sprintf("  sql: \"SELECT * FROM n%d\"\n", tc.sh[i][0])
			})
			writeShaped(b, pyDir, tc.sh, "allowed_module_prefixes: [benchnodes]\n", func(i int) string {
				if i == 0 {
					return source
				}
				return fmt.Sprintf("  function: benchnodes.identity\n  input: [b.t.n%d]\n", tc.sh[i][0])
			}, "benchnodes.py", identityNodes)

			pool, err := pyworker.Start(ctx, pyworker.Config{Python: python, Project: pyDir, SocketDir: b.TempDir(),
				Size: 4, SparkRemote: remote, Logger: log})
			if err != nil {
				b.Fatal(err)
			}
			defer pool.Close(context.Background())
			engines := map[string]*engine.Engine{}
			for variant, dir := range map[string]string{"sql": sqlDir, "python": pyDir} {
				st, err := sqlite.Open(ctx, b.TempDir())
				if err != nil {
					b.Fatal(err)
				}
				defer st.Close()
				be := testBackend(remote, log)
				if variant == "python" {
					be.SetPython(pool)
				}
				engines[variant] = engine.New(engine.Options{ProjectDir: dir, Env: "base", Store: st, Logger: log, Backend: be})
			}
			// One untimed run each: the workers import the module and open
			// their Spark sessions, and Spark compiles the plans once.
			for _, v := range []string{"sql", "python"} {
				runBench(b, engines[v])
			}
			b.ResetTimer()
			var times [2][]time.Duration
			var wall [2]time.Duration
			for i := 0; i < b.N; i++ {
				for j, v := range []string{"sql", "python"} {
					r, w := runBench(b, engines[v])
					times[j] = append(times[j], identityTimes(b, r)...)
					wall[j] += w
				}
			}
			mean, median := func(d []time.Duration) float64 {
				var sum time.Duration
				for _, x := range d {
					sum += x
				}
				return float64(sum/time.Duration(len(d))) / 1e6
			}, func(d []time.Duration) float64 {
				slices.Sort(d)
				return float64(d[len(d)/2]) / 1e6
			}
			b.ReportMetric(mean(times[0]), "sql-node-ms")
			b.ReportMetric(mean(times[1]), "py-node-ms")
			b.ReportMetric(mean(times[1])-mean(times[0]), "py-extra-ms/node")
			b.ReportMetric(median(times[1])-median(times[0]), "py-extra-median-ms/node")
			b.ReportMetric(float64(wall[0]/time.Duration(b.N))/1e6, "sql-wall-ms")
			b.ReportMetric(float64(wall[1]/time.Duration(b.N))/1e6, "py-wall-ms")
		})
	}
}

// identityTimes are the node times of n1..n49.
func identityTimes(tb testing.TB, r run.Run) []time.Duration {
	var out []time.Duration
	for _, n := range r.Nodes {
		if n.Name != "n0" {
			out = append(out, n.EndTime.Sub(n.StartTime))
		}
	}
	if len(out) != 49 {
		tb.Fatalf("%d identity nodes ran, want 49", len(out))
	}
	return out
}
