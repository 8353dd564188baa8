package streaming

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	sparkconnect "github.com/tauro-exec/tauro-exec/internal/spark/connect"
	"github.com/tauro-exec/tauro-exec/internal/spark/server/sparktest"
)

func TestMain(m *testing.M) { os.Exit(sparktest.Main(m)) }

// rateRun is a query of a rate-micro-batch source written to parquet with
// a 100 ms trigger, followed by Run on a real Spark Connect server.
type rateRun struct {
	session    *sparkconnect.Session
	sink       string
	checkpoint string
	rec        *recorder
	// receivedAt is when each NodeProgress event reached Emit, by batch.
	receivedAt map[int64]time.Time
	first      chan struct{} // has a value once the first batch is reported
	done       chan error    // Run's result
	stopped    time.Time     // when the stop was asked for
}

// runRate runs the query for about d, as runRates does.
func runRate(t testing.TB, d time.Duration, opt Options, wrap func(*sparkconnect.Session) Queries, during func(r *rateRun)) *rateRun {
	t.Helper()
	return runRates(t, 1, d, opt, wrap, func(rs []*rateRun) {
		if during != nil {
			during(rs[0])
		}
	})[0]
}

// queryDir is a folder for the queries' sinks and checkpoints, removed
// once the session is closed (cleanups run last first). A stop ends a
// query once its batch has committed, but the tasks of a batch it
// interrupted may still be writing their files for a moment, which makes
// a single RemoveAll (t.TempDir's) fail now and then: it is retried.
func queryDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "rate-queries-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for try := 0; ; try++ {
			err := os.RemoveAll(dir)
			if err == nil || try == 20 {
				if err != nil {
					t.Errorf("remove the queries' folder: %v", err)
				}
				return
			}
			time.Sleep(250 * time.Millisecond)
		}
	})
	return dir
}

// runRates runs n queries in one session for about d (bounded: a loaded
// machine runs fewer batches, not a longer test), calling during once
// each has reported its first batch, then stops them as a run's stop does
// and returns once Run has returned for each. Run is given wrap(session),
// or the session when wrap is nil.
func runRates(t testing.TB, n int, d time.Duration, opt Options, wrap func(*sparkconnect.Session) Queries, during func(rs []*rateRun)) []*rateRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d+3*time.Minute)
	defer cancel()
	root := queryDir(t)
	s, err := sparkconnect.Connect(ctx, sparktest.Remote(t), sparkconnect.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	// rate-micro-batch makes a batch at every trigger, where rate makes
	// one a second; both number their rows 0, 1, 2...
	if err := s.RegisterStream(ctx, sparkconnect.StreamInput{Name: "ticks", Format: "rate-micro-batch",
		Options: map[string]string{"rowsPerBatch": "10", "numPartitions": "1"}}); err != nil {
		t.Fatal(err)
	}
	var q Queries = s
	if wrap != nil {
		q = wrap(s)
	}
	stop := make(chan struct{})
	opt.Stop = stop
	rs := make([]*rateRun, n)
	for i := range rs {
		dir := filepath.Join(root, strconv.Itoa(i))
		r := &rateRun{session: s, sink: filepath.Join(dir, "out"), checkpoint: filepath.Join(dir, "chk"), rec: &recorder{},
			receivedAt: map[int64]time.Time{}, first: make(chan struct{}, 1), done: make(chan error, 1)}
		rs[i] = r
		start := sparkconnect.StreamStart{View: "ticks", Format: "parquet", Path: r.sink, Checkpoint: r.checkpoint,
			Trigger: sparkconnect.TriggerProcessingTime, Interval: 100 * time.Millisecond, OutputMode: "append"}
		opt := opt
		opt.Emit = func(ev run.Event) {
			if ev.Kind == run.NodeProgress {
				r.rec.mu.Lock()
				r.receivedAt[ev.Progress.BatchID] = time.Now()
				r.rec.mu.Unlock()
				select {
				case r.first <- struct{}{}:
				default:
				}
			}
			r.rec.emit(ev)
		}
		go func() { r.done <- Run(ctx, q, start, opt) }()
	}
	for _, r := range rs {
		select {
		case <-r.first:
		case err := <-r.done:
			t.Fatalf("Run ended before the first batch: %v", err)
		case <-time.After(2 * time.Minute):
			t.Fatal("no batch in two minutes")
		}
	}
	began := time.Now()
	if during != nil {
		during(rs)
	}
	time.Sleep(d - time.Since(began))
	for _, r := range rs {
		r.stopped = time.Now()
	}
	close(stop)
	for _, r := range rs {
		if err := <-r.done; err != nil {
			t.Fatalf("Run = %v; want nil after a stop", err)
		}
	}
	return rs
}

// checkEveryBatchOnce checks that the batches reported are contiguous,
// each once, that every committed batch was reported, and that the sink
// holds exactly the rows the reports count: the source numbers its rows
// 0, 1, 2... across batches, so the rows reported are those below
// their count.
func (r *rateRun) checkEveryBatchOnce(t *testing.T) {
	t.Helper()
	var reported int64
	ps := r.rec.progress()
	for i, p := range ps {
		if want := ps[0].BatchID + int64(i); p.BatchID != want {
			t.Fatalf("batch %d reported where %d was due: the batches are %s", p.BatchID, want, batchIDs(r.rec))
		}
		reported += p.InputRows
	}
	if ps[0].BatchID != 0 {
		t.Errorf("the first batch reported is %d; want 0", ps[0].BatchID)
	}
	last := ps[len(ps)-1].BatchID
	if c := lastCommit(t, r.checkpoint); c != last {
		t.Errorf("the last batch reported is %d, the last committed %d", last, c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	df, err := sparktest.Session(ctx, t).Sql(ctx, fmt.Sprintf(
		"SELECT count_if(value < %d), count(DISTINCT value) FILTER (WHERE value < %d), count_if(value >= %d) FROM parquet.`%s`",
		reported, reported, reported, r.sink))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := df.Collect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	in, distinct, beyond := rows[0].At(0), rows[0].At(1), rows[0].At(2)
	// Rows past those reported are an interrupted batch's: the stop came
	// after its sink write and before its commit, which the query's next
	// start runs again and the parquet sink, having recorded it, skips.
	t.Logf("%d batches, %d rows reported; the sink has %v of them (%v distinct) and %v more", len(ps), reported, in, distinct, beyond)
	if in != reported || distinct != reported {
		t.Errorf("the sink has %v rows (%v distinct) of the %d the progress events count", in, distinct, reported)
	}
}

// lastCommit is the newest batch committed to the checkpoint, -1 if none.
func lastCommit(t *testing.T, checkpoint string) int64 {
	entries, err := os.ReadDir(filepath.Join(checkpoint, "commits"))
	if err != nil {
		t.Fatal(err)
	}
	last := int64(-1)
	for _, e := range entries {
		if id, err := strconv.ParseInt(e.Name(), 10, 64); err == nil {
			last = max(last, id)
		}
	}
	return last
}

func TestSpark_EveryMicroBatchIsOneProgressEventAndTheSinkHoldsTheRowsTheyCount(t *testing.T) {
	r := runRate(t, 30*time.Second, Options{}, nil, nil)
	r.checkEveryBatchOnce(t)
}

func TestSpark_AListenerStreamCutMidRunLosesAndRepeatsNoBatch(t *testing.T) {
	var cutAt int
	r := runRate(t, 20*time.Second, Options{}, nil, func(r *rateRun) {
		time.Sleep(5 * time.Second)
		b := busOf(r.session)
		if b == nil {
			t.Fatal("the session has no listener bus")
		}
		cutAt = len(r.rec.progress())
		b.dropStream()
		up := func() bool { b.mu.Lock(); defer b.mu.Unlock(); return b.up }
		for _, want := range []bool{false, true} {
			for deadline := time.Now().Add(30 * time.Second); up() != want; time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("the listener stream open: %v 30 s after the cut; want %v", !want, want)
				}
			}
		}
		// A loaded machine runs fewer batches in the run's time: the run
		// goes on until five have been reported after the cut (at most a
		// minute), so that the check below is of the events, not the load.
		for deadline := time.Now().Add(time.Minute); len(r.rec.progress())-cutAt < 5 && time.Now().Before(deadline); {
			time.Sleep(50 * time.Millisecond)
		}
	})
	r.checkEveryBatchOnce(t)
	if after := len(r.rec.progress()) - cutAt; after < 5 {
		t.Errorf("%d batches reported after the cut; want the run to go on", after)
	}
}

func TestSpark_TwoQueriesOfASessionShareItsListenerStreamEachWithItsOwnBatches(t *testing.T) {
	rs := runRates(t, 2, 15*time.Second, Options{}, nil, func(rs []*rateRun) {
		b := busOf(rs[0].session)
		buses.Lock()
		defer buses.Unlock()
		if b == nil || b.refs != 2 {
			t.Error("the two queries do not share the session's listener bus")
		}
	})
	for _, r := range rs {
		r.checkEveryBatchOnce(t)
	}
}

// busOf is the bus src's followers share now, nil if none.
func busOf(src Listener) *bus {
	buses.Lock()
	defer buses.Unlock()
	return buses.of[src]
}
