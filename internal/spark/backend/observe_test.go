package backend_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine"
	"github.com/tauro-exec/tauro-exec/internal/engine/observe"
	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	"github.com/tauro-exec/tauro-exec/internal/spark/server/sparktest"
	"github.com/tauro-exec/tauro-exec/internal/store/sqlite"
)

// recorder is an observe.Observer that writes down what it is told, as
// lines, and the Spark operations each attempt sent.
type recorder struct {
	mu    sync.Mutex
	lines []string
	ops   map[string]int // "node#attempt" -> operations noted
}

type tagKey struct{}

func (r *recorder) add(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, fmt.Sprintf(format, args...))
}

func (r *recorder) RunQueued(ctx context.Context, x observe.Run) context.Context {
	r.add("queued %s", x.ID)
	return context.WithValue(context.Background(), tagKey{}, x.ID)
}

func (r *recorder) RunStarted(ctx context.Context, x observe.Run) {
	r.add("started %s (ctx of %v)", x.ID, ctx.Value(tagKey{}))
}

func (r *recorder) RunEnded(ctx context.Context, x observe.Run, end observe.End) {
	r.add("ended %s %s (ctx of %v)", x.ID, end.State, ctx.Value(tagKey{}))
}

func (r *recorder) AttemptStarted(ctx context.Context, a observe.Attempt) context.Context {
	r.add("attempt %s %s#%d (ctx of %v)", a.Run.ID, a.Node, a.Attempt, ctx.Value(tagKey{}))
	key := fmt.Sprintf("%s#%d", a.Node, a.Attempt)
	return observe.WithSparkOperations(ctx, func(string) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.ops[key]++
	})
}

func (r *recorder) AttemptEnded(ctx context.Context, a observe.Attempt, end observe.AttemptEnd) {
	r.add("attempt ended %s %s#%d %s", a.Run.ID, a.Node, a.Attempt, end.State)
	if a.Node == "nap" && end.Duration < time.Second {
		r.add("attempt %s %s#%d lasted %s, less than its 1s timeout", a.Run.ID, a.Node, a.Attempt, end.Duration)
	}
}

func (r *recorder) seen() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.lines)
}

func TestEngine_TellsTheObserverEveryExecutionAndAttemptWithItsEnd(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"settings_yml.json": settings,
		"global.yaml":       "output_path: out\nstart_date: \"2025-01-01\"\nend_date: \"2025-01-02\"\nmax_retries: 1\nretry_delay: 0.1\n",
		"pipelines.yaml":    "p: {nodes: [nap]}\nq: {nodes: [long]}\n",
		"nodes.yaml": "nap: {sql: \"SELECT reflect('java.lang.Thread', 'sleep', CAST(30000 AS BIGINT)) AS slept\", timeout_seconds: 1, output: [o.t.nap]}\n" +
			"long: {sql: \"SELECT reflect('java.lang.Thread', 'sleep', CAST(30000 AS BIGINT)) AS slept\", output: [o.t.long]}\n",
		"input.yaml":  "{}\n",
		"output.yaml": "o.t.nap: {format: parquet}\no.t.long: {format: parquet}\n",
	})
	remote := sparktest.Remote(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	st, err := sqlite.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	log := slog.New(slog.DiscardHandler)
	rec := &recorder{ops: map[string]int{}}
	eng := engine.New(engine.Options{ProjectDir: dir, Env: "base", Store: st, Logger: log, Observer: rec,
		Backend: testBackend(remote, log)})

	// a times out twice (a retry between); b waits behind it (same
	// pipeline) and is cancelled before it starts.
	a, err := eng.Execute(ctx, "", run.Params{Pipeline: "p"}, false)
	if err != nil {
		t.Fatal(err)
	}
	b, err := eng.Execute(ctx, "", run.Params{Pipeline: "p"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if queued, executing := eng.Load(); queued != 1 || executing != 1 {
		t.Errorf("Load() = %d queued, %d executing; want 1 and 1", queued, executing)
	}
	if _, err := eng.Cancel(ctx, b.ID, "not needed"); err != nil {
		t.Fatal(err)
	}
	w, err := eng.Watch(ctx, a.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	for range w.Events() {
	}
	if ra, _ := eng.Get(ctx, a.ID); ra.State != run.Failed {
		t.Fatalf("run a %s: %s", ra.State, ra.Message)
	}

	// c is interrupted by Close and d, queued behind it, is left queued.
	c, err := eng.Execute(ctx, "", run.Params{Pipeline: "q"}, false)
	if err != nil {
		t.Fatal(err)
	}
	d, err := eng.Execute(ctx, "", run.Params{Pipeline: "q"}, false)
	if err != nil {
		t.Fatal(err)
	}
	for !slices.Contains(rec.seen(), fmt.Sprintf("attempt %s long#1 (ctx of %s)", c.ID, c.ID)) {
		select {
		case <-ctx.Done():
			t.Fatalf("run c never started its node: %q", rec.seen())
		case <-time.After(20 * time.Millisecond):
		}
	}
	if err := eng.Close(ctx); err != nil {
		t.Fatal(err)
	}

	// Executions overlap, so each one's calls are compared in order.
	want := map[string][]string{
		a.ID: {
			"queued " + a.ID,
			"started " + a.ID + " (ctx of " + a.ID + ")",
			"attempt " + a.ID + " nap#1 (ctx of " + a.ID + ")",
			"attempt ended " + a.ID + " nap#1 RETRYING",
			"attempt " + a.ID + " nap#2 (ctx of " + a.ID + ")",
			"attempt ended " + a.ID + " nap#2 TIMED_OUT",
			"ended " + a.ID + " FAILED (ctx of " + a.ID + ")",
		},
		b.ID: {
			"queued " + b.ID,
			"ended " + b.ID + " CANCELLED (ctx of " + b.ID + ")",
		},
		c.ID: {
			"queued " + c.ID,
			"started " + c.ID + " (ctx of " + c.ID + ")",
			"attempt " + c.ID + " long#1 (ctx of " + c.ID + ")",
			"attempt ended " + c.ID + " long#1 CANCELLED",
			"ended " + c.ID + " INTERRUPTED (ctx of " + c.ID + ")",
		},
		d.ID: {
			"queued " + d.ID,
			"ended " + d.ID + " QUEUED (ctx of " + d.ID + ")",
		},
	}
	got := map[string][]string{}
	for _, line := range rec.seen() {
		id := "?"
		for run := range want {
			if strings.Contains(line, run) {
				id = run
			}
		}
		got[id] = append(got[id], line)
	}
	for id, lines := range want {
		if !slices.Equal(got[id], lines) {
			t.Errorf("for run %s the observer saw\n  %s\nwant\n  %s", id, joinLines(got[id]), joinLines(lines))
		}
	}
	if len(got["?"]) > 0 {
		t.Errorf("the observer saw calls about no run: %q", got["?"])
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, attempt := range []string{"nap#1", "nap#2", "long#1"} {
		if rec.ops[attempt] == 0 {
			t.Errorf("attempt %s noted no Spark operation (%v)", attempt, rec.ops)
		}
	}
}

func joinLines(lines []string) string {
	out := ""
	for i, l := range lines {
		if i > 0 {
			out += "\n  "
		}
		out += l
	}
	return out
}
