package mirror

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine/plan"
	"github.com/tauro-exec/tauro-exec/internal/engine/run"
	"github.com/tauro-exec/tauro-exec/internal/engine/store"
	"github.com/tauro-exec/tauro-exec/internal/mlops/mlflow"
)

// Options configure a Mirror.
type Options struct {
	Store store.Store
	// Replica names this execd among those sharing the store: a run is
	// mirrored by one replica at a time.
	Replica string
	Logger  *slog.Logger
	// Poll is how often tracked runs are looked at when nothing wakes
	// the mirror, and how soon a tracking server that did not answer is
	// tried again; 0 means one second.
	Poll time.Duration
	// Timeout bounds each call to a tracking server; 0 means 10 seconds.
	Timeout time.Duration
	// AttemptTimeout bounds making an attempt's child run before its
	// Python call; 0 means 5 seconds.
	AttemptTimeout time.Duration
}

// Mirror sends tracked runs' event logs to their MLflow tracking servers.
type Mirror struct {
	opt   Options
	store store.Store
	log   *slog.Logger
	wake  chan struct{}

	mu      sync.Mutex
	clients map[string]*mlflow.Client // by tracking URI
	runs    map[string]*sync.Mutex    // one sender per run at a time
}

// New returns a mirror; Run starts it.
func New(opt Options) *Mirror {
	if opt.Poll <= 0 {
		opt.Poll = time.Second
	}
	if opt.Timeout <= 0 {
		opt.Timeout = 10 * time.Second
	}
	if opt.AttemptTimeout <= 0 {
		opt.AttemptTimeout = 5 * time.Second
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	return &Mirror{opt: opt, store: opt.Store, log: opt.Logger, wake: make(chan struct{}, 1),
		clients: map[string]*mlflow.Client{}, runs: map[string]*sync.Mutex{}}
}

// Track records that a run of p is sent to MLflow, when p's runs are
// tracked. The engine calls it for every execution of a run (a first one,
// a repair, one taken up after a restart), before its nodes run.
func (m *Mirror) Track(ctx context.Context, runID string, p *plan.Pipeline) error {
	s, err := m.spec(ctx, p)
	if s == nil || err != nil {
		return err
	}
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("mlflow mirror: encoding the spec of run %s: %w", runID, err)
	}
	if err := m.store.TrackMLflow(ctx, runID, b); err != nil {
		return err
	}
	m.poke()
	return nil
}

// spec is the spec of a run of p, nil when p's runs are not tracked: an
// experiment's run says which experiment it is part of.
func (m *Mirror) spec(ctx context.Context, p *plan.Pipeline) (*Spec, error) {
	s := SpecOf(p)
	if s == nil {
		return nil, nil
	}
	if iso := p.Isolation; iso != nil && iso.Experiment != "" {
		x, err := m.store.GetExperiment(ctx, iso.Experiment)
		if err != nil {
			return nil, err
		}
		s.ExperimentID, s.Trial, s.ExperimentSpec = x.ID, iso.Trial, experimentSpecOf(x, p)
	}
	return s, nil
}

func (m *Mirror) poke() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// Run sends until ctx ends.
func (m *Mirror) Run(ctx context.Context) {
	t := time.NewTicker(m.opt.Poll)
	defer t.Stop()
	for {
		m.round(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-m.wake:
		}
	}
}

// round sends what each experiment and run this replica may mirror has
// not sent yet.
func (m *Mirror) round(ctx context.Context) {
	m.experiments(ctx)
	tracks, err := m.store.ClaimMLflow(ctx, m.opt.Replica, max(time.Minute, 10*m.opt.Poll))
	if err != nil {
		if ctx.Err() == nil && !errors.Is(err, store.ErrClosed) {
			m.log.Warn("mlflow mirror: reading the runs to send", "err", err)
		}
		return
	}
	for _, t := range tracks {
		if ctx.Err() != nil {
			return
		}
		var s Spec
		if err := json.Unmarshal(t.Spec, &s); err != nil {
			m.log.Error("mlflow mirror: a tracked run's spec cannot be read; it is not sent", "run", t.ID, "err", err)
			continue
		}
		if err := m.send(ctx, t, &s); err != nil && ctx.Err() == nil {
			m.unanswered(ctx, t, &s, err)
		}
	}
}

// experiments sends what each experiment this replica may mirror has not
// sent yet.
func (m *Mirror) experiments(ctx context.Context) {
	tracks, err := m.store.ClaimMLflowExperiments(ctx, m.opt.Replica, max(time.Minute, 10*m.opt.Poll))
	if err != nil {
		if ctx.Err() == nil && !errors.Is(err, store.ErrClosed) {
			m.log.Warn("mlflow mirror: reading the experiments to send", "err", err)
		}
		return
	}
	for _, t := range tracks {
		var s ExperimentSpec
		if err := json.Unmarshal(t.Spec, &s); err != nil {
			m.log.Error("mlflow mirror: a tracked experiment's spec cannot be read; it is not sent", "experiment", t.ID, "err", err)
			continue
		}
		// A server away is said by the runs' warnings; only what
		// resending cannot cure is worth a warning here.
		if err := m.sendExperiment(ctx, t, &s); err != nil && ctx.Err() == nil {
			level := slog.LevelWarn
			if errors.Is(err, errTrialPending) || mlflow.IsRetryable(err) {
				level = slog.LevelDebug
			}
			m.log.Log(ctx, level, "mlflow mirror: sending an experiment", "experiment", t.ID, "tracking_uri", s.TrackingURI, "err", err)
		}
	}
}

// unanswered says, once per run, in the run's own events, that its
// tracking server did not take what was sent (it is tried again every
// round, so the log says it once too).
func (m *Mirror) unanswered(ctx context.Context, t store.MLflowTrack, s *Spec, err error) {
	if t.Warned {
		m.log.Debug("mlflow mirror: sending a run", "run", t.ID, "tracking_uri", s.TrackingURI, "err", err)
		return
	}
	m.log.Warn("mlflow mirror: sending a run", "run", t.ID, "tracking_uri", s.TrackingURI, "err", err)
	first, werr := m.store.WarnMLflow(ctx, t.ID)
	if werr != nil || !first {
		return
	}
	text := fmt.Sprintf("the MLflow tracking server at %s does not answer (%v); execd keeps what it could not send and sends it, in order, when the server answers again", s.TrackingURI, err)
	if _, aerr := m.store.Append(ctx, t.ID, run.Event{Kind: run.RunMessage, Level: "warning", Message: text}); aerr != nil && !errors.Is(aerr, store.ErrRunEnded) {
		m.log.Warn("mlflow mirror: recording the warning", "run", t.ID, "err", aerr)
	}
}

// client returns the client of a tracking server.
func (m *Mirror) client(uri string) (*mlflow.Client, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c := m.clients[uri]; c != nil {
		return c, nil
	}
	c, err := mlflow.New(mlflow.Config{URI: uri, Timeout: m.opt.Timeout, Auth: mlflow.AuthFromEnv()})
	if err != nil {
		return nil, err
	}
	m.clients[uri] = c
	return c, nil
}

// lock serialises what is done for one run: the loop's sends and the
// child runs made before Python calls.
func (m *Mirror) lock(runID string) func() {
	m.mu.Lock()
	l := m.runs[runID]
	if l == nil {
		l = &sync.Mutex{}
		m.runs[runID] = l
	}
	m.mu.Unlock()
	l.Lock()
	return l.Unlock
}
