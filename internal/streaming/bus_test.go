package streaming

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	sparkconnect "github.com/tauro-exec/tauro-exec/internal/spark/connect"
)

// fakeBus is a session with a listener bus: the test sends events down the
// open stream (send) or drops it (drop). A unit test double; the
// integration tests in stream_test.go use Spark's own bus.
type fakeBus struct {
	*fakeQueries
	feed  chan sparkconnect.QueryEvent
	drops chan struct{}

	mu     sync.Mutex
	opens  int
	isOpen bool
	closed chan struct{} // closed when a stream ends with its context
}

func newFakeBus() *fakeBus {
	return &fakeBus{fakeQueries: &fakeQueries{}, feed: make(chan sparkconnect.QueryEvent), drops: make(chan struct{}), closed: make(chan struct{})}
}

func (b *fakeBus) ListenQueries(ctx context.Context, added func(), each func(sparkconnect.QueryEvent)) error {
	b.mu.Lock()
	b.opens++
	b.isOpen = true
	b.mu.Unlock()
	defer func() { b.mu.Lock(); b.isOpen = false; b.mu.Unlock() }()
	added()
	for {
		select {
		case <-ctx.Done():
			close(b.closed)
			return ctx.Err()
		case <-b.drops:
			return errors.New("connection reset")
		case e := <-b.feed:
			each(e)
		}
	}
}

func (b *fakeBus) open() bool { b.mu.Lock(); defer b.mu.Unlock(); return b.isOpen }

// commit records batch id in the query's recent progress, as Spark does
// when a batch commits, and returns its report.
func (b *fakeBus) commit(id int64) string {
	b.batch(id, 100, "null")
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.reports[len(b.reports)-1]
}

// send sends the progress event of a committed batch's report.
func (b *fakeBus) send(t *testing.T, report string) {
	t.Helper()
	select {
	case b.feed <- sparkconnect.QueryEvent{Kind: sparkconnect.QueryProgressed, Query: sparkconnect.QueryID{ID: "q1", RunID: "r1"}, Progress: report}:
	case <-time.After(5 * time.Second):
		t.Fatal("no stream took the event")
	}
}

// follow runs the fake's query until the test ends. Polling is left to
// the bus's notes: the poll interval outlasts the test.
func (b *fakeBus) follow(t *testing.T, rec *recorder) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, b, sparkconnect.StreamStart{}, Options{Emit: rec.emit, Poll: time.Hour})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	eventually(t, "the listener stream open", b.open)
}

func batchIDs(rec *recorder) string {
	var ids []int64
	for _, p := range rec.progress() {
		ids = append(ids, p.BatchID)
	}
	return fmt.Sprint(ids)
}

func TestBus_EachProgressEventIsReportedOnceInOrder(t *testing.T) {
	b, rec := newFakeBus(), &recorder{}
	b.follow(t, rec)
	r0, r1, r2 := b.commit(0), b.commit(1), b.commit(2)
	for _, r := range []string{r0, r1, r1, r2, r0} { // repeats are reported once
		b.send(t, r)
	}
	eventually(t, "batches 0 to 2", func() bool { return batchIDs(rec) == "[0 1 2]" })
	time.Sleep(20 * time.Millisecond)
	if got := batchIDs(rec); got != "[0 1 2]" {
		t.Errorf("batches %s; want [0 1 2]", got)
	}
}

func TestBus_ALostEventIsRecoveredFromRecentProgressBeforeTheNextBatch(t *testing.T) {
	b, rec := newFakeBus(), &recorder{}
	b.follow(t, rec)
	b.send(t, b.commit(0))
	b.commit(1) // its event is lost
	b.send(t, b.commit(2))
	eventually(t, "batches 0 to 2", func() bool { return batchIDs(rec) == "[0 1 2]" })
}

func TestBus_ADroppedStreamIsReopenedAndTheBatchesMissedMeanwhileReportedOnce(t *testing.T) {
	b, rec := newFakeBus(), &recorder{}
	b.follow(t, rec)
	b.send(t, b.commit(0))
	eventually(t, "batch 0", func() bool { return batchIDs(rec) == "[0]" })
	b.drops <- struct{}{}
	r1, r2 := b.commit(1), b.commit(2) // while no stream is open
	eventually(t, "the stream open again", func() bool { b.mu.Lock(); defer b.mu.Unlock(); return b.opens == 2 && b.isOpen })
	b.send(t, r1) // sent by the new stream too: Spark had not posted them yet
	b.send(t, r2)
	b.send(t, b.commit(3))
	eventually(t, "batches 0 to 3", func() bool { return batchIDs(rec) == "[0 1 2 3]" })
	time.Sleep(20 * time.Millisecond)
	if got := batchIDs(rec); got != "[0 1 2 3]" {
		t.Errorf("batches %s; want [0 1 2 3]", got)
	}
}

func TestBus_NoBatchForMaxIdleIsLaggingWhileTheStreamIsOpen(t *testing.T) {
	b, rec := newFakeBus(), &recorder{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, b, sparkconnect.StreamStart{}, Options{Emit: rec.emit, Poll: 10 * time.Millisecond, Lag: Lag{MaxIdle: 100 * time.Millisecond}})
	}()
	defer func() { cancel(); <-done }()
	eventually(t, "the listener stream open", b.open)
	b.send(t, b.commit(0))
	eventually(t, "LAGGING for no batch", func() bool { return len(rec.lags()) == 1 })
	if lags := rec.lags(); !strings.HasPrefix(lags[0], "LAGGING no micro-batch for") {
		t.Errorf("lag events = %q", lags)
	}
}

func TestBus_ATerminationEventEndsTheNode(t *testing.T) {
	b, rec := newFakeBus(), &recorder{}
	done := make(chan error, 1)
	go func() {
		done <- Run(context.Background(), b, sparkconnect.StreamStart{}, Options{Emit: rec.emit, Poll: time.Hour})
	}()
	eventually(t, "the listener stream open", b.open)
	b.commit(0) // its event comes after the termination's: recovered
	b.feed <- sparkconnect.QueryEvent{Kind: sparkconnect.QueryTerminated, Query: sparkconnect.QueryID{ID: "q1", RunID: "r1"}}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v; want nil for a query that ended without an error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after the termination event")
	}
	if got := batchIDs(rec); got != "[0]" {
		t.Errorf("batches %s; want [0]", got)
	}
}

func TestBus_EventsGoToTheirQueryAndTheStreamEndsWithTheLastFollower(t *testing.T) {
	b := newFakeBus()
	a, c := sparkconnect.QueryID{ID: "a", RunID: "1"}, sparkconnect.QueryID{ID: "c", RunID: "1"}
	inA, releaseA := listen(b, a)
	inC, releaseC := listen(b, c)
	eventually(t, "the listener stream open", b.open)
	for _, q := range []sparkconnect.QueryID{a, c, {ID: "a", RunID: "an earlier run"}, {ID: "nobody's"}, a} {
		b.feed <- sparkconnect.QueryEvent{Kind: sparkconnect.QueryIdle, Query: q}
	}
	// counts tallies the notes an inbox got; the last event may still be
	// on its way when the send returns.
	counts := func(in *inbox) func() string {
		var ups, events int
		return func() string {
			for _, n := range in.take() {
				switch n.kind {
				case noteUp:
					ups++
				case noteEvent:
					events++
				}
			}
			return fmt.Sprintf("%d opens, %d events", ups, events)
		}
	}
	ofA, ofC := counts(inA), counts(inC)
	eventually(t, "query a: 1 opens, 2 events", func() bool { return ofA() == "1 opens, 2 events" })
	eventually(t, "query c: 1 opens, 1 events", func() bool { return ofC() == "1 opens, 1 events" })
	releaseA()
	select {
	case <-b.closed:
		t.Fatal("the stream ended while query c still follows it")
	default:
	}
	releaseC()
	select {
	case <-b.closed:
	default:
		t.Fatal("the stream still open after the last follower left")
	}
	if b.opens != 1 {
		t.Errorf("%d streams opened; want one for the session", b.opens)
	}
}

func TestBus_AServerWithoutTheBusIsPolled(t *testing.T) {
	f, rec := &fakeQueries{}, &recorder{}
	f.batch(0, 100, "null")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, f, sparkconnect.StreamStart{}, Options{Emit: rec.emit, Poll: 10 * time.Millisecond})
	}()
	eventually(t, "batch 0 polled", func() bool { return batchIDs(rec) == "[0]" })
	f.batch(1, 100, "null")
	eventually(t, "batch 1 polled", func() bool { return batchIDs(rec) == "[0 1]" })
	cancel()
	<-done
}

// slowRemoval is a session whose listener takes a while to be removed.
type slowRemoval struct {
	mu       sync.Mutex
	open     int // streams open at once
	mostOpen int
}

func (s *slowRemoval) ListenQueries(ctx context.Context, added func(), _ func(sparkconnect.QueryEvent)) error {
	s.mu.Lock()
	s.open++
	s.mostOpen = max(s.mostOpen, s.open)
	s.mu.Unlock()
	added()
	<-ctx.Done()
	time.Sleep(50 * time.Millisecond)
	s.mu.Lock()
	s.open--
	s.mu.Unlock()
	return ctx.Err()
}

func TestBus_ANewBusOfASessionOpensOnceTheClosingOneHasEnded(t *testing.T) {
	src := &slowRemoval{}
	_, release := listen(src, sparkconnect.QueryID{ID: "a"})
	eventually(t, "the first stream open", func() bool { src.mu.Lock(); defer src.mu.Unlock(); return src.open == 1 })
	released := make(chan struct{})
	go func() { release(); close(released) }()
	eventually(t, "the first bus closing", func() bool { return busOf(src) == nil })
	in, releaseB := listen(src, sparkconnect.QueryID{ID: "b"})
	<-released
	eventually(t, "the second stream open", func() bool {
		for _, n := range in.take() {
			if n.kind == noteUp {
				return true
			}
		}
		return false
	})
	releaseB()
	if src.mostOpen != 1 {
		t.Errorf("%d streams of the session open at once; want one", src.mostOpen)
	}
}
