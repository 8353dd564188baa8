package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	"github.com/tauro-exec/tauro-exec/internal/engine/store"
	"github.com/tauro-exec/tauro-exec/internal/engine/store/storetest"
	"github.com/tauro-exec/tauro-exec/internal/store/postgres"
	"github.com/tauro-exec/tauro-exec/internal/store/postgres/pgtest"
	"github.com/tauro-exec/tauro-exec/internal/store/sqlstore"
)

// replicas opens n stores on one schema, as n execd replicas on one
// database.
func replicas(t testing.TB, n int) []*sqlstore.Store {
	t.Helper()
	url, pw := pgtest.Schema(t)
	out := make([]*sqlstore.Store, n)
	for i := range out {
		s, err := postgres.Open(context.Background(), postgres.Config{URL: url, PasswordFile: pw, Replica: fmt.Sprintf("replica-%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		out[i] = s
	}
	return out
}

// Two replicas appending to one run at once: PostgreSQL's row lock orders
// them, so the run's sequences stay gapless and every event is applied.
func TestReplicas_AppendsToOneRunFromTwoReplicasAreGapless(t *testing.T) {
	rs := replicas(t, 2)
	storetest.Create(t, rs[0], storetest.NewRun("r", "p", "a"))
	storetest.AppendOK(t, rs[0], "r", storetest.RunState(run.Running, ""), storetest.NodeState("a", run.NodeRunning, 1))
	var wg sync.WaitGroup
	for i, s := range rs {
		wg.Go(func() {
			for j := range 100 {
				storetest.AppendOK(t, s, "r", storetest.Metric("a", fmt.Sprintf("m%d_%d", i, j), 1))
			}
		})
	}
	wg.Wait()
	evs, err := rs[1].Events(context.Background(), "r", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	storetest.CheckSequences(t, evs, 1, 203)
	if got := len(storetest.Get(t, rs[0], "r").Nodes[0].Attempts[0].Metrics); got != 200 {
		t.Errorf("the attempt holds %d metrics; want 200", got)
	}
}

// A watcher on one replica sees every event another replica commits,
// live, exactly once and in order, and ends at the run's end.
func TestReplicas_AWatcherOnOneReplicaSeesEveryEventCommittedOnAnother(t *testing.T) {
	rs := replicas(t, 2)
	writer, reader := rs[0], rs[1]
	storetest.Create(t, writer, storetest.NewRun("r", "p", "a"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w, err := reader.Watch(ctx, "r", 0)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan []run.Event)
	go func() {
		var evs []run.Event
		for ev := range w.Events() {
			evs = append(evs, ev)
		}
		got <- evs
	}()
	storetest.AppendOK(t, writer, "r", storetest.RunState(run.Running, ""), storetest.NodeState("a", run.NodeRunning, 1))
	for i := range 300 {
		storetest.AppendOK(t, writer, "r", storetest.Message("a", fmt.Sprint(i)))
	}
	storetest.AppendOK(t, writer, "r", storetest.NodeState("a", run.NodeSucceeded, 1), storetest.RunState(run.Succeeded, ""))
	evs := <-got
	if w.Err() != nil {
		t.Fatalf("the watch ended with %v", w.Err())
	}
	storetest.CheckSequences(t, evs, 1, 305)
}

// An experiment's watcher on another replica is woken by its events too.
func TestReplicas_ExperimentEventsWakeWatchersOnAnotherReplica(t *testing.T) {
	rs := replicas(t, 2)
	ctx := context.Background()
	x := storetest.NewExperiment("x")
	if _, _, err := rs[0].CreateExperiment(ctx, x); err != nil {
		t.Fatal(err)
	}
	_, _, next, err := rs[1].ExperimentEvents(ctx, "x", 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	storetest.StartExperiment(t, rs[0], "x")
	select {
	case <-next:
	case <-time.After(10 * time.Second):
		t.Fatal("the other replica's watcher was not woken")
	}
}

// A password in the URL would show in process lists and logs: refused,
// and the error does not repeat it. A wrong password's error does not
// hold it either.
func TestConfig_ThePasswordIsNeverInTheURLNorInAnError(t *testing.T) {
	_, err := postgres.ConnConfig(postgres.Config{URL: "postgres://u:s3cret-pw@127.0.0.1:1/db"})
	if !errors.Is(err, store.ErrInvalidArgument) || strings.Contains(err.Error(), "s3cret-pw") {
		t.Errorf("a URL with a password: %v; want ErrInvalidArgument without the password", err)
	}
	_, err = postgres.ConnConfig(postgres.Config{URL: "postgres://u@127.0.0.1:1/db?password=s3cret-pw"})
	if !errors.Is(err, store.ErrInvalidArgument) || strings.Contains(err.Error(), "s3cret-pw") {
		t.Errorf("a URL with a password parameter: %v", err)
	}
	url, _ := pgtest.Schema(t)
	wrong := t.TempDir() + "/pw"
	if err := os.WriteFile(wrong, []byte("not-the-password-42\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err = postgres.Open(ctx, postgres.Config{URL: url, PasswordFile: wrong})
	if err == nil || strings.Contains(err.Error(), "not-the-password-42") {
		t.Errorf("a wrong password: %v; want an error without the password", err)
	}
	if !strings.Contains(err.Error(), "PostgreSQL") {
		t.Errorf("the error does not say what it was connecting to: %v", err)
	}
}

// BenchmarkCrossReplicaWatch: from an event committed on one replica to a
// watcher on another (the commit, the NOTIFY, the watcher's read of the
// table), one event at a time.
func BenchmarkCrossReplicaWatch(b *testing.B) {
	rs := replicas(b, 2)
	storetest.Create(b, rs[0], storetest.NewRun("r", "p", "a"))
	storetest.AppendOK(b, rs[0], "r", storetest.RunState(run.Running, ""), storetest.NodeState("a", run.NodeRunning, 1))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w, err := rs[1].Watch(ctx, "r", 3)
	if err != nil {
		b.Fatal(err)
	}
	received := make(chan time.Time, 1)
	go func() {
		for range w.Events() {
			received <- time.Now()
		}
	}()
	ev := storetest.Message("a", "a line of output from the node")
	var lat []time.Duration
	for b.Loop() {
		if _, err := rs[0].Append(ctx, "r", ev); err != nil {
			b.Fatal(err)
		}
		committed := time.Now()
		lat = append(lat, (<-received).Sub(committed))
	}
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[int(p*float64(len(lat)-1))]) / float64(time.Millisecond)
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(pct(1), "max-ms")
}

// Stores in other schemas of the database (another deployment, a parallel
// test) announce on their own channel: an experiment of the same id
// committed there wakes no watcher here.
func TestReplicas_AnotherSchemasCommitsWakeNoWatcherHere(t *testing.T) {
	here := replicas(t, 1)[0]
	ctx := context.Background()
	url, pw := pgtest.Schema(t)
	there, err := postgres.Open(ctx, postgres.Config{URL: url, PasswordFile: pw, Replica: "elsewhere"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { there.Close() })
	for _, s := range []*sqlstore.Store{here, there} {
		if _, _, err := s.CreateExperiment(ctx, storetest.NewExperiment("x")); err != nil {
			t.Fatal(err)
		}
	}
	_, _, next, err := here.ExperimentEvents(ctx, "x", 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	storetest.StartExperiment(t, there, "x")
	select {
	case <-next:
		t.Fatal("a commit in another schema woke a watcher here")
	case <-time.After(time.Second):
	}
}
