package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	execv1 "github.com/tauro-exec/tauro-exec/gen/tauro/exec/v1"
	"github.com/tauro-exec/tauro-exec/internal/spark/server/sparktest"
)

// collector is a real OTLP/gRPC trace receiver that keeps what it is sent.
type collector struct {
	collectortrace.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans []receivedSpan
}

type receivedSpan struct {
	service string // the resource's service.name
	*tracepb.Span
}

func (c *collector) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	c.keep(req)
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

func (c *collector) keep(req *collectortrace.ExportTraceServiceRequest) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		service := attr(rs.GetResource().GetAttributes(), "service.name").GetStringValue()
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				c.spans = append(c.spans, receivedSpan{service: service, Span: s})
			}
		}
	}
}

// ServeHTTP is the OTLP/HTTP receiver: protobuf requests POSTed to
// /v1/traces.
func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
		http.Error(w, "want a protobuf POST to /v1/traces", http.StatusNotFound)
		return
	}
	body, err := io.ReadAll(r.Body)
	var req collectortrace.ExportTraceServiceRequest
	if err == nil {
		err = proto.Unmarshal(body, &req)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c.keep(&req)
	out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

func (c *collector) received() []receivedSpan {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.spans)
}

// startCollector serves a collector on a free loopback port, over OTLP's
// protocol ("grpc" or "http/protobuf").
func startCollector(t *testing.T, protocol string) (*collector, string) {
	t.Helper()
	c := &collector{}
	if protocol == "http/protobuf" {
		srv := httptest.NewServer(c)
		t.Cleanup(srv.Close)
		return c, srv.Listener.Addr().String()
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(srv, c)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return c, lis.Addr().String()
}

func attr(attrs []*commonpb.KeyValue, key string) *commonpb.AnyValue {
	for _, kv := range attrs {
		if kv.GetKey() == key {
			return kv.GetValue()
		}
	}
	return nil
}

func TestTracing_ARunsSpansReachTheCollectorUnderTheCallersTrace(t *testing.T) {
	for _, protocol := range []string{"grpc", "http/protobuf"} {
		t.Run(strings.ReplaceAll(protocol, "/", "_"), func(t *testing.T) { traceARun(t, protocol) })
	}
}

func traceARun(t *testing.T, protocol string) {
	col, addr := startCollector(t, protocol)
	env := []string{
		"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + addr,
		"OTEL_EXPORTER_OTLP_PROTOCOL=" + protocol,
		"OTEL_SERVICE_NAME=execd-under-test",
		"OTEL_BSP_SCHEDULE_DELAY=200", // export within a fraction of a second
	}
	project, state := copyProject(t, "sqlproj"), t.TempDir()
	d := launchEnv(t, env, project, state, "--spark-remote", sparktest.Remote(t), "--workers", "0")
	cl := d.client(t)
	ctx := testCtx(t, 3*time.Minute)

	// The caller's span, as an instrumented client (or grpcurl -H) sends it.
	const callerTrace, callerSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	cctx := metadata.AppendToOutgoingContext(ctx, "traceparent", "00-"+callerTrace+"-"+callerSpan+"-01")
	runID := startRun(cctx, t, cl, &execv1.ExecutePipelineRequest{Pipeline: "quick"})
	events := collect(ctx, t, cl, runID, 0)
	if rs := events[len(events)-1].GetRunStateChanged(); rs.GetState() != execv1.RunState_RUN_STATE_SUCCEEDED {
		t.Fatalf("run ended %v: %s\n%s", rs.GetState(), rs.GetMessage(), d.Logs())
	}

	nodes := []string{"numbers", "evens", "odds", "summary"}
	var runSpan *receivedSpan
	var nodeSpans []receivedSpan
	var spans []receivedSpan
	for {
		spans = col.received()
		runSpan, nodeSpans = nil, nil
		for i, s := range spans {
			if attr(s.GetAttributes(), "tauro.run.id").GetStringValue() != runID {
				continue
			}
			switch {
			case strings.HasPrefix(s.GetName(), "run "):
				runSpan = &spans[i]
			case strings.HasPrefix(s.GetName(), "node "):
				nodeSpans = append(nodeSpans, s)
			}
		}
		if runSpan != nil && len(nodeSpans) >= len(nodes) {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the collector got %d spans, without the run's span and its %d node spans:\n%s", len(spans), len(nodes), describeSpans(spans))
		case <-time.After(100 * time.Millisecond):
		}
	}

	hexID := func(b []byte) string { return hex.EncodeToString(b) }
	if got := hexID(runSpan.GetTraceId()); got != callerTrace {
		t.Errorf("run span trace %s; want the caller's %s", got, callerTrace)
	}
	if runSpan.service != "execd-under-test" {
		t.Errorf("service.name %q; want OTEL_SERVICE_NAME's", runSpan.service)
	}
	if got := runSpan.GetName(); got != "run quick" {
		t.Errorf("run span named %q", got)
	}
	if st := attr(runSpan.GetAttributes(), "tauro.run.state").GetStringValue(); st != "SUCCEEDED" {
		t.Errorf("run span tauro.run.state %q", st)
	}
	// The run's parent is the server span of the ExecutePipeline call that
	// started it, whose parent is the caller's span.
	var server *receivedSpan
	for i, s := range spans {
		if hexID(s.GetSpanId()) == hexID(runSpan.GetParentSpanId()) {
			server = &spans[i]
		}
	}
	switch {
	case server == nil:
		t.Errorf("the run span's parent %s was not received:\n%s", hexID(runSpan.GetParentSpanId()), describeSpans(spans))
	default:
		if server.GetName() != "tauro.exec.v1.ExecService/ExecutePipeline" || server.GetKind() != tracepb.Span_SPAN_KIND_SERVER {
			t.Errorf("the run span's parent is %s (%v); want the ExecutePipeline server span", server.GetName(), server.GetKind())
		}
		if got := hexID(server.GetParentSpanId()); got != callerSpan {
			t.Errorf("the ExecutePipeline span's parent is %s; want the caller's span %s", got, callerSpan)
		}
	}

	var seen []string
	for _, s := range nodeSpans {
		node := attr(s.GetAttributes(), "tauro.node").GetStringValue()
		seen = append(seen, node)
		if got, want := hexID(s.GetParentSpanId()), hexID(runSpan.GetSpanId()); got != want {
			t.Errorf("node %s's span has parent %s; want the run span %s", node, got, want)
		}
		if hexID(s.GetTraceId()) != callerTrace {
			t.Errorf("node %s's span is in trace %s", node, hexID(s.GetTraceId()))
		}
		if s.GetName() != "node "+node {
			t.Errorf("node span named %q for node %q", s.GetName(), node)
		}
		if p := attr(s.GetAttributes(), "tauro.pipeline").GetStringValue(); p != "quick" {
			t.Errorf("node %s: tauro.pipeline %q", node, p)
		}
		if p := attr(s.GetAttributes(), "tauro.project").GetStringValue(); p != "sqlproj" {
			t.Errorf("node %s: tauro.project %q", node, p)
		}
		if a := attr(s.GetAttributes(), "tauro.attempt").GetIntValue(); a != 1 {
			t.Errorf("node %s: tauro.attempt %d; want 1", node, a)
		}
		if st := attr(s.GetAttributes(), "tauro.node.state").GetStringValue(); st != "SUCCEEDED" {
			t.Errorf("node %s: tauro.node.state %q", node, st)
		}
		ops := attr(s.GetAttributes(), "spark.operation_ids").GetArrayValue().GetValues()
		if len(ops) == 0 {
			t.Errorf("node %s: no spark.operation_ids", node)
		}
		for _, op := range ops {
			if len(op.GetStringValue()) != 36 {
				t.Errorf("node %s: operation id %q is not a UUID", node, op.GetStringValue())
			}
		}
		if s.GetStartTimeUnixNano() < runSpan.GetStartTimeUnixNano() || s.GetEndTimeUnixNano() > runSpan.GetEndTimeUnixNano() {
			t.Errorf("node %s's span is not within the run's", node)
		}
	}
	t.Logf("spans:\n%s", describeSpans(spans))
	slices.Sort(seen)
	if want := slices.Sorted(slices.Values(nodes)); !slices.Equal(seen, want) {
		t.Errorf("node spans for %v; want one each for %v", seen, want)
	}
}

func describeSpans(spans []receivedSpan) string {
	var b strings.Builder
	for _, s := range spans {
		fmt.Fprintf(&b, "  %s trace=%x span=%x parent=%x\n", s.GetName(), s.GetTraceId(), s.GetSpanId(), s.GetParentSpanId())
	}
	return b.String()
}
