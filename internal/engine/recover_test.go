package engine

import (
	"context"
	"errors"
	"log/slog"
	"testing"

	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	"github.com/tauro-exec/tauro-exec/internal/store/sqlite"
)

// abandoning is a backend that records what it is asked to abandon.
type abandoning struct {
	Backend
	asked []run.QueryRef
	err   error
}

func (b *abandoning) Abandon(_ context.Context, q run.QueryRef) error {
	b.asked = append(b.asked, q)
	return b.err
}

func TestRecover_EndsTheStreamingQueriesAKilledExecdLeftRunning(t *testing.T) {
	for _, failing := range []bool{false, true} {
		ctx := context.Background()
		dir := t.TempDir()
		st, err := sqlite.Open(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		ref := run.QueryRef{Session: "sess-1", User: "tauro", ID: "q1", RunID: "r1"}
		if _, _, err := st.CreateRun(ctx, run.Run{ID: "r", Params: run.Params{Pipeline: "p"}, Nodes: []run.Node{{Name: "s"}, {Name: "b"}}}); err != nil {
			t.Fatal(err)
		}
		_, err = st.Append(ctx, "r",
			run.Event{Kind: run.RunStateChanged, RunState: run.Running},
			run.Event{Kind: run.NodeStateChanged, Node: "b", NodeState: run.NodeRunning, Attempt: 1},
			run.Event{Kind: run.NodeStateChanged, Node: "s", NodeState: run.NodeRunning, Attempt: 1},
			run.Event{Kind: run.NodeStateChanged, Node: "s", NodeState: run.NodeStreaming, Query: &ref})
		if err != nil {
			t.Fatal(err)
		}
		st.Close() // as a SIGKILL leaves it: the run RUNNING, its query live

		st, err = sqlite.Open(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		b := &abandoning{}
		if failing {
			b.err = errors.New("spark is unreachable")
		}
		e := New(Options{Store: st, Backend: b, Logger: slog.New(slog.DiscardHandler)})
		if err := e.Recover(ctx); err != nil {
			t.Fatalf("Recover (abandon failing %v): %v", failing, err)
		}
		if len(b.asked) != 1 || b.asked[0] != ref {
			t.Errorf("abandoned %+v; want the streaming node's query %+v alone", b.asked, ref)
		}
		if r, _ := st.GetRun(ctx, "r"); r.State != run.Interrupted {
			t.Errorf("run %s after Recover; want INTERRUPTED", r.State)
		}
		st.Close()
	}
}
