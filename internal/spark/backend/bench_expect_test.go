package backend_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine"
	"github.com/tauro-exec/tauro-exec/internal/spark/server/sparktest"
	"github.com/tauro-exec/tauro-exec/internal/store/sqlite"
)

// benchSQL is what the expectation benchmark's node writes: enough rows
// that the write, not the round trips, is the node's time.
const benchSQL = "  sql: \"SELECT id, id %% 97 AS k, rand(%d) * 100 AS amount FROM range(2000000)\"\n"

// BenchmarkExpectationOverhead times one SQL node writing two million rows
// with and without expectations (a warn, a drop, a not_null and a
// row_count check, all counted by the write's job), the two runs taken in
// turn so that the machine's load falls on both alike, and reports each
// node's mean time and the overhead in percent. The target is under 10 %.
func BenchmarkExpectationOverhead(b *testing.B) {
	remote := sparktest.Remote(b)
	expect := "  expectations:\n" +
		"    - {name: positive, condition: \"amount >= 0\"}\n" +
		"    - {name: not_k0, condition: \"k <> 0\", action: drop}\n" +
		"  checks: [{not_null: [id, amount]}, {row_count: {min: 1}}]\n"
	engines := make([]*engine.Engine, 2)
	for i, extra := range []string{"", expect} {
		dir := b.TempDir()
		writeShaped(b, dir, wide(1), "", func(int) string { return fmt.Sprintf(benchSQL, i) + extra })
		st, err := sqlite.Open(context.Background(), b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close() })
		log := slog.New(slog.DiscardHandler)
		engines[i] = engine.New(engine.Options{ProjectDir: dir, Env: "base", Store: st, Logger: log, Backend: testBackend(remote, log)})
	}
	var took [2]time.Duration
	for range b.N {
		for i, eng := range engines {
			done, _ := runBench(b, eng)
			took[i] += done.Nodes[0].EndTime.Sub(done.Nodes[0].StartTime)
		}
	}
	n := time.Duration(b.N)
	b.ReportMetric(float64(took[0]/n)/1e6, "plain-ms")
	b.ReportMetric(float64(took[1]/n)/1e6, "expect-ms")
	b.ReportMetric(100*(float64(took[1])-float64(took[0]))/float64(took[0]), "overhead-%")
}
