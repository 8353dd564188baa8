package main

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	execv1 "github.com/tauro-exec/tauro-exec/gen/tauro/exec/v1"
)

// tinyRuns is how many runs one throughput round submits.
const tinyRuns = 24

// BenchmarkThroughput_TinyRuns: how many tiny runs (tinyproj's 3-node SQL
// pipeline, each run in its own environment so its output is its own)
// replicas admit and finish per minute, submitted all at once round-robin
// through the replicas, on the embedded SQLite store and on PostgreSQL,
// with one replica and with three, all on the test run's one Spark.
func BenchmarkThroughput_TinyRuns(b *testing.B) {
	for _, c := range []struct {
		name     string
		postgres bool
		replicas int
	}{
		{"sqlite/1", false, 1},
		{"postgres/1", true, 1},
		{"postgres/3", true, 3},
	} {
		b.Run(c.name, func(b *testing.B) {
			project := copyProject(b, "tinyproj")
			var ds []*daemon
			if c.postgres {
				rs := newReplicaSet(b, project)
				for i := range c.replicas {
					ds = append(ds, rs.start(b, fmt.Sprintf("r%d", i), "--max-concurrent-runs", "4"))
				}
			} else {
				ds = append(ds, startDaemon(b, project, b.TempDir(), "--workers", "0", "--max-concurrent-runs", "4"))
			}
			clients := make([]execv1.ExecServiceClient, len(ds))
			for i, d := range ds {
				clients[i] = d.client(b)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			round := 0
			var perMinute []float64
			for b.Loop() {
				round++
				began := time.Now()
				var wg sync.WaitGroup
				for i := range tinyRuns {
					cl := clients[i%len(clients)]
					wg.Go(func() {
						id := startRun(ctx, b, cl, &execv1.ExecutePipelineRequest{Pipeline: "tiny", Env: fmt.Sprintf("sandbox_b%d_%d", round, i)})
						collect(ctx, b, cl, id, 0)
						r, err := cl.GetRun(ctx, &execv1.GetRunRequest{RunId: id})
						if err != nil || r.GetRun().GetState() != execv1.RunState_RUN_STATE_SUCCEEDED {
							b.Errorf("run %s: %v, %v", id, r.GetRun().GetState(), err)
						}
					})
				}
				wg.Wait()
				perMinute = append(perMinute, float64(tinyRuns)/time.Since(began).Minutes())
			}
			var sum float64
			for _, v := range perMinute {
				sum += v
			}
			b.ReportMetric(sum/float64(len(perMinute)), "runs/min")
		})
	}
}
