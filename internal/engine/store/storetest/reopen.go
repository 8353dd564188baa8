package storetest

import (
	"context"
	"fmt"
	"reflect"
	"testing"

	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	"github.com/tauro-exec/tauro-exec/internal/engine/store"
)

func testReopen_AfterCloseKeepsEverything(t *testing.T, f Factory) {
	ctx := context.Background()
	s, dir := f.open(t)
	interruptedFixture(t, s)
	want := map[string]run.Run{}
	wantEvents := map[string][]run.Event{}
	for _, id := range []string{"r1", "r2", "r3"} {
		want[id] = Get(t, s, id)
		wantEvents[id], _ = s.Events(ctx, id, 0, 0)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != store.ErrClosed {
		t.Errorf("second Close = %v; want ErrClosed", err)
	}
	if _, err := s.GetRun(ctx, "r1"); err != store.ErrClosed {
		t.Errorf("GetRun after Close = %v; want ErrClosed", err)
	}

	s2, err := f.reopen(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	for id, w := range want {
		if got := Get(t, s2, id); !reflect.DeepEqual(got, w) {
			t.Errorf("run %s after reopening:\n got %+v\nwant %+v", id, got, w)
		}
		if got, _ := s2.Events(ctx, id, 0, 0); !reflect.DeepEqual(got, wantEvents[id]) {
			t.Errorf("events of %s changed after reopening", id)
		}
	}
	// Sequences continue where they stopped.
	if out := AppendOK(t, s2, "r2", Message("c", "again")); out[0].Sequence != want["r2"].LastSequence+1 {
		t.Errorf("next sequence = %d; want %d", out[0].Sequence, want["r2"].LastSequence+1)
	}
}

func testReopen_WithoutCloseSeesEveryCommittedEvent(t *testing.T, f Factory) {
	ctx := context.Background()
	s, dir := f.open(t)
	t.Cleanup(func() { s.Close() })
	Create(t, s, NewRun("r", "p", "a"))
	for i := range 50 {
		AppendOK(t, s, "r", Message("a", fmt.Sprint(i)))
	}
	// No Close: a second store opens the file as a restarted daemon would.
	s2, err := f.reopen(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s2.Close() })
	evs, err := s2.Events(ctx, "r", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	CheckSequences(t, evs, 1, 51)
}
