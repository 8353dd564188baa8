package telemetry

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"

	"github.com/tauro-exec/tauro-exec/internal/engine/observe"
	"github.com/tauro-exec/tauro-exec/internal/engine/run"
)

const namespace = "tauro_exec"

// nodeBuckets span a node attempt's durations, from a quick SQL node to
// an hour-long job, in seconds.
var nodeBuckets = []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600}

// Metrics is execd's Prometheus registry: the RPCs, the engine's runs and
// node attempts (as the Observer sees them), and values the backends keep,
// read at scrape time. A nil *Metrics (metrics off) accepts every call and
// does nothing.
type Metrics struct {
	reg  *prometheus.Registry
	grpc *grpcprom.ServerMetrics

	runsStarted  *prometheus.CounterVec
	runsFinished *prometheus.CounterVec
	breakerTrips *prometheus.CounterVec
	nodeDuration *prometheus.HistogramVec
	nodeRetries  *prometheus.CounterVec
	// expectationRows counts the rows each expectation and check looked
	// at, passed or failed.
	expectationRows *prometheus.CounterVec
}

func newMetrics() *Metrics {
	m := &Metrics{
		reg:  prometheus.NewRegistry(),
		grpc: grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram()),
		runsStarted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "runs_started_total",
			Help: "Run executions admitted and started (a repair is a new execution).",
		}, []string{"project", "pipeline"}),
		runsFinished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "runs_finished_total",
			Help: "Run executions ended, by final state (SUCCEEDED, FAILED, CANCELLED, INTERRUPTED).",
		}, []string{"project", "pipeline", "state"}),
		breakerTrips: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "run_breaker_trips_total",
			Help: "Runs stopped by their circuit breaker (too many node failures in a row).",
		}, []string{"project", "pipeline"}),
		nodeDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "node_duration_seconds",
			Help:    "How long node attempts ran, by how they ended (SUCCEEDED, RETRYING, FAILED, TIMED_OUT, CANCELLED).",
			Buckets: nodeBuckets,
		}, []string{"project", "pipeline", "state"}),
		nodeRetries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "node_retries_total",
			Help: "Node attempts that failed and are retried after a backoff.",
		}, []string{"project", "pipeline"}),
		expectationRows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "expectation_rows_total",
			Help: "Rows a node's expectations and checks counted, by outcome (passed, failed).",
		}, []string{"project", "pipeline", "node", "expectation", "outcome"}),
	}
	m.reg.MustRegister(m.grpc, m.runsStarted, m.runsFinished, m.breakerTrips, m.nodeDuration, m.nodeRetries, m.expectationRows,
		// The Go runtime's figures, with the GC's (go_gc_heap_live_bytes: the heap
		// the last collection found live, what execd really holds).
		collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(collectors.MetricsGC)),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry is where every metric is registered.
func (m *Metrics) Registry() *prometheus.Registry {
	if m == nil {
		return nil
	}
	return m.reg
}

// Engine reads the engine's queue and the store's live watchers at each
// scrape.
func (m *Metrics) Engine(load func() (queued, executing int), watchers func() int) {
	if m == nil {
		return
	}
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: "queue_depth",
			Help: "Runs QUEUED, waiting for admission."},
			func() float64 { q, _ := load(); return float64(q) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: "runs_executing",
			Help: "Runs executing now (RUNNING)."},
			func() float64 { _, x := load(); return float64(x) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: "watchers",
			Help: "WatchRun streams following a run live."},
			func() float64 { return float64(watchers()) }),
	)
}

// Spark reads the Spark backend's health and breaker at each scrape, and
// the embedded server's restarts (restarts is nil with --spark-remote).
func (m *Metrics) Spark(up func() bool, breakerOpen func() bool, restarts func() int) {
	if m == nil {
		return
	}
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: "spark_up",
			Help: "1 while the Spark Connect server can take new runs, else 0."},
			func() float64 { return boolValue(up()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: "spark_breaker_open",
			Help: "1 while the Spark circuit breaker refuses new work after transport failures in a row, else 0."},
			func() float64 { return boolValue(breakerOpen()) }),
	)
	if restarts != nil {
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: namespace, Name: "spark_server_restarts_total",
			Help: "Restarts of the embedded Spark Connect server after it died."},
			func() float64 { return float64(restarts()) }))
	}
}

// Workers reads the Python worker pool at each scrape.
func (m *Metrics) Workers(load func() (busy, idle int), restarts func() uint64) {
	if m == nil {
		return
	}
	const help = "Python node workers running a node (busy) or waiting for one (idle)."
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: "python_workers", Help: help,
			ConstLabels: prometheus.Labels{"state": "busy"}},
			func() float64 { b, _ := load(); return float64(b) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: "python_workers", Help: help,
			ConstLabels: prometheus.Labels{"state": "idle"}},
			func() float64 { _, i := load(); return float64(i) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: namespace, Name: "python_worker_restarts_total",
			Help: "Python workers that exited and were started again."},
			func() float64 { return float64(restarts()) }),
	)
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (m *Metrics) runStarted(r observe.Run) {
	if m != nil {
		m.runsStarted.WithLabelValues(r.Project, r.Pipeline).Inc()
	}
}

func (m *Metrics) runEnded(r observe.Run, end observe.End) {
	if m == nil || !end.State.Terminal() {
		return
	}
	m.runsFinished.WithLabelValues(r.Project, r.Pipeline, string(end.State)).Inc()
	if end.Tripped {
		m.breakerTrips.WithLabelValues(r.Project, r.Pipeline).Inc()
	}
}

func (m *Metrics) attemptEnded(a observe.Attempt, end observe.AttemptEnd) {
	if m == nil {
		return
	}
	m.nodeDuration.WithLabelValues(a.Run.Project, a.Run.Pipeline, string(end.State)).Observe(end.Duration.Seconds())
	if end.State == run.NodeRetrying {
		m.nodeRetries.WithLabelValues(a.Run.Project, a.Run.Pipeline).Inc()
	}
}

func (m *Metrics) expectationsCounted(a observe.Attempt, rs []run.ExpectationResult) {
	if m == nil {
		return
	}
	for _, r := range rs {
		m.expectationRows.WithLabelValues(a.Run.Project, a.Run.Pipeline, a.Node, r.Name, "passed").Add(float64(max(r.Passed, 0)))
		m.expectationRows.WithLabelValues(a.Run.Project, a.Run.Pipeline, a.Node, r.Name, "failed").Add(float64(max(r.Failed, 0)))
	}
}

// serverOptions count every RPC; the interceptors go outermost, so calls
// refused by authentication or validation count too.
func (m *Metrics) serverOptions() []grpc.ServerOption {
	if m == nil {
		return nil
	}
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(m.grpc.UnaryServerInterceptor()),
		grpc.ChainStreamInterceptor(m.grpc.StreamServerInterceptor()),
	}
}

// Handler serves the registry in the Prometheus text (or OpenMetrics)
// format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg, EnableOpenMetrics: true})
}

// Serve answers GET /metrics on lis, and nothing else, until ctx ends.
func (m *Metrics) Serve(ctx context.Context, lis net.Listener, log *slog.Logger) error {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, WriteTimeout: time.Minute,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(lis); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	<-stopped
	return nil
}
