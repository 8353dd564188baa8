package mirror

import (
	"context"
	"testing"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	"github.com/tauro-exec/tauro-exec/internal/mlops/mlflowtest"
)

func runMessages(t *testing.T, evs []run.Event) []run.Event {
	var out []run.Event
	for _, ev := range evs {
		if ev.Kind == run.RunMessage {
			out = append(out, ev)
		}
	}
	return out
}

// A tracking server down in the middle of a run: the run's events say so
// once, and after execd restarts and the server is back, everything
// arrives once.
func TestMirror_AServerDownWarnsOnceAndEverythingArrivesOnceAfterARestart(t *testing.T) {
	ctx := context.Background()
	mdir, sdir := t.TempDir(), t.TempDir()
	srv := mlflowtest.Own(t, mdir, 0)
	uri, port := srv.URI(), srv.Port()
	s := openStore(t, sdir)
	m := New(Options{Store: s, Replica: "r"})
	id, experiment := "run-"+unique(t)[len(t.Name())+1:], unique(t)
	createRun(t, s, id)
	if err := m.Track(ctx, id, pipeline(uri, experiment)); err != nil {
		t.Fatal(err)
	}
	evs := theRun()
	appendOK(t, s, id, evs[:5]...) // up to train's first attempt
	m.round(ctx)

	if err := srv.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	appendOK(t, s, id, evs[5:10]...)
	m.round(ctx)
	m.round(ctx)
	appendOK(t, s, id, evs[10:]...)
	m.round(ctx)
	stored, err := s.Events(ctx, id, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if msgs := runMessages(t, stored); len(msgs) != 1 || msgs[0].Level != "warning" {
		t.Fatalf("run messages %+v; want one warning", msgs)
	}
	if r, _ := s.GetRun(ctx, id); r.State != run.Failed {
		t.Errorf("run %s; the mirror must not change how it ended", r.State)
	}

	// execd restarts while sends are pending, and the server comes back
	// on the same address with its data.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, sdir)
	// A restarted execd keeps its replica name, so it takes its own
	// claims up at once.
	m = New(Options{Store: s, Replica: "r"})
	mlflowtest.Own(t, mdir, port)
	m.round(ctx)
	c, _ := m.client(uri)
	checkRun(t, c, experiment, id)
	if got, err := s.ClaimMLflow(ctx, "r", time.Minute); err != nil || len(got) != 0 {
		t.Errorf("after the run was sent, ClaimMLflow = %+v, %v; want nothing pending", got, err)
	}
}
