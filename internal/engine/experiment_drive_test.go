package engine

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/experiment"
	"github.com/tauro-exec/tauro-exec/internal/engine/plan"
	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	"github.com/tauro-exec/tauro-exec/internal/store/sqlite"
)

// trialBackend runs a toy pipeline without Spark: the score node logs
// loss = (x-1)^2 and fails when x is above failAbove. It counts how many
// score nodes run at once.
type trialBackend struct {
	failAbove float64
	// holdShared keeps the shared node running until it is cancelled.
	holdShared bool
	// gather, when set, holds each score node until that many have run
	// at once (or 10 s have passed), so that a loaded machine, which may
	// start a trial only after another has ended, still shows how many
	// the engine lets run together.
	gather int
	mu     sync.Mutex
	live   int
	most   int
	points int
}

func (b *trialBackend) Ready() error { return nil }

func (b *trialBackend) OpenRun(context.Context, RunContext) (RunExecutor, error) { return b, nil }

func (b *trialBackend) Close(context.Context) error { return nil }

func (b *trialBackend) RunNode(ctx context.Context, n *plan.Node, _ int, emit func(run.Event)) error {
	b.mu.Lock()
	if n.Name == "points" {
		b.points++
		b.mu.Unlock()
		if b.holdShared {
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	}
	b.live++
	b.most = max(b.most, b.live)
	b.mu.Unlock()
	defer func() { b.mu.Lock(); b.live--; b.mu.Unlock() }()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		b.mu.Lock()
		gathered := b.most >= b.gather
		b.mu.Unlock()
		if gathered {
			break
		}
		select {
		case <-time.After(5 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	select {
	case <-time.After(200 * time.Millisecond):
	case <-ctx.Done():
		return ctx.Err()
	}
	x, _ := n.Hyperparams["x"].(float64)
	if x > b.failAbove {
		return errors.New("x is too large")
	}
	emit(run.Event{Kind: run.NodeMetric, MetricName: "loss", MetricValue: (x - 1) * (x - 1)})
	return nil
}

// counting proposes x = the trial's number.
type counting struct{}

func (counting) Suggest(_ context.Context, p experiment.Proposal) (map[string]any, error) {
	return map[string]any{"x": float64(p.Number)}, nil
}

func toyProject(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"settings_yml.json": `{"base_path": ".", "env_config": {"base": {"global_settings_path": "g.yaml", "pipelines_config_path": "p.yaml",
			"nodes_config_path": "n.yaml", "input_config_path": "i.yaml", "output_config_path": "o.yaml"}}}`,
		"g.yaml": "output_path: out\nstart_date: '2025-01-01'\nend_date: '2025-01-02'\nmax_retries: 0\n",
		"p.yaml": "toy: {nodes: [points, score]}\n",
		"n.yaml": "points: {sql: 'SELECT 1 AS id', output: [s.t.points]}\nscore: {function: m.score, input: [s.t.points], output: [s.t.score], metrics: [loss]}\n",
		"i.yaml": "{}\n",
		"o.yaml": "s.t.points: {format: parquet}\ns.t.score: {format: parquet}\n",
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func toyEngine(t *testing.T, b *trialBackend) *Engine {
	t.Helper()
	st, err := sqlite.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := New(Options{ProjectDir: toyProject(t), Env: "dev", Store: st, Backend: b, Suggester: counting{}, MaxConcurrentRuns: 8,
		Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(func() { _ = e.Close(context.Background()) })
	return e
}

func TestExperiment_CancelDuringTheSharedRunCancelsIt(t *testing.T) {
	e := toyEngine(t, &trialBackend{holdShared: true})
	ctx := context.Background()
	x, err := e.RunExperiment(ctx, "", toySpec(3, 1), false)
	if err != nil {
		t.Fatal(err)
	}
	for x.SharedRunID == "" {
		time.Sleep(10 * time.Millisecond)
		if x, err = e.GetExperiment(ctx, x.ID); err != nil {
			t.Fatal(err)
		}
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	x, err = e.CancelExperiment(cctx, x.ID, "changed my mind")
	if err != nil {
		t.Fatal(err)
	}
	r, _ := e.Get(ctx, x.SharedRunID)
	if x.State != experiment.Cancelled || x.Message != "changed my mind" || r.State != run.Cancelled || len(x.Trials) != 0 {
		t.Errorf("experiment %s (%s), shared run %s, %d trials; want both cancelled and no trial", x.State, x.Message, r.State, len(x.Trials))
	}
}

func runToy(t *testing.T, b *trialBackend, spec experiment.Spec) experiment.Record {
	t.Helper()
	ctx := context.Background()
	e := toyEngine(t, b)
	x, err := e.RunExperiment(ctx, "", spec, false)
	if err != nil {
		t.Fatal(err)
	}
	w, err := e.WatchExperiment(ctx, x.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	for range w.Events() {
	}
	if err := w.Err(); err != nil {
		t.Fatal(err)
	}
	x, err = e.GetExperiment(ctx, x.ID)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func toySpec(trials, parallel int) experiment.Spec {
	return experiment.Spec{Pipeline: "toy", NTrials: trials, MaxParallel: parallel,
		Space:     []experiment.Dimension{{Name: "x", Kind: experiment.Real, Low: 0, High: 10}},
		Objective: experiment.Objective{Metric: "loss"}}
}

func TestExperiment_RunsTrialsUpToMaxParallelAndKeepsTheBest(t *testing.T) {
	b := &trialBackend{failAbove: 100, gather: 3}
	x := runToy(t, b, toySpec(7, 3))
	if x.State != experiment.Succeeded || len(x.Trials) != 7 {
		t.Fatalf("%s with %d trials: %s", x.State, len(x.Trials), x.Message)
	}
	if best := x.Best(); best == nil || best.Number != 1 || *best.Value != 0 {
		t.Errorf("best %+v; want trial 1 (x=1, loss 0)", best)
	}
	if b.most != 3 {
		t.Errorf("at most %d trials ran at once; want max_parallel_trials 3", b.most)
	}
	if b.points != 1 {
		t.Errorf("the shared node ran %d times; want once", b.points)
	}
}

func TestExperiment_AFailedTrialIsToldAndMostFailingStopsTheExperiment(t *testing.T) {
	b := &trialBackend{failAbove: 2.5} // trials 0, 1, 2 succeed
	x := runToy(t, b, toySpec(5, 1))
	if x.State != experiment.Succeeded {
		t.Fatalf("two failures of five: %s (%s)", x.State, x.Message)
	}
	if x.Trials[3].State != experiment.TrialFailed || !strings.Contains(x.Trials[3].Message, "x is too large") {
		t.Errorf("trial 3: %+v", x.Trials[3])
	}
	b = &trialBackend{failAbove: 0.5} // only trial 0 succeeds
	x = runToy(t, b, toySpec(8, 1))
	if x.State != experiment.Failed || !strings.Contains(x.Message, "most trials failed (5 of 8)") {
		t.Fatalf("got %s (%s); want FAILED once 5 of 8 failed", x.State, x.Message)
	}
	if len(x.Trials) != 6 {
		t.Errorf("%d trials started; want none after the fifth failure", len(x.Trials))
	}
}
