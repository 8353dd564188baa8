package mirror

import (
	"context"
	"errors"
	"strings"

	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	"github.com/tauro-exec/tauro-exec/internal/engine/store"
	"github.com/tauro-exec/tauro-exec/internal/mlops/mlflow"
)

// pageSize is how many events are read at a time.
const pageSize = 1000

// maxErrorTag bounds the error text kept as a tag (MLflow's limit is
// 8000 characters).
const maxErrorTag = 4000

// send sends the run's events after its cursor, advancing the cursor
// after each page the server took. Every send is idempotent (runs found
// by their tags, params and tags set to the same values, metrics with
// the event's time, which MLflow keeps once), so a page resent after a
// crash changes nothing.
func (m *Mirror) send(ctx context.Context, t store.MLflowTrack, s *Spec) error {
	defer m.lock(t.ID)()
	c, err := m.client(s.TrackingURI)
	if err != nil {
		return err
	}
	after := t.Sent
	for {
		evs, err := m.store.Events(ctx, t.ID, after, pageSize)
		if err != nil || len(evs) == 0 {
			return err
		}
		p := page{m: m, c: c, runID: t.ID, s: s, metrics: map[run.MLflowRun][]mlflow.Metric{}}
		for _, ev := range evs {
			if err := p.event(ctx, ev); err != nil {
				return err
			}
		}
		if err := p.flush(ctx); err != nil {
			return err
		}
		last := evs[len(evs)-1]
		done := last.Terminal()
		if err := m.store.AdvanceMLflow(ctx, t.ID, last.Sequence, done); err != nil {
			return err
		}
		if done {
			m.forget(t.ID)
			return nil
		}
		after = last.Sequence
	}
}

// forget drops the lock of a run wholly sent.
func (m *Mirror) forget(runID string) {
	m.mu.Lock()
	delete(m.runs, runID)
	m.mu.Unlock()
}

// page is one page of a run's events being sent: metrics are gathered
// per child run and sent in MLflow's batches before the page's end or
// the attempt's.
type page struct {
	m       *Mirror
	c       *mlflow.Client
	runID   string
	s       *Spec
	metrics map[run.MLflowRun][]mlflow.Metric
}

func (p *page) event(ctx context.Context, ev run.Event) error {
	switch ev.Kind {
	case run.RunStateChanged:
		return p.runState(ctx, ev)
	case run.NodeStateChanged:
		if _, ml := p.s.Nodes[ev.Node]; ml {
			return p.nodeState(ctx, ev)
		}
	case run.NodeMetric:
		// execd.* metrics are execd's own profiling, not the model's.
		if _, ml := p.s.Nodes[ev.Node]; ml && !strings.HasPrefix(ev.MetricName, "execd.") {
			if !validKey(ev.MetricName) {
				p.m.log.Warn("mlflow mirror: a metric name MLflow does not take is not sent", "run", p.runID, "node", ev.Node, "metric", ev.MetricName)
				return nil
			}
			child, err := p.m.child(ctx, p.c, p.runID, p.s, ev.Node, ev.Attempt, ev.Time)
			if err != nil {
				return err
			}
			p.metrics[child] = append(p.metrics[child], mlflow.Metric{Key: ev.MetricName, Value: ev.MetricValue,
				Timestamp: ev.Time.UnixMilli(), Step: ev.MetricStep})
		}
	}
	return nil
}

// runState follows the run: the parent is made when the run starts, and
// ends as the run does (a repair makes it RUNNING again).
func (p *page) runState(ctx context.Context, ev run.Event) error {
	status, ended := runStatus(ev.RunState)
	if !ended && ev.RunState != run.Running {
		return nil
	}
	parent, err := p.m.parent(ctx, p.c, p.runID, p.s, ev.Time)
	if err != nil {
		return err
	}
	if err := p.flush(ctx); err != nil {
		return err
	}
	err = p.c.LogBatch(ctx, parent.RunID, mlflow.Batch{Tags: []mlflow.Tag{{Key: TagState, Value: string(ev.RunState)}}})
	if err := p.m.tolerate(err, p.runID, "the run's state"); err != nil {
		return err
	}
	if !ended {
		// A parent is made RUNNING; only a repaired run's needs setting back.
		got, err := p.c.GetRun(ctx, parent.RunID)
		if err != nil || got.Info.Status == mlflow.StatusRunning {
			return err
		}
	}
	_, err = p.c.UpdateRun(ctx, parent.RunID, status, ev.Time.UnixMilli())
	return p.m.tolerate(err, p.runID, "the run's status")
}

// nodeState follows an ML node attempt: its child is made when it starts
// and ends as the attempt does, with its duration and error.
func (p *page) nodeState(ctx context.Context, ev run.Event) error {
	status, ended := attemptStatus(ev.NodeState)
	if !ended && ev.NodeState != run.NodeRunning {
		return nil
	}
	if ev.Attempt < 1 {
		return nil // a node skipped or cancelled before any attempt
	}
	child, err := p.m.child(ctx, p.c, p.runID, p.s, ev.Node, ev.Attempt, ev.Time)
	if err != nil || !ended {
		return err
	}
	if err := p.flushOne(ctx, child); err != nil {
		return err
	}
	b := mlflow.Batch{
		Metrics: []mlflow.Metric{{Key: "duration_seconds", Value: ev.Duration.Seconds(), Timestamp: ev.Time.UnixMilli()}},
		Tags:    []mlflow.Tag{{Key: TagState, Value: string(ev.NodeState)}},
	}
	if e := ev.Error; e != nil {
		text := e.Message
		if e.Type != "" {
			text = e.Type + ": " + text
		}
		if len(text) > maxErrorTag {
			text = text[:maxErrorTag]
		}
		b.Tags = append(b.Tags, mlflow.Tag{Key: TagError, Value: text})
	}
	if err := p.m.tolerate(p.c.LogBatch(ctx, child.RunID, b), p.runID, "an attempt's end"); err != nil {
		return err
	}
	_, err = p.c.UpdateRun(ctx, child.RunID, status, ev.Time.UnixMilli())
	return p.m.tolerate(err, p.runID, "an attempt's status")
}

func (p *page) flush(ctx context.Context) error {
	for child := range p.metrics {
		if err := p.flushOne(ctx, child); err != nil {
			return err
		}
	}
	return nil
}

func (p *page) flushOne(ctx context.Context, child run.MLflowRun) error {
	ms := p.metrics[child]
	if len(ms) == 0 {
		return nil
	}
	if err := p.m.tolerate(p.c.LogBatch(ctx, child.RunID, mlflow.Batch{Metrics: ms}), p.runID, "metrics"); err != nil {
		return err
	}
	delete(p.metrics, child)
	return nil
}

// tolerate passes on an error that a resend may cure (no answer, a busy
// server) and drops, with a log line, one the server answered with a
// refusal: resending it would stop the run's mirror for good (a param
// the node itself logged with another value, say).
func (m *Mirror) tolerate(err error, runID, what string) error {
	var e *mlflow.Error
	if err == nil || !errors.As(err, &e) || e.Retryable() || e.Status == 0 && e.Code == "" {
		return err
	}
	m.log.Warn("mlflow mirror: the tracking server refused part of a run; it is not sent again", "run", runID, "what", what, "err", err)
	return nil
}

// runStatus is the parent's status for a run state, and whether the run
// has ended.
func runStatus(s run.State) (mlflow.RunStatus, bool) {
	switch s {
	case run.Succeeded:
		return mlflow.StatusFinished, true
	case run.Failed:
		return mlflow.StatusFailed, true
	case run.Cancelled, run.Interrupted:
		return mlflow.StatusKilled, true
	}
	return mlflow.StatusRunning, false
}

// attemptStatus is a child's status for its attempt's node state, and
// whether the attempt has ended. RETRYING ends the attempt that failed.
func attemptStatus(s run.NodeState) (mlflow.RunStatus, bool) {
	switch s {
	case run.NodeSucceeded:
		return mlflow.StatusFinished, true
	case run.NodeFailed, run.NodeRetrying, run.NodeTimedOut:
		return mlflow.StatusFailed, true
	case run.NodeCancelled:
		return mlflow.StatusKilled, true
	}
	return mlflow.StatusRunning, false
}
