package storetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	"github.com/tauro-exec/tauro-exec/internal/engine/store"
)

// watchInBackground ranges over a watcher on another goroutine; wait
// returns what it saw once the stream ends.
func watchInBackground(w *store.Watcher) (wait func() []run.Event) {
	done := make(chan []run.Event, 1)
	go func() { done <- collect(w) }()
	return func() []run.Event {
		select {
		case evs := <-done:
			return evs
		case <-time.After(30 * time.Second):
			panic("watcher did not end")
		}
	}
}

func testWatch_ReplaysStoredEventsThenStreamsLiveOnesAndEndsAfterTheTerminalEvent(t *testing.T, f Factory) {
	s, _ := f.open(t)
	Create(t, s, NewRun("r", "p", "a"))
	AppendOK(t, s, "r", RunState(run.Running, ""), NodeState("a", run.NodeRunning, 1))

	w, err := s.Watch(context.Background(), "r", 0)
	if err != nil {
		t.Fatal(err)
	}
	wait := watchInBackground(w)
	for i := range 10 {
		AppendOK(t, s, "r", Message("a", fmt.Sprint(i)))
	}
	AppendOK(t, s, "r", NodeState("a", run.NodeSucceeded, 1), RunState(run.Succeeded, ""))

	evs := wait()
	CheckSequences(t, evs, 1, 15)
	if !evs[len(evs)-1].Terminal() || w.Err() != nil || w.Last() != 15 {
		t.Errorf("stream ended with %+v, err %v, last %d", evs[len(evs)-1], w.Err(), w.Last())
	}
	if evs[5].Message != "2" || evs[5].RunID != "r" || evs[5].Time.IsZero() {
		t.Errorf("event 6 = %+v", evs[5])
	}
}

func testWatch_ResumesAfterTheGivenSequence(t *testing.T, f Factory) {
	s, _ := f.open(t)
	Create(t, s, NewRun("r", "p", "a"))
	for i := range 9 {
		AppendOK(t, s, "r", Message("a", fmt.Sprint(i)))
	}
	AppendOK(t, s, "r", RunState(run.Cancelled, ""))
	for _, after := range []int64{0, 1, 5, 9, 10} {
		w, err := s.Watch(context.Background(), "r", after)
		if err != nil {
			t.Fatal(err)
		}
		evs := collect(w)
		CheckSequences(t, evs, after+1, 11)
		if w.Err() != nil {
			t.Errorf("after %d: err %v", after, w.Err())
		}
	}
}

func testWatch_OfAnEndedRunWithNothingLeftEndsAtOnce(t *testing.T, f Factory) {
	s, _ := f.open(t)
	Create(t, s, NewRun("r", "p", "a"))
	AppendOK(t, s, "r", RunState(run.Failed, "x"))
	w, err := s.Watch(context.Background(), "r", 2)
	if err != nil {
		t.Fatal(err)
	}
	if evs := collect(w); len(evs) != 0 || w.Err() != nil {
		t.Errorf("got %v, %v; want nothing and no error", evs, w.Err())
	}
}

func testWatch_RefusesUnknownRunsAndSequencesItNeverGave(t *testing.T, f Factory) {
	s, _ := f.open(t)
	Create(t, s, NewRun("r", "p", "a"))
	if _, err := s.Watch(context.Background(), "nope", 0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown run: %v", err)
	}
	if _, err := s.Watch(context.Background(), "r", -1); !errors.Is(err, store.ErrInvalidArgument) {
		t.Errorf("negative after: %v", err)
	}
	if _, err := s.Watch(context.Background(), "r", 2); !errors.Is(err, store.ErrInvalidArgument) {
		t.Errorf("after beyond the last event: %v", err)
	}
}

func testWatch_EndsWithTheContextsError(t *testing.T, f Factory) {
	s, _ := f.open(t)
	Create(t, s, NewRun("r", "p", "a"))
	ctx, cancel := context.WithCancel(context.Background())
	w, err := s.Watch(ctx, "r", 0)
	if err != nil {
		t.Fatal(err)
	}
	seen := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range w.Events() {
			close(seen)
		}
	}()
	<-seen
	if n := s.Watchers(); n != 1 {
		t.Errorf("Watchers() = %d while one watcher streams; want 1", n)
	}
	cancel()
	<-done
	if !errors.Is(w.Err(), context.Canceled) {
		t.Errorf("err = %v; want context.Canceled", w.Err())
	}
	if n := s.Watchers(); n != 0 {
		t.Errorf("Watchers() = %d once the only watcher ended; want 0", n)
	}
}

func testWatch_EndsWithErrClosedWhenTheStoreCloses(t *testing.T, f Factory) {
	s, _ := f.open(t)
	Create(t, s, NewRun("r", "p", "a"))
	w, err := s.Watch(context.Background(), "r", 1)
	if err != nil {
		t.Fatal(err)
	}
	wait := watchInBackground(w)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wait()
	if !errors.Is(w.Err(), store.ErrClosed) {
		t.Errorf("err = %v; want ErrClosed", w.Err())
	}
}

func testWatch_RangingAgainAfterABreakResumesWithoutGapOrDuplicate(t *testing.T, f Factory) {
	s, _ := f.open(t)
	Create(t, s, NewRun("r", "p", "a"))
	for i := range 5 {
		AppendOK(t, s, "r", Message("a", fmt.Sprint(i)))
	}
	w, err := s.Watch(context.Background(), "r", 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []run.Event
	for ev := range w.Events() {
		got = append(got, ev)
		if len(got) == 3 {
			break
		}
	}
	AppendOK(t, s, "r", RunState(run.Cancelled, ""))
	got = append(got, collect(w)...)
	CheckSequences(t, got, 1, 7)
}

func testWatch_ReplayReadsThroughAFailureIntoTheRepairThatFollowed(t *testing.T, f Factory) {
	s, _ := f.open(t)
	Create(t, s, NewRun("r", "p", "a"))
	AppendOK(t, s, "r", RunState(run.Running, ""), NodeState("a", run.NodeRunning, 1), NodeState("a", run.NodeFailed, 1), RunState(run.Failed, "a failed"))

	live, err := s.Watch(context.Background(), "r", 5)
	if err != nil {
		t.Fatal(err)
	}
	liveEvents := collect(live) // the run has ended: the live watcher ends at once
	if _, _, err := s.PrepareRepair(context.Background(), "r", []string{"a"}, "", ""); err != nil {
		t.Fatal(err)
	}
	AppendOK(t, s, "r", RunState(run.Running, ""), NodeState("a", run.NodeRunning, 2), NodeState("a", run.NodeSucceeded, 2), RunState(run.Succeeded, ""))

	w, err := s.Watch(context.Background(), "r", 0)
	if err != nil {
		t.Fatal(err)
	}
	evs := collect(w)
	CheckSequences(t, evs, 1, 11)
	if len(liveEvents) != 0 || live.Err() != nil {
		t.Errorf("watching an ended run: %v, %v", liveEvents, live.Err())
	}
}

func testWatch_HammerEveryWatcherSeesExactlyItsSuffix(t *testing.T, f Factory) {
	for _, buffer := range []int{256, 4} {
		t.Run(fmt.Sprintf("buffer %d", buffer), func(t *testing.T) { hammer(t, f, buffer) })
	}
}

// hammer has one writer commit 5,000 events in batches of random size
// while watchers attach at random moments with random after values. Each
// must see exactly after+1..5000, in order, and end cleanly. With a tiny
// buffer most watchers overflow and fall back to the database on the way.
func hammer(t *testing.T, f Factory, buffer int) {
	const (
		total     = 5000
		watchers  = 48
		milestone = 100
	)
	s, _ := f.open(t, WithWatchBuffer(buffer))
	Create(t, s, NewRun("r", "p", "a"))

	// reached[k] is closed once k*milestone events are committed, so
	// watchers attach at random points of the write without polling.
	var committed atomic.Int64
	committed.Store(1)
	reached := make([]chan struct{}, total/milestone+1)
	for i := range reached {
		reached[i] = make(chan struct{})
	}
	close(reached[0])
	closedUpTo := 0
	progress := func(seq int64) {
		committed.Store(seq)
		for closedUpTo+1 < len(reached) && int64(closedUpTo+1)*milestone <= seq {
			closedUpTo++
			close(reached[closedUpTo])
		}
	}

	var fallbacks atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		rng := rand.New(rand.NewPCG(1, 2))
		progress(AppendOK(t, s, "r", RunState(run.Running, ""))[0].Sequence)
		for committed.Load() < total-1 {
			n := min(1+rng.IntN(8), int(total-1-committed.Load()))
			batch := make([]run.Event, n)
			for i := range batch {
				batch[i] = Message("a", "tick")
			}
			out, err := s.Append(context.Background(), "r", batch...)
			if err != nil {
				t.Error(err)
				return
			}
			progress(out[len(out)-1].Sequence)
		}
		out, err := s.Append(context.Background(), "r", RunState(run.Succeeded, ""))
		if err != nil {
			t.Error(err)
			return
		}
		progress(out[0].Sequence)
	})
	for i := range watchers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			<-reached[rng.IntN(len(reached))]
			after := rng.Int64N(committed.Load() + 1)
			w, err := s.Watch(context.Background(), "r", after)
			if err != nil {
				t.Errorf("watcher %d: %v", i, err)
				return
			}
			slow := i%3 == 0
			next := after + 1
			for ev := range w.Events() {
				if ev.Sequence != next {
					t.Errorf("watcher %d (after %d): got sequence %d, want %d", i, after, ev.Sequence, next)
					return
				}
				next++
				if slow && rng.IntN(4) == 0 {
					for range 20 {
						runtime.Gosched()
					}
				}
			}
			if w.Err() != nil || next != total+1 {
				t.Errorf("watcher %d (after %d): ended at %d with %v; want %d and no error", i, after, next-1, w.Err(), total)
			}
			fallbacks.Add(int64(w.Fallbacks()))
		})
	}
	wg.Wait()
	t.Logf("buffer %d: %d fallbacks to the database across %d watchers", buffer, fallbacks.Load(), watchers)
	if buffer < 16 && fallbacks.Load() == 0 {
		t.Error("no watcher overflowed its tiny buffer: the fallback path went untested")
	}
}

func testWatch_AWatcherThatStopsReadingDoesNotBlockAppend(t *testing.T, f Factory) {
	s, _ := f.open(t, WithWatchBuffer(16))
	Create(t, s, NewRun("r", "p", "a"))
	w, err := s.Watch(context.Background(), "r", 0)
	if err != nil {
		t.Fatal(err)
	}
	first, release := make(chan struct{}), make(chan struct{})
	var got []run.Event
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range w.Events() {
			got = append(got, ev)
			if len(got) == 1 {
				close(first)
				<-release // stuck, as behind a client that stopped reading
			}
		}
	}()
	<-first

	const n = 2000
	appended := make(chan error, 1)
	start := time.Now()
	var slowest time.Duration
	go func() {
		for i := range n {
			t0 := time.Now()
			if _, err := s.Append(context.Background(), "r", Message("a", fmt.Sprint(i))); err != nil {
				appended <- err
				return
			}
			slowest = max(slowest, time.Since(t0))
		}
		_, err := s.Append(context.Background(), "r", RunState(run.Cancelled, ""))
		appended <- err
	}()
	select {
	case err := <-appended:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Append is blocked behind a watcher that does not read")
	}
	t.Logf("%d appends beside a stuck watcher took %v, the slowest %v", n+1, time.Since(start), slowest)

	close(release)
	<-done
	CheckSequences(t, got, 1, n+2)
	if w.Err() != nil || w.Fallbacks() == 0 {
		t.Errorf("err %v, fallbacks %d; want no error and at least one fallback", w.Err(), w.Fallbacks())
	}
}

func testEvents_PagesThroughTheLog(t *testing.T, f Factory) {
	s, _ := f.open(t)
	Create(t, s, NewRun("r", "p", "a"))
	for range 9 {
		AppendOK(t, s, "r", Message("a", "x"))
	}
	evs, err := s.Events(context.Background(), "r", 3, 4)
	if err != nil {
		t.Fatal(err)
	}
	CheckSequences(t, evs, 4, 7)
	if _, err := s.Events(context.Background(), "nope", 0, 0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown run: %v", err)
	}
	if evs, err := s.Events(context.Background(), "r", 10, 0); err != nil || len(evs) != 0 {
		t.Errorf("past the end: %v, %v", evs, err)
	}
}
