package connect

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/retry"
)

// A query that keeps every core of a local server busy for many minutes:
// range splits into one partition per core.
const longSQL = "SELECT count(*) AS n FROM range(1000000000000)"

// probe runs a small job that needs free cores, on a session of its own.
// While a long job holds the cores it cannot finish.
func probe(t *testing.T, within time.Duration) error {
	t.Helper()
	p := connect(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	df, err := p.spark.Sql(ctx, "SELECT count(*) FROM range(0, 1000000, 1, 2)")
	if err == nil {
		_, err = df.Collect(ctx)
	}
	return err
}

func runLong(ctx context.Context, t *testing.T, s *Session) <-chan error {
	errc := make(chan error, 1)
	out := filepath.Join(t.TempDir(), "long")
	go func() {
		_, err := s.RunSQL(ctx, NodeSpec{Name: "long", SQL: longSQL,
			Outputs: []OutputSpec{{Key: "long", Format: "parquet", Path: out}}}, nil)
		errc <- err
	}()
	return errc
}

func TestRunSQL_CancelStopsTheJobOnTheServerWithin10s(t *testing.T) {
	s := connect(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := runLong(ctx, t, s)

	// The long job runs once a small one can no longer get a core.
	began := time.Now()
	for probe(t, 2*time.Second) == nil {
		if time.Since(began) > time.Minute {
			t.Fatal("the long query did not occupy the server within a minute")
		}
	}
	cancelled := time.Now()
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) || retry.Classify(err) != retry.ClassCancelled {
			t.Errorf("RunSQL after cancel = %v, want context.Canceled", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("RunSQL did not return within 15s of cancel")
	}
	returned := time.Now()
	// RunSQL returns once the server has ended the operation: the cores
	// are free at once, not some time later.
	if err := probe(t, 3*time.Second); err != nil {
		t.Fatalf("the server was still busy when RunSQL returned %v after cancel: %v", returned.Sub(cancelled).Round(time.Millisecond), err)
	}
	t.Logf("RunSQL returned %v after cancel, with the server free", returned.Sub(cancelled).Round(time.Millisecond))
}

func TestRunSQL_TimeoutStopsTheJobOnTheServerWithin10s(t *testing.T) {
	s := connect(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	errc := runLong(ctx, t, s)
	err := <-errc
	expired := time.Now()
	if !errors.Is(err, context.DeadlineExceeded) || retry.Classify(err) != retry.ClassTimedOut {
		t.Errorf("RunSQL past its deadline = %v, want context.DeadlineExceeded", err)
	}
	if err := probe(t, 10*time.Second); err != nil {
		t.Fatalf("the server was still busy 10s after the timeout: %v", err)
	}
	t.Logf("server free %v after the timeout", time.Since(expired).Round(time.Millisecond))
}

// Cancelling while Spark still plans the write is the hard case: the job
// is submitted just after the operation ends.
func TestWriteOutput_CancelDuringPlanningStillStopsTheJob(t *testing.T) {
	s := connect(t, nil)
	ctx := context.Background()
	res, err := s.RunSQL(ctx, NodeSpec{Name: "long", SQL: longSQL}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, after := range []time.Duration{50 * time.Millisecond, 300 * time.Millisecond} {
		wctx, cancel := context.WithCancel(ctx)
		time.AfterFunc(after, cancel)
		_, err := s.WriteOutput(wctx, res.View, OutputSpec{Key: "long", Format: "parquet", Path: filepath.Join(t.TempDir(), "long")}, "")
		cancelled := time.Now()
		if !errors.Is(err, context.Canceled) {
			t.Errorf("WriteOutput cancelled after %v = %v, want context.Canceled", after, err)
		}
		if err := probe(t, 10*time.Second); err != nil {
			t.Fatalf("cancelled %v into the write, the server was still busy 10s later: %v", after, err)
		}
		t.Logf("cancelled %v into the write: server free %v later", after, time.Since(cancelled).Round(time.Millisecond))
	}
}
