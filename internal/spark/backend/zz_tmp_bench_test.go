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

func BenchmarkTmpVariants(b *testing.B) {
	remote := sparktest.Remote(b)
	variants := []string{"",
		"  expectations:\n    - {name: positive, condition: \"amount >= 0\"}\n",
		"  expectations:\n    - {name: not_k0, condition: \"k <> 0\", action: drop}\n",
		"  checks: [{not_null: [id, amount]}]\n",
		"  checks: [{row_count: {min: 1}}]\n",
	}
	engines := make([]*engine.Engine, len(variants))
	for i, extra := range variants {
		dir := b.TempDir()
		writeShaped(b, dir, wide(1), "", func(int) string { return fmt.Sprintf(benchSQL, 1) + extra })
		st, _ := sqlite.Open(context.Background(), b.TempDir())
		b.Cleanup(func() { st.Close() })
		log := slog.New(slog.DiscardHandler)
		engines[i] = engine.New(engine.Options{ProjectDir: dir, Env: "base", Store: st, Logger: log, Backend: testBackend(remote, log)})
	}
	took := make([]time.Duration, len(variants))
	for range b.N {
		for i, eng := range engines {
			done, _ := runBench(b, eng)
			took[i] += done.Nodes[0].EndTime.Sub(done.Nodes[0].StartTime)
		}
	}
	for i := range variants {
		b.ReportMetric(float64(took[i]/time.Duration(b.N))/1e6, fmt.Sprintf("v%d-ms", i))
	}
}
