package connect

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
)

// The listener bus carries the progress reports of the session's queries,
// the same reports recentProgress keeps, and ends when its context does.
func TestListenQueries_CarriesEachBatchsProgressAndStopsWithItsContext(t *testing.T) {
	s := connect(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	listenCtx, stopListening := context.WithCancel(ctx)
	added := make(chan struct{})
	var (
		mu     sync.Mutex
		events []QueryEvent
	)
	done := make(chan error, 1)
	go func() {
		done <- s.ListenQueries(listenCtx, func() { close(added) }, func(e QueryEvent) {
			mu.Lock()
			defer mu.Unlock()
			events = append(events, e)
		})
	}()
	select {
	case <-added:
	case err := <-done:
		t.Fatalf("ListenQueries ended before the listener was added: %v", err)
	}

	if err := s.RegisterStream(ctx, StreamInput{Name: "ticks", Format: "rate", Options: map[string]string{"rowsPerSecond": "20"}}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	q, err := s.StartStream(ctx, StreamStart{View: "ticks", Format: "parquet", Path: filepath.Join(dir, "out"),
		Checkpoint: filepath.Join(dir, "chk"), Trigger: TriggerProcessingTime, Interval: 200 * time.Millisecond, OutputMode: "append"})
	if err != nil {
		t.Fatal(err)
	}
	progressed := func() int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, e := range events {
			if e.Kind == QueryProgressed && e.Query == q {
				n++
			}
		}
		return n
	}
	for deadline := time.Now().Add(90 * time.Second); progressed() < 3; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d progress events of %v in 90 s", progressed(), q)
		}
	}
	if err := s.StopQuery(ctx, q); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		mu.Lock()
		last := events[len(events)-1]
		mu.Unlock()
		if last.Kind == QueryTerminated && last.Query == q {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no termination event after the stop; the last was %+v", last)
		}
	}

	mu.Lock()
	for _, e := range events {
		if e.Kind != QueryProgressed {
			continue
		}
		var p struct {
			BatchID *int64 `json:"batchId"`
			ID      string `json:"id"`
		}
		if err := json.Unmarshal([]byte(e.Progress), &p); err != nil || p.BatchID == nil || p.ID != q.ID {
			t.Errorf("progress %q: not a progress report of %s (%v)", e.Progress, q.ID, err)
		}
	}
	mu.Unlock()

	stopListening()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("ListenQueries after its context ended: %v", err)
		}
	case <-time.After(removeWait + 5*time.Second):
		t.Fatal("ListenQueries did not return once its context ended")
	}
}

// A listener left on the server by a stream this process no longer reads
// (one that dropped without the server noticing) would leave the next add
// unanswered: ListenQueries removes it and adds its own.
func TestListenQueries_ReplacesAListenerLeftBehind(t *testing.T) {
	s := connect(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stale, err := s.openStream(ctx, executePlanRequest(s.sessionID(), s.remote.user, newUUID(), listenerBus(true)))
	if err != nil {
		t.Fatal(err)
	}
	if confirmed, err := readListenerEvents(&firstOnly{ClientStream: stale}, func() {}, func(QueryEvent) {}); !confirmed || err != nil {
		t.Fatalf("the first listener: confirmed %v, %v", confirmed, err)
	}

	listenCtx, stopListening := context.WithCancel(ctx)
	added := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- s.ListenQueries(listenCtx, func() { close(added) }, func(QueryEvent) {}) }()
	select {
	case <-added:
	case err := <-done:
		t.Fatalf("ListenQueries with a listener left behind: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("no listener added in 30 s")
	}
	stopListening()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("ListenQueries after its context ended: %v", err)
	}
}

// firstOnly ends a stream after its first response, leaving the call open.
type firstOnly struct {
	grpc.ClientStream
	read bool
}

func (f *firstOnly) RecvMsg(m any) error {
	if f.read {
		return io.EOF
	}
	f.read = true
	return f.ClientStream.RecvMsg(m)
}
