package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/telemetry"
)

// startTelemetry sets up metrics (with --metrics-listen) and tracing (with
// OTEL_*), and serves /metrics on its own listener until ctx ends. The
// address goes to stdout, as the gRPC one does, for scripts using port 0.
func startTelemetry(ctx context.Context, cfg serveConfig, log *slog.Logger) (*telemetry.Telemetry, error) {
	tel, err := telemetry.New(ctx, telemetry.Options{Metrics: cfg.metricsListen != "", Logger: log})
	if err != nil {
		return nil, err
	}
	if cfg.metricsListen == "" {
		return tel, nil
	}
	lis, err := net.Listen("tcp", cfg.metricsListen)
	if err != nil {
		return nil, fmt.Errorf("--metrics-listen %s: %w", cfg.metricsListen, err)
	}
	go func() {
		if err := tel.Metrics().Serve(ctx, lis, log); err != nil {
			log.Error("the metrics endpoint stopped", "err", err)
		}
	}()
	log.Info("metrics served", "url", "http://"+lis.Addr().String()+"/metrics")
	fmt.Printf("execd metrics on %s\n", lis.Addr())
	return tel, nil
}

// exportMetrics hands the metrics what the backends keep, read at each
// scrape.
func (b *backend) exportMetrics(m *telemetry.Metrics, projects *projectSet) {
	var restarts func() int
	if b.srv != nil {
		restarts = b.srv.Restarts
	}
	m.Spark(func() bool { return b.health.Ready() == nil }, b.BreakerOpen, restarts)
	if projects.hasWorkers() {
		m.Workers(projects.load, projects.restarts)
	}
}

// shutdownTelemetry exports the spans still buffered, the ended runs'
// among them, within a few seconds.
func shutdownTelemetry(tel *telemetry.Telemetry, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tel.Shutdown(ctx); err != nil {
		log.Warn("exporting the last spans", "err", err)
	}
}
