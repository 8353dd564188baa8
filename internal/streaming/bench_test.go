package streaming

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	sparkconnect "github.com/tauro-exec/tauro-exec/internal/spark/connect"
)

// BenchmarkProgressLatency measures, on a rate-micro-batch source written
// to parquet with a 100 ms trigger, how long after a micro-batch ends its
// NodeProgress event is emitted (to the run's event log, which watchers
// read):
//   - progress-p50-ms / progress-p99-ms: from the end of the batch's
//     trigger as its own report gives it (timestamp, when the trigger
//     began, plus durationMs.triggerExecution);
//   - commit-p50-ms / commit-p99-ms: from the batch's commit file in the
//     checkpoint (its modification time). Spark ends the trigger some tens
//     of milliseconds after it writes that file (it then computes the
//     batch's figures), and reports the batch only then.
//
// Batches that end after the stop is asked for are left out: the stop
// reports them once it has stopped the query.
//
// "listener" follows the session's listener bus, "polling" forces the
// fallback that asks for recentProgress every 200 ms. Each iteration is a
// run of about 15 s.
func BenchmarkProgressLatency(b *testing.B) {
	for _, mode := range []struct {
		name     string
		pollOnly bool
	}{{"listener", false}, {"polling", true}} {
		b.Run(mode.name, func(b *testing.B) {
			var lags, fromCommit []time.Duration
			for range b.N {
				var timed *batchEnds
				r := runRate(b, 15*time.Second, Options{PollOnly: mode.pollOnly, Log: slog.New(slog.DiscardHandler)}, func(s *sparkconnect.Session) Queries {
					timed = &batchEnds{Session: s, at: map[int64]time.Time{}}
					return timed
				}, nil)
				for id, received := range r.receivedAt {
					end, ok := timed.end(id)
					if !ok || end.After(r.stopped) {
						continue
					}
					lags = append(lags, received.Sub(end))
					if st, err := os.Stat(filepath.Join(r.checkpoint, "commits", strconv.FormatInt(id, 10))); err == nil {
						fromCommit = append(fromCommit, received.Sub(st.ModTime()))
					}
				}
			}
			if len(lags) == 0 {
				b.Fatal("no micro-batch was measured")
			}
			b.ReportMetric(float64(len(lags))/float64(b.N), "batches/run")
			b.ReportMetric(float64(percentile(lags, 50))/1e6, "progress-p50-ms")
			b.ReportMetric(float64(percentile(lags, 99))/1e6, "progress-p99-ms")
			b.ReportMetric(float64(percentile(fromCommit, 50))/1e6, "commit-p50-ms")
			b.ReportMetric(float64(percentile(fromCommit, 99))/1e6, "commit-p99-ms")
		})
	}
}

// batchEnds is a session that notes when each batch it reports ended, from
// the progress reports that pass through it, polled or sent by the bus.
type batchEnds struct {
	*sparkconnect.Session
	mu sync.Mutex
	at map[int64]time.Time
}

func (s *batchEnds) note(js string) {
	r, err := parseReport(js)
	if err != nil || !r.ranBatch() {
		return
	}
	began, err := time.Parse(time.RFC3339Nano, r.Timestamp)
	if err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.at[r.BatchID] = began.Add(time.Duration(r.DurationMs["triggerExecution"]) * time.Millisecond)
}

func (s *batchEnds) end(id int64) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.at[id]
	return t, ok
}

func (s *batchEnds) QueryProgress(ctx context.Context, q sparkconnect.QueryID) ([]string, error) {
	reports, err := s.Session.QueryProgress(ctx, q)
	for _, js := range reports {
		s.note(js)
	}
	return reports, err
}

func (s *batchEnds) ListenQueries(ctx context.Context, added func(), each func(sparkconnect.QueryEvent)) error {
	return s.Session.ListenQueries(ctx, added, func(e sparkconnect.QueryEvent) {
		if e.Kind == sparkconnect.QueryProgressed {
			s.note(e.Progress)
		}
		each(e)
	})
}

func percentile(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(min(i, len(s))-1, 0)]
}
