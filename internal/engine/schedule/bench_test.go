package schedule

import (
	"context"
	"fmt"
	"testing"
)

var (
	noopRunner   = RunnerFunc(func(context.Context, Attempt) error { return nil })
	noopRecorder = RecorderFunc(func(context.Context, Transition) error { return nil })
)

// benchmarkScheduler reports the scheduler's own cost per node: the runner
// and the recorder do nothing.
func benchmarkScheduler(b *testing.B, tasks []Task, opt Options) {
	b.ReportAllocs()
	for b.Loop() {
		res, err := Run(context.Background(), tasks, noopRunner, noopRecorder, opt)
		if err != nil || len(res.States) != len(tasks) {
			b.Fatal(res, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(tasks)), "ns/node")
}

// BenchmarkScheduler_Wide1000 runs 1000 independent nodes on 8 workers.
func BenchmarkScheduler_Wide1000(b *testing.B) {
	tasks := make([]Task, 1000)
	for i := range tasks {
		tasks[i] = Task{Name: fmt.Sprint("n", i)}
	}
	benchmarkScheduler(b, tasks, Options{MaxWorkers: 8})
}

// BenchmarkScheduler_Deep1000 runs a chain of 1000 nodes, each depending on
// the one before, so every node waits for a full round trip of the loop.
func BenchmarkScheduler_Deep1000(b *testing.B) {
	tasks := make([]Task, 1000)
	for i := range tasks {
		tasks[i] = Task{Name: fmt.Sprint("n", i)}
		if i > 0 {
			tasks[i].Deps = []string{tasks[i-1].Name}
		}
	}
	benchmarkScheduler(b, tasks, Options{MaxWorkers: 8})
}
