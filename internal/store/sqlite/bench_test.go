package sqlite_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	"github.com/tauro-exec/tauro-exec/internal/engine/store/storetest"
)

// BenchmarkAppend measures committed events per second, one event per
// transaction, as the scheduler appends them.
func BenchmarkAppend(b *testing.B) {
	s, _ := open(b)
	storetest.Create(b, s, storetest.NewRun("r", "p", "a"))
	storetest.AppendOK(b, s, "r", storetest.RunState(run.Running, ""), storetest.NodeState("a", run.NodeRunning, 1))
	ctx := context.Background()
	ev := storetest.Message("a", "a line of output from the node")
	for b.Loop() {
		if _, err := s.Append(ctx, "r", ev); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkAppendBatch measures throughput when events are committed 64 at
// a time.
func BenchmarkAppendBatch(b *testing.B) {
	s, _ := open(b)
	storetest.Create(b, s, storetest.NewRun("r", "p", "a"))
	storetest.AppendOK(b, s, "r", storetest.RunState(run.Running, ""), storetest.NodeState("a", run.NodeRunning, 1))
	ctx := context.Background()
	batch := make([]run.Event, 64)
	for i := range batch {
		batch[i] = storetest.Message("a", "a line of output from the node")
	}
	for b.Loop() {
		if _, err := s.Append(ctx, "r", batch...); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkAppendToWatcher measures how long one event takes from the
// Append call to a live watcher's hands: the commit plus the hand-off.
func BenchmarkAppendToWatcher(b *testing.B) {
	s, _ := open(b)
	storetest.Create(b, s, storetest.NewRun("r", "p", "a"))
	storetest.AppendOK(b, s, "r", storetest.RunState(run.Running, ""), storetest.NodeState("a", run.NodeRunning, 1))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w, err := s.Watch(ctx, "r", 3)
	if err != nil {
		b.Fatal(err)
	}
	received := make(chan time.Time, 1)
	go func() {
		for range w.Events() {
			received <- time.Now()
		}
	}()

	ev := storetest.Message("a", "a line of output from the node")
	var lat []time.Duration
	for b.Loop() {
		start := time.Now()
		if _, err := s.Append(ctx, "r", ev); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, (<-received).Sub(start))
	}
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[int(p*float64(len(lat)-1))]) / float64(time.Millisecond)
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(pct(1), "max-ms")
}
