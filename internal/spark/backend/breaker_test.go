package backend_test

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tauro-exec/tauro-exec/internal/engine"
	"github.com/tauro-exec/tauro-exec/internal/engine/plan"
	sparkbackend "github.com/tauro-exec/tauro-exec/internal/spark/backend"
)

func TestBackend_TransportFailuresInARowOpenTheBreakerForNewRuns(t *testing.T) {
	// A port nothing listens on: every connection is refused.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	b := sparkbackend.New(func() string { return "sc://" + addr }, func() error { return nil }, slog.New(slog.DiscardHandler))
	rc := engine.RunContext{RunID: "r", Pipeline: &plan.Pipeline{}}
	for i := 0; i < sparkbackend.BreakerPolicy.Threshold; i++ {
		if err := b.Ready(); err != nil {
			t.Fatalf("breaker open after %d failures: %v", i, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		_, err := b.OpenRun(ctx, rc)
		cancel()
		if err == nil {
			t.Fatal("opening a run on a closed port succeeded")
		}
	}
	if err := b.Ready(); err == nil || !strings.Contains(err.Error(), "circuit breaker open") {
		t.Fatalf("after %d refused connections Ready() = %v", sparkbackend.BreakerPolicy.Threshold, err)
	}
	if !b.BreakerOpen() {
		t.Error("BreakerOpen() = false while Ready() says the breaker is open")
	}
}
