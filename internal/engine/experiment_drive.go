package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/experiment"
	"github.com/tauro-exec/tauro-exec/internal/engine/run"
)

// Driving an experiment. One goroutine owns the experiment's trials: it
// asks the Suggester for each trial, records it, starts its run through
// Execute (so the run queue admits it like any other), and records each
// trial's end as the run's end reaches it. Every change is recorded before
// anything acts on it, so an execd killed at any point resumes from the
// record: a trial recorded without a run starts it under the same request
// id (Execute returns the run if it was created), a run the stop
// interrupted is repaired, a run still queued is waited for.

// trialEnd is a trial's run that ended, or could not be followed.
type trialEnd struct {
	number int
	run    run.Run
	err    error
}

// unavailableRetry is how long the drive waits before trying again a run
// that could not start because Spark or the queue was unavailable.
const unavailableRetry = 2 * time.Second

// driveExperiment runs x from where its record stands to its end. A
// shutdown (ErrShutdown) leaves it running in the record, for the next
// execd to resume.
func (e *Engine) driveExperiment(ctx context.Context, x experiment.Record) {
	recCtx := context.WithoutCancel(ctx)
	// Runs are followed to their end even when the experiment is cancelled
	// (its trials' runs are cancelled and end), but not past a shutdown: a
	// queued run then stays queued for the next start.
	followCtx, stopFollowing := context.WithCancel(recCtx)
	defer stopFollowing()
	stopAfter := context.AfterFunc(ctx, func() {
		if errors.Is(context.Cause(ctx), ErrShutdown) {
			stopFollowing()
		}
	})
	defer stopAfter()
	log := e.log.With("experiment_id", x.ID, "pipeline", x.Spec.Pipeline)
	d := &drive{e: e, x: x, log: log, recCtx: recCtx, followCtx: followCtx, ended: make(chan trialEnd)}
	if x.State == experiment.Pending {
		if !d.record(experiment.Event{Kind: experiment.StateChanged, State: experiment.Running}) {
			return
		}
	}
	if len(x.SharedNodes) > 0 {
		r, err := d.shared(ctx)
		if err != nil || r.State != run.Succeeded {
			if d.shutdown(ctx) {
				return
			}
			if ctx.Err() != nil {
				d.finish(experiment.Cancelled, cancelReason(ctx))
				return
			}
			msg := fmt.Sprintf("the run of the shared nodes (%s) ended %s: %s", r.ID, r.State, r.Message)
			if err != nil {
				msg = "the run of the shared nodes could not run: " + err.Error()
			}
			d.finish(experiment.Failed, msg)
			return
		}
	}
	d.trials(ctx)
}

// drive is one experiment's drive state; only its goroutine touches it.
type drive struct {
	e      *Engine
	x      experiment.Record
	log    *slog.Logger
	recCtx context.Context
	// followCtx bounds waiting for a run's end: it ends at shutdown only.
	followCtx context.Context
	ended     chan trialEnd

	running  map[int]string // trial number -> run id
	failed   int
	stopping string // why no new trial starts; "" while they do
	fatal    bool   // the experiment fails whatever the trials did
}

// record stores ev and applies it to d.x; false when it could not be stored.
func (d *drive) record(ev experiment.Event) bool {
	if _, err := d.e.opt.Store.AppendExperiment(d.recCtx, d.x.ID, ev); err != nil {
		d.log.Error("recording an experiment event", "kind", ev.Kind, "err", err)
		return false
	}
	switch ev.Kind {
	case experiment.StateChanged:
		d.x.State = ev.State
	case experiment.SharedRunChanged:
		d.x.SharedRunID = ev.RunID
	case experiment.TrialChanged:
		t := *ev.Trial
		if t.Number < len(d.x.Trials) {
			d.x.Trials[t.Number] = t
		} else {
			d.x.Trials = append(d.x.Trials, t)
		}
	}
	return true
}

func (d *drive) finish(state experiment.State, msg string) {
	d.record(experiment.Event{Kind: experiment.StateChanged, State: state, Message: msg})
	d.log.Info("experiment ended", "state", state, "message", msg)
}

// shutdown reports whether ctx ended because execd is stopping.
func (d *drive) shutdown(ctx context.Context) bool {
	return errors.Is(context.Cause(ctx), ErrShutdown)
}

func cancelReason(ctx context.Context) string {
	var c cancelCause
	if errors.As(context.Cause(ctx), &c) {
		return c.reason
	}
	return "cancelled"
}

// shared runs the shared nodes once, or follows the run an earlier execd
// started, and returns it ended.
func (d *drive) shared(ctx context.Context) (run.Run, error) {
	id := d.x.SharedRunID
	if id == "" {
		r, err := d.start(ctx, d.x.ID+"/shared", sharedParams(d.x))
		if err != nil {
			return run.Run{}, err
		}
		id = r.ID
		if !d.record(experiment.Event{Kind: experiment.SharedRunChanged, RunID: id, RunState: string(r.State)}) {
			return run.Run{}, errors.New("the shared run could not be recorded")
		}
	}
	// A cancelled experiment cancels its shared run (a shutdown leaves it
	// to Close, which interrupts it for the next start to repair).
	cancelShared := context.AfterFunc(ctx, func() {
		if !d.shutdown(ctx) {
			if _, err := d.e.Cancel(d.recCtx, id, cancelReason(ctx)); err != nil && !errors.Is(err, ErrFailedPrecondition) {
				d.log.Warn("cancelling the shared run", "run_id", id, "err", err)
			}
		}
	})
	defer cancelShared()
	r, err := d.follow(ctx, id)
	if err != nil {
		return run.Run{}, err
	}
	if r.State.Terminal() {
		d.record(experiment.Event{Kind: experiment.SharedRunChanged, RunID: id, RunState: string(r.State), Message: r.Message})
	}
	return r, nil
}

// start starts a run, waiting out a Spark that is not reachable yet (as
// after a restart) until ctx ends.
func (d *drive) start(ctx context.Context, requestID string, params run.Params) (run.Run, error) {
	for {
		r, err := d.e.Execute(ctx, requestID, params, false)
		if !errors.Is(err, ErrUnavailable) {
			return r, err
		}
		d.log.Warn("an experiment's run cannot start yet; trying again", "err", err)
		select {
		case <-time.After(unavailableRetry):
		case <-ctx.Done():
			return run.Run{}, err
		}
	}
}

// follow waits for run id to end and returns it. A run an earlier execd's
// stop interrupted is repaired first, so it finishes in the same record.
func (d *drive) follow(ctx context.Context, id string) (run.Run, error) {
	r, err := d.e.Get(d.recCtx, id)
	if err != nil {
		return run.Run{}, err
	}
	if r.State == run.Interrupted && ctx.Err() == nil {
		for {
			r, err = d.e.Repair(ctx, id, fmt.Sprintf("%s/repair/%d", id, r.RepairCount+1))
			if err == nil || !errors.Is(err, ErrUnavailable) {
				break
			}
			select {
			case <-time.After(unavailableRetry):
			case <-ctx.Done():
				return d.e.Get(d.recCtx, id)
			}
		}
		if err != nil {
			return run.Run{}, err
		}
		d.log.Info("an interrupted run of the experiment is repaired", "run_id", id)
	}
	if r.State.Terminal() {
		return r, nil
	}
	w, err := d.e.Watch(d.followCtx, id, r.LastSequence)
	if err != nil {
		return run.Run{}, err
	}
	for range w.Events() {
	}
	if err := w.Err(); err != nil {
		return run.Run{}, err
	}
	return d.e.Get(d.recCtx, id)
}

// trials runs the trials to the budget, max_parallel_trials at once.
func (d *drive) trials(ctx context.Context) {
	d.running = map[int]string{}
	// Trials an earlier execd left unfinished come first.
	for _, t := range d.x.Trials {
		if t.State == experiment.TrialRunning {
			d.launch(ctx, t)
		} else if t.State == experiment.TrialFailed {
			d.failed++
		}
	}
	done := ctx.Done()
	for {
		for d.stopping == "" && len(d.running) < d.x.Spec.MaxParallel && len(d.x.Trials) < d.x.Spec.NTrials && ctx.Err() == nil {
			if !d.propose(ctx) {
				break
			}
		}
		if len(d.running) == 0 {
			break
		}
		select {
		case end := <-d.ended:
			d.settle(ctx, end)
		case <-done:
			done = nil // once
			if d.shutdown(ctx) {
				d.stopping = ErrShutdown.Error()
				continue // Close cancels the runs; their ends are awaited, not recorded
			}
			d.stop(cancelReason(ctx))
		}
	}
	switch {
	case d.shutdown(ctx):
		d.log.Info("experiment left running for the next start", "trials", len(d.x.Trials))
	case ctx.Err() != nil:
		d.finish(experiment.Cancelled, cancelReason(ctx))
	case d.fatal:
		d.finish(experiment.Failed, d.stopping)
	default:
		if best := d.x.Best(); best != nil {
			d.finish(experiment.Succeeded, fmt.Sprintf("best: trial %d, %s = %s with %s", best.Number, d.x.Spec.Objective.Metric,
				formatValue(*best.Value), formatParams(best.Params)))
		} else {
			d.finish(experiment.Failed, "no trial succeeded")
		}
	}
}

// stop starts no new trial and cancels the running ones.
func (d *drive) stop(reason string) {
	if d.stopping == "" {
		d.stopping = reason
	}
	for number, id := range d.running {
		if id == "" {
			continue
		}
		go func() {
			if _, err := d.e.Cancel(d.recCtx, id, reason); err != nil && !errors.Is(err, ErrFailedPrecondition) {
				d.log.Warn("cancelling a trial's run", "trial", number, "run_id", id, "err", err)
			}
		}()
	}
}

// propose asks for the next trial, records it and launches it. False when
// no proposal could be had (the experiment then fails).
func (d *drive) propose(ctx context.Context) bool {
	number := len(d.x.Trials)
	prop := experiment.Proposal{
		Space: d.x.Spec.Space, Number: number, Seed: d.x.Spec.Seed, NTrials: d.x.Spec.NTrials,
		Direction: d.x.Spec.Objective.Direction, Sampler: d.x.Spec.Sampler,
	}
	for _, t := range d.x.Trials {
		o := experiment.Observation{Params: t.Params, State: t.State}
		if t.State == experiment.TrialSucceeded && t.Value != nil {
			o.Value = *t.Value
		}
		prop.Trials = append(prop.Trials, o)
	}
	var (
		params map[string]any
		err    error
	)
	for attempt := range 3 {
		if params, err = d.e.opt.Suggester.Suggest(ctx, prop); err == nil || ctx.Err() != nil {
			break
		}
		d.log.Warn("the optimiser could not propose a trial", "trial", number, "attempt", attempt+1, "err", err)
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
		}
	}
	if ctx.Err() != nil {
		return false
	}
	if err != nil {
		d.fatal = true
		d.stop(fmt.Sprintf("the optimiser could not propose trial %d: %v", number, err))
		return false
	}
	t := experiment.Trial{Number: number, State: experiment.TrialRunning, Params: params, StartTime: d.e.opt.Now()}
	if !d.record(experiment.Event{Kind: experiment.TrialChanged, Trial: &t}) {
		d.fatal = true
		d.stop("the trial could not be recorded")
		return false
	}
	d.launch(ctx, t)
	return true
}

// launch starts (or, after a restart, finds) trial t's run and follows it
// in the background.
func (d *drive) launch(ctx context.Context, t experiment.Trial) {
	id := t.RunID
	if id == "" {
		r, err := d.start(ctx, trialRequestID(d.x.ID, t.Number), trialParams(d.x, t))
		if err != nil {
			d.running[t.Number] = ""
			go func() { d.ended <- trialEnd{number: t.Number, err: err} }()
			return
		}
		id = r.ID
		t.RunID = id
		d.record(experiment.Event{Kind: experiment.TrialChanged, Trial: &t})
	}
	d.running[t.Number] = id
	go func() {
		r, err := d.follow(ctx, id)
		d.ended <- trialEnd{number: t.Number, run: r, err: err}
	}()
}

// settle records how a trial's run ended.
func (d *drive) settle(ctx context.Context, end trialEnd) {
	delete(d.running, end.number)
	t := d.x.Trials[end.number]
	r := end.run
	if !r.StartTime.IsZero() {
		t.StartTime, t.EndTime = r.StartTime, r.EndTime
	}
	switch {
	case end.err != nil && d.shutdown(ctx):
		return // the next start follows it
	case end.err != nil:
		t.State, t.Message = experiment.TrialFailed, end.err.Error()
	case r.State == run.Interrupted:
		return // stopped by this execd's shutdown: the next start repairs it
	case r.State == run.Succeeded:
		v, ok := objectiveValue(r, d.x.Spec.Objective)
		if !ok {
			t.State = experiment.TrialFailed
			t.Message = fmt.Sprintf("node %q succeeded without logging the metric %q; log it with ml_context[\"log_metric\"](%q, value)",
				d.x.Spec.Objective.Node, d.x.Spec.Objective.Metric, d.x.Spec.Objective.Metric)
			d.fatal = true
			d.stop(fmt.Sprintf("trial %d: %s", t.Number, t.Message))
			break
		}
		t.State, t.Value = experiment.TrialSucceeded, &v
	case r.State == run.Cancelled:
		t.State, t.Message = experiment.TrialCancelled, r.Message
	default:
		t.State, t.Message = experiment.TrialFailed, runFailure(r)
	}
	if t.State == experiment.TrialFailed {
		d.failed++
	}
	prev := d.x.Best()
	best := t.State == experiment.TrialSucceeded && (prev == nil || d.x.Spec.Objective.Direction.Better(*t.Value, *prev.Value))
	d.record(experiment.Event{Kind: experiment.TrialChanged, Trial: &t, Best: best})
	if d.failed*2 > d.x.Spec.NTrials && !d.fatal {
		d.fatal = true
		d.stop(fmt.Sprintf("most trials failed (%d of %d); the last: %s", d.failed, d.x.Spec.NTrials, t.Message))
	}
}

// objectiveValue is the metric o names, as o's node logged it in its last
// attempt.
func objectiveValue(r run.Run, o experiment.Objective) (float64, bool) {
	for _, n := range r.Nodes {
		if n.Name != o.Node || len(n.Attempts) == 0 {
			continue
		}
		v, ok := n.Attempts[len(n.Attempts)-1].Metrics[o.Metric]
		return v, ok
	}
	return 0, false
}

// runFailure says why a trial's run failed: its message and the first
// node error, which is what the user needs to see.
func runFailure(r run.Run) string {
	msg := fmt.Sprintf("run %s ended %s: %s", r.ID, r.State, r.Message)
	for _, n := range r.Nodes {
		if n.Error != nil {
			return fmt.Sprintf("%s (%s: %s: %s)", msg, n.Name, n.Error.Type, headline(n.Error.Message))
		}
	}
	return msg
}

// headline is the start of an error message, before a stack trace: the
// run keeps the whole of it.
func headline(msg string) string {
	if i := strings.Index(msg, "\n\n"); i >= 0 {
		msg = msg[:i]
	}
	const most = 400
	if len(msg) > most {
		msg = strings.ToValidUTF8(msg[:most], "") + "…"
	}
	return msg
}

func formatValue(v float64) string { return fmt.Sprintf("%.6g", v) }

func formatParams(p map[string]any) string {
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		v := p[k]
		if f, ok := v.(float64); ok {
			v = formatValue(f)
		}
		parts[i] = fmt.Sprintf("%s=%v", k, v)
	}
	return strings.Join(parts, ", ")
}
