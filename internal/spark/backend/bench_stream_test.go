package backend_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/run"
)

// BenchmarkStreaming measures, on a rate source written to parquet with a
// micro-batch a second:
//   - first-batch-ms: from the run request to the first micro-batch
//     committed to the query's checkpoint (the commit file's time, the
//     server's own record);
//   - progress-p50-ms / progress-p99-ms: from a batch's commit to its
//     progress event reaching a WatchRun watcher.
//
// Each iteration is one run of about 15 batches, then StopRun.
func BenchmarkStreaming(b *testing.B) {
	const batches = 15
	var firsts, lags []time.Duration
	for i := 0; i < b.N; i++ {
		dir, checkpoint := rateProject(b, "")
		eng := streamEngine(b, dir)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		requested := time.Now()
		r, err := eng.Execute(ctx, "", run.Params{Pipeline: "s"}, false)
		if err != nil {
			b.Fatal(err)
		}
		w, err := eng.Watch(ctx, r.ID, 0)
		if err != nil {
			b.Fatal(err)
		}
		seen, stopping := 0, false
		for ev := range w.Events() {
			if ev.Kind != run.NodeProgress || stopping {
				continue
			}
			received := time.Now()
			committed, ok := commitTime(checkpoint, ev.Progress.BatchID)
			if !ok {
				continue
			}
			if ev.Progress.BatchID == 0 {
				firsts = append(firsts, committed.Sub(requested))
			}
			lags = append(lags, received.Sub(committed))
			if seen++; seen == batches {
				stopping = true
				go func() { _, _ = eng.Stop(ctx, r.ID, "bench") }()
			}
		}
		cancel()
	}
	if len(firsts) == 0 || len(lags) == 0 {
		b.Fatal("no micro-batch was measured")
	}
	b.ReportMetric(float64(percentile(firsts, 50))/1e6, "first-batch-ms")
	b.ReportMetric(float64(percentile(lags, 50))/1e6, "progress-p50-ms")
	b.ReportMetric(float64(percentile(lags, 99))/1e6, "progress-p99-ms")
}

// commitTime is when the query committed batch id to its checkpoint.
func commitTime(checkpoint string, id int64) (time.Time, bool) {
	st, err := os.Stat(filepath.Join(checkpoint, "commits", strconv.FormatInt(id, 10)))
	if err != nil {
		return time.Time{}, false
	}
	return st.ModTime(), true
}

func percentile(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(min(i, len(s))-1, 0)]
}
