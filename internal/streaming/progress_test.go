package streaming

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	sparkconnect "github.com/tauro-exec/tauro-exec/internal/spark/connect"
)

// scripted is a query whose recentProgress grows one snapshot per call, as
// Spark's does; it ends once the script is played.
type scripted struct {
	noBus
	mu        sync.Mutex
	snapshots [][]string
	calls     int
}

func (q *scripted) StartStream(context.Context, sparkconnect.StreamStart) (sparkconnect.QueryID, error) {
	return sparkconnect.QueryID{ID: "q", RunID: "r"}, nil
}

func (q *scripted) QueryStatus(context.Context, sparkconnect.QueryID) (sparkconnect.QueryStatus, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	active := q.calls < len(q.snapshots)
	return sparkconnect.QueryStatus{Active: active}, nil
}

func (q *scripted) QueryProgress(context.Context, sparkconnect.QueryID) ([]string, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	i := min(q.calls, len(q.snapshots)-1)
	q.calls++
	return q.snapshots[i], nil
}

func (q *scripted) QueryLastProgress(context.Context, sparkconnect.QueryID) (string, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	last := q.snapshots[min(q.calls, len(q.snapshots)-1)]
	return last[len(last)-1], nil
}

func (q *scripted) QueryException(context.Context, sparkconnect.QueryID) (*sparkconnect.QueryError, error) {
	return nil, nil
}

func (q *scripted) StopQuery(context.Context, sparkconnect.QueryID) error { return nil }

func (q *scripted) Owner() (string, string) { return "sess", "tauro" }

// idle is Spark's report of a trigger that found no new data: it carries
// the id of the batch still to come and no addBatch time.
func idle(batch int, start string) string {
	return fmt.Sprintf(`{"batchId": %d, "durationMs": {"triggerExecution": 1, "latestOffset": 1},
		"sources": [{"description": "FileStreamSource[in]", "startOffset": %s, "numInputRows": 0, "inputRowsPerSecond": NaN}]}`, batch, start)
}

// ran is the report of a micro-batch that read rows.
func ran(batch, rows int, start string) string {
	return fmt.Sprintf(`{"batchId": %d, "durationMs": {"triggerExecution": 300, "addBatch": 140},
		"sources": [{"description": "FileStreamSource[in]", "startOffset": %s, "numInputRows": %d}]}`, batch, start, rows)
}

// played runs a scripted query to its end and returns its events; each
// poll finds one more report.
func played(t *testing.T, reports ...string) []run.Event {
	t.Helper()
	var snapshots [][]string
	for i := range reports {
		snapshots = append(snapshots, reports[:i+1])
	}
	return playedSnapshots(t, snapshots...)
}

// playedSnapshots runs a query whose recentProgress is each snapshot in
// turn, one a poll, to its end and returns its events.
func playedSnapshots(t *testing.T, snapshots ...[]string) []run.Event {
	t.Helper()
	q := &scripted{snapshots: snapshots}
	var evs []run.Event
	err := Run(context.Background(), q, sparkconnect.StreamStart{QueryName: "t"},
		Options{Poll: time.Millisecond, Log: slog.New(slog.DiscardHandler), Emit: func(ev run.Event) { evs = append(evs, ev) }})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return evs
}

func progressOf(evs []run.Event) []string {
	var out []string
	for _, ev := range evs {
		if ev.Kind == run.NodeProgress {
			out = append(out, fmt.Sprintf("batch %d: %d rows", ev.Progress.BatchID, ev.Progress.InputRows))
		}
	}
	return out
}

func TestRun_ABatchAfterAnIdleTriggerOfTheSameIdIsReported(t *testing.T) {
	// A query started on an empty folder: Spark reports the idle trigger as
	// batch 0, then the batch that read the first files as batch 0 too.
	evs := played(t,
		idle(0, "null"),
		ran(0, 40, "null"),
		idle(1, `{"logOffset": 0}`),
		ran(1, 20, `{"logOffset": 0}`),
	)
	if q := evs[0].Query; evs[0].NodeState != run.NodeStreaming || q == nil || *q != (run.QueryRef{Session: "sess", User: "tauro", ID: "q", RunID: "r"}) {
		t.Errorf("first event %+v; want STREAMING naming the query and its session", evs[0])
	}
	got := strings.Join(progressOf(evs), "; ")
	if want := "batch 0: 40 rows; batch 1: 20 rows"; got != want {
		t.Errorf("progress events %q; want %q (every batch that ran, no idle trigger)", got, want)
	}
	for _, ev := range evs {
		if ev.Kind == run.NodeMessage && strings.Contains(ev.Message, "resumed") {
			t.Errorf("a query's first run says %q", ev.Message)
		}
	}
}

func TestRun_AQueryRestartedFromItsCheckpointSaysWhereItResumedEvenWhenIdle(t *testing.T) {
	evs := played(t, idle(3, `{"logOffset": 2}`), ran(3, 5, `{"logOffset": 2}`))
	var msgs []string
	for _, ev := range evs {
		if ev.Kind == run.NodeMessage {
			msgs = append(msgs, ev.Message)
		}
	}
	if len(msgs) != 1 || !strings.Contains(msgs[0], `resumed from the checkpoint at FileStreamSource[in] offset {"logOffset": 2}`) {
		t.Errorf("messages %q; want one saying where it resumed", msgs)
	}
	if got := progressOf(evs); len(got) != 1 || got[0] != "batch 3: 5 rows" {
		t.Errorf("progress events %q; want batch 3 alone", got)
	}
}

func TestProgress_KeepsEachSourceTheSinkAndTheObservedMetrics(t *testing.T) {
	r, err := parseReport(`{"batchId": 7, "durationMs": {"triggerExecution": 900, "addBatch": 700},
		"sources": [
			{"description": "KafkaV2[Subscribe[orders]]", "startOffset": {"orders": {"0": 10}}, "endOffset": {"orders": {"0": 30}},
			 "latestOffset": {"orders": {"0": 45}}, "numInputRows": 20, "inputRowsPerSecond": NaN, "processedRowsPerSecond": 22.5},
			{"description": "RateStreamV2[rowsPerSecond=5]", "startOffset": null, "endOffset": 12, "latestOffset": null, "numInputRows": 5}],
		"sink": {"description": "DeltaSink[/out]", "numOutputRows": 25},
		"observedMetrics": {"dq": {"rows": 25, "bad": 2, "last": "2025-01-01"}}}`)
	if err != nil {
		t.Fatal(err)
	}
	p := r.progress()
	if p.InputRows != 25 || len(p.Sources) != 2 {
		t.Fatalf("progress %+v", p)
	}
	kafka, rate := p.Sources[0], p.Sources[1]
	if kafka.StartOffset != `{"orders": {"0": 10}}` || kafka.EndOffset != `{"orders": {"0": 30}}` || kafka.LatestOffset != `{"orders": {"0": 45}}` ||
		kafka.InputRows != 20 || kafka.ProcessRate != 22.5 {
		t.Errorf("kafka source %+v", kafka)
	}
	if rate.StartOffset != "" || rate.EndOffset != "12" || rate.LatestOffset != "" || rate.InputRows != 5 {
		t.Errorf("rate source %+v; want a null offset as empty", rate)
	}
	if p.Sink == nil || p.Sink.Description != "DeltaSink[/out]" || p.Sink.OutputRows != 25 {
		t.Errorf("sink %+v", p.Sink)
	}
	if dq := p.Observed["dq"]; dq["bad"] != float64(2) || dq["last"] != "2025-01-01" {
		t.Errorf("observed metrics %v", p.Observed)
	}
	noSinkRows, err := parseReport(`{"batchId": 1, "sink": {"description": "ForeachBatchSink"}}`)
	if err != nil || noSinkRows.progress().Sink.OutputRows != -1 {
		t.Errorf("a sink that gives no row count: %+v (%v); want -1", noSinkRows.progress().Sink, err)
	}
}

func TestRun_EveryBatchBecomesAnEventInOrderOnceEvenWhenSeveralRanBetweenPolls(t *testing.T) {
	first := []string{ran(0, 10, "null")}
	// Three batches, an idle trigger among them, commit before the next poll.
	burst := append(first[:1:1], ran(1, 11, "1"), idle(2, "2"), ran(2, 12, "2"), ran(3, 13, "3"))
	evs := playedSnapshots(t, first, burst, burst, append(burst[1:], ran(4, 14, "4")))
	got := strings.Join(progressOf(evs), "; ")
	if want := "batch 0: 10 rows; batch 1: 11 rows; batch 2: 12 rows; batch 3: 13 rows; batch 4: 14 rows"; got != want {
		t.Errorf("progress events %q; want %q", got, want)
	}
}
