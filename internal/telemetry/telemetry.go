// Package telemetry is execd's metrics and traces: a Prometheus registry
// served on its own listener, and OpenTelemetry spans exported over OTLP
// when the standard OTEL_* variables ask for it. It implements the
// engine's observe.Observer and gives the gRPC server its interceptors and
// stats handler; the engine and the backends never import it, and
// cmd/execd hands it the values backends keep (restarts, busy workers) as
// functions it reads at scrape time.
//
// Both halves are off by default: without --metrics-listen there is no
// registry, and without OTEL_* there is no tracer, no propagator and no
// stats handler.
package telemetry

import (
	"context"
	"log/slog"
	"os"
	"sync"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc/filters"
	"go.opentelemetry.io/otel"
	"google.golang.org/grpc"

	"github.com/tauro-exec/tauro-exec/internal/engine/observe"
	"github.com/tauro-exec/tauro-exec/internal/engine/run"
)

// Options configure New.
type Options struct {
	// Metrics turns the Prometheus registry on.
	Metrics bool
	// Getenv reads the OTEL_* variables that decide whether traces are
	// exported; nil means os.Getenv. (The exporter itself reads the
	// process's environment.)
	Getenv func(string) string
	Logger *slog.Logger
}

// Telemetry holds what is on. The zero value has everything off.
type Telemetry struct {
	metrics *Metrics
	tracing *tracing
}

// New sets up metrics and tracing as opt and the environment ask. An
// OTEL_* variable with a value execd cannot use is an error naming it.
func New(ctx context.Context, opt Options) (*Telemetry, error) {
	getenv := opt.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	log := opt.Logger
	if log == nil {
		log = slog.Default()
	}
	t := &Telemetry{}
	if opt.Metrics {
		t.metrics = newMetrics()
	}
	protocol, err := tracingProtocol(getenv)
	if err != nil {
		return nil, err
	}
	if protocol != "" {
		if t.tracing, err = newTracing(ctx, protocol); err != nil {
			return nil, err
		}
		// The SDK reports failed exports (a collector that is down) to
		// OTel's one process-wide handler; send them to execd's log.
		otel.SetErrorHandler(&errorLog{log: log, every: 30 * time.Second})
		log.Info("exporting traces over OTLP", "protocol", protocol)
	}
	return t, nil
}

// Metrics is the Prometheus half; nil when metrics are off.
func (t *Telemetry) Metrics() *Metrics { return t.metrics }

// Tracing reports whether spans are exported.
func (t *Telemetry) Tracing() bool { return t.tracing != nil }

// Observer is what the engine tells about runs and attempts.
func (t *Telemetry) Observer() observe.Observer {
	if t.metrics == nil && t.tracing == nil {
		return observe.Nop{}
	}
	return observer{t}
}

// ServerOptions are the gRPC server's: the Prometheus interceptors when
// metrics are on, and otelgrpc's stats handler when tracing is, which
// reads the caller's traceparent and makes a server span of each call
// (health checks excepted: probes would drown the runs).
func (t *Telemetry) ServerOptions() []grpc.ServerOption {
	opts := t.metrics.serverOptions()
	if t.tracing != nil {
		opts = append(opts, grpc.StatsHandler(otelgrpc.NewServerHandler(
			otelgrpc.WithTracerProvider(t.tracing.tp),
			otelgrpc.WithPropagators(t.tracing.prop),
			otelgrpc.WithFilter(filters.Not(filters.HealthCheck())),
		)))
	}
	return opts
}

// Registered gives the RPC counters a zero series for every method srv
// serves, so a rate over a method that was never called is 0, not absent.
// Call it once the services are registered.
func (t *Telemetry) Registered(srv *grpc.Server) {
	if t.metrics != nil {
		t.metrics.grpc.InitializeMetrics(srv)
	}
}

// Shutdown exports the spans still buffered. Call it after the engine has
// closed, so interrupted runs' spans are among them.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	if t.tracing == nil {
		return nil
	}
	return t.tracing.shutdown(ctx)
}

// errorLog logs OpenTelemetry's errors, at most one every so often: a
// collector that is down fails every batch.
type errorLog struct {
	log   *slog.Logger
	every time.Duration

	mu     sync.Mutex
	last   time.Time
	missed int
}

func (e *errorLog) Handle(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if now := time.Now(); now.Sub(e.last) >= e.every {
		e.log.Warn("OpenTelemetry: spans may be lost", "err", err, "errors_not_logged_since_the_last", e.missed)
		e.last, e.missed = now, 0
		return
	}
	e.missed++
}

// observer turns the engine's calls into metrics and spans.
type observer struct{ t *Telemetry }

func (o observer) RunQueued(ctx context.Context, r observe.Run) context.Context {
	if o.t.tracing == nil {
		return context.Background()
	}
	return o.t.tracing.runQueued(ctx, r)
}

func (o observer) RunStarted(ctx context.Context, r observe.Run) {
	o.t.metrics.runStarted(r)
	if o.t.tracing != nil {
		o.t.tracing.runStarted(ctx)
	}
}

func (o observer) RunEnded(ctx context.Context, r observe.Run, end observe.End) {
	o.t.metrics.runEnded(r, end)
	if o.t.tracing != nil {
		o.t.tracing.runEnded(ctx, end)
	}
}

func (o observer) AttemptStarted(ctx context.Context, a observe.Attempt) context.Context {
	if o.t.metrics != nil {
		ctx = observe.WithExpectations(ctx, func(rs []run.ExpectationResult) { o.t.metrics.expectationsCounted(a, rs) })
	}
	if o.t.tracing == nil {
		return ctx
	}
	return o.t.tracing.attemptStarted(ctx, a)
}

func (o observer) AttemptEnded(ctx context.Context, a observe.Attempt, end observe.AttemptEnd) {
	o.t.metrics.attemptEnded(a, end)
	if o.t.tracing != nil {
		o.t.tracing.attemptEnded(ctx, end)
	}
}
