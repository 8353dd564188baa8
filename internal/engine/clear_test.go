package engine

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/observe"
	"github.com/tauro-exec/tauro-exec/internal/engine/plan"
	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	"github.com/tauro-exec/tauro-exec/internal/store/sqlite"
)

// okBackend's nodes succeed at once.
type okBackend struct{}

func (okBackend) Ready() error                                             { return nil }
func (okBackend) OpenRun(context.Context, RunContext) (RunExecutor, error) { return okRun{}, nil }

type okRun struct{}

func (okRun) RunNode(context.Context, *plan.Node, int, func(run.Event)) error { return nil }
func (okRun) Close(context.Context) error                                     { return nil }

// heldEnd holds each RunEnded call until the test lets it go: the run's
// end is recorded, its goroutine has not returned.
type heldEnd struct {
	observe.Nop
	ended chan string
	go_   chan struct{}
}

func (h heldEnd) RunEnded(_ context.Context, r observe.Run, _ observe.End) {
	h.ended <- r.ID
	<-h.go_
}

// A watcher that has seen a streaming run end may at once ask for a full
// refresh of what it wrote: the ended run no longer counts as writing
// there, even while its goroutine finishes.
func TestClear_AFullRefreshIsAcceptedAsSoonAsTheRunWritingThereIsSeenToEnd(t *testing.T) {
	dir := t.TempDir()
	for name, text := range map[string]string{
		"settings_yml.json": `{"base_path": ".", "env_config": {"base": {"global_settings_path": "g.yaml", "pipelines_config_path": "p.yaml",
			"nodes_config_path": "n.yaml", "input_config_path": "i.yaml", "output_config_path": "o.yaml"}}}`,
		"g.yaml": "output_path: out\nmax_retries: 0\n",
		"p.yaml": "s: {type: streaming, nodes: [land]}\n",
		"n.yaml": "land: {sql: 'SELECT id FROM orders', input: [orders], output: [s.t.landed], streaming: {trigger: {type: available_now}}}\n",
		"i.yaml": "orders: {format: file_stream, path: in, options: {format: csv}, schema: 'id INT'}\n",
		"o.yaml": "s.t.landed: {format: delta}\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	st, err := sqlite.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	obs := heldEnd{ended: make(chan string, 1), go_: make(chan struct{})}
	e := New(Options{ProjectDir: dir, Env: "dev", Store: st, Backend: okBackend{}, Observer: obs, MaxConcurrentRuns: 2,
		Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(func() { _ = e.Close(context.Background()) })
	released := false
	release := func() {
		if !released {
			released = true
			close(obs.go_)
		}
	}
	t.Cleanup(release)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	first, err := e.Execute(ctx, "", run.Params{Pipeline: "s"}, false)
	if err != nil {
		t.Fatal(err)
	}
	w, err := e.Watch(ctx, first.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	for range w.Events() {
	}
	if r, _ := e.Get(ctx, first.ID); r.State != run.Succeeded {
		t.Fatalf("the first run ended %s: %s", r.State, r.Message)
	}
	select {
	case <-obs.ended:
	case <-ctx.Done():
		t.Fatal("the first run's end was never observed")
	}
	// The first run's goroutine is held after its end is recorded.
	second, err := e.Execute(ctx, "", run.Params{Pipeline: "s", FullRefresh: []string{"land"}}, false)
	if err != nil {
		t.Fatalf("a full refresh asked for after the run writing there was seen to end was refused: %v", err)
	}
	release()
	awaitState(t, e, second.ID, run.Succeeded)
}
