package telemetry

import (
	"context"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/tauro-exec/tauro-exec/internal/engine/observe"
	"github.com/tauro-exec/tauro-exec/internal/engine/run"
)

func TestTracingProtocol_OffUnlessTheOTELVariablesAskForIt(t *testing.T) {
	cases := []struct {
		name    string
		env     map[string]string
		want    string
		wantErr string
	}{
		{name: "nothing set is off", env: nil, want: ""},
		{name: "a service name alone is off", env: map[string]string{"OTEL_SERVICE_NAME": "x"}, want: ""},
		{name: "an endpoint turns it on over http/protobuf, the default", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, want: "http/protobuf"},
		{name: "a traces endpoint turns it on", env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, want: "http/protobuf"},
		{name: "otlp exporter turns it on", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, want: "http/protobuf"},
		{name: "grpc protocol", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, want: "grpc"},
		{name: "the traces protocol wins", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"}, want: "http/protobuf"},
		{name: "none wins over an endpoint", env: map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, want: ""},
		{name: "the SDK disabled wins", env: map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, want: ""},
		{name: "an unknown exporter is named", env: map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, wantErr: `OTEL_TRACES_EXPORTER="zipkin"`},
		{name: "http/json is refused", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, wantErr: `OTEL_EXPORTER_OTLP_PROTOCOL="http/json": use grpc or http/protobuf`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tracingProtocol(func(k string) string { return tc.env[k] })
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v; want it to say %s", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("tracingProtocol = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestNew_WithNothingAskedObservesNothingAndAddsNoServerOption(t *testing.T) {
	tel, err := New(context.Background(), Options{Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tel.Observer().(observe.Nop); !ok {
		t.Errorf("Observer() = %T; want observe.Nop when metrics and tracing are off", tel.Observer())
	}
	if opts := tel.ServerOptions(); len(opts) != 0 {
		t.Errorf("%d gRPC server options; want none", len(opts))
	}
	if tel.Metrics() != nil || tel.Tracing() {
		t.Error("metrics or tracing on though nothing asked for them")
	}
	// A nil *Metrics takes the backends' sources and ignores them.
	tel.Metrics().Engine(func() (int, int) { return 0, 0 }, func() int { return 0 })
	tel.Metrics().Spark(func() bool { return true }, func() bool { return false }, nil)
}

func TestObserver_CountsRunsAndAttemptsByProjectPipelineAndState(t *testing.T) {
	tel, err := New(context.Background(), Options{Metrics: true, Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	m, obs := tel.Metrics(), tel.Observer()
	ctx := context.Background()
	r := observe.Run{ID: "run-1", Project: "sales", Pipeline: "daily"}
	ctx = obs.RunQueued(ctx, r)
	obs.RunStarted(ctx, r)
	a := observe.Attempt{Run: r, Node: "load", Kind: "sql", Attempt: 1}
	actx := obs.AttemptStarted(ctx, a)
	obs.AttemptEnded(actx, a, observe.AttemptEnd{State: run.NodeRetrying, Duration: 1500 * time.Millisecond, Error: &run.Error{Type: "Unavailable"}})
	a.Attempt = 2
	actx = obs.AttemptStarted(ctx, a)
	obs.AttemptEnded(actx, a, observe.AttemptEnd{State: run.NodeFailed, Duration: 2 * time.Second, Error: &run.Error{Type: "Unavailable"}})
	obs.RunEnded(ctx, r, observe.End{State: run.Failed, Message: "breaker", Tripped: true})
	// A run left queued at shutdown has not finished.
	left := observe.Run{ID: "run-2", Project: "sales", Pipeline: "daily"}
	obs.RunEnded(obs.RunQueued(context.Background(), left), left, observe.End{State: run.Queued})

	if n := testutil.ToFloat64(m.runsStarted.WithLabelValues("sales", "daily")); n != 1 {
		t.Errorf("runs started %v; want 1", n)
	}
	if n := testutil.ToFloat64(m.runsFinished.WithLabelValues("sales", "daily", "FAILED")); n != 1 {
		t.Errorf("runs finished FAILED %v; want 1", n)
	}
	if n := testutil.CollectAndCount(m.runsFinished); n != 1 {
		t.Errorf("%d runs_finished series; want only FAILED's (the run left QUEUED did not finish)", n)
	}
	if n := testutil.ToFloat64(m.breakerTrips.WithLabelValues("sales", "daily")); n != 1 {
		t.Errorf("breaker trips %v; want 1", n)
	}
	if n := testutil.ToFloat64(m.nodeRetries.WithLabelValues("sales", "daily")); n != 1 {
		t.Errorf("retries %v; want 1", n)
	}
	durations := map[string][2]float64{} // state -> count, sum
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != "tauro_exec_node_duration_seconds" {
			continue
		}
		for _, s := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range s.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["project"] != "sales" || labels["pipeline"] != "daily" {
				t.Errorf("a node duration series with labels %v", labels)
			}
			durations[labels["state"]] = [2]float64{float64(s.GetHistogram().GetSampleCount()), s.GetHistogram().GetSampleSum()}
		}
	}
	if want := map[string][2]float64{"RETRYING": {1, 1.5}, "FAILED": {1, 2}}; !maps.Equal(durations, want) {
		t.Errorf("node durations (count, sum) by state %v; want %v", durations, want)
	}
}

func TestObserver_SpansARunAndItsAttemptsWithTheirSparkOperations(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tel := &Telemetry{tracing: tracingWith(sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp)))}
	obs := tel.Observer()

	r := observe.Run{ID: "run-1", Pipeline: "daily", Env: "dev", Recovered: true}
	ctx := obs.RunQueued(context.Background(), r)
	obs.RunStarted(ctx, r)
	a := observe.Attempt{Run: r, Node: "load", Kind: "sql", Attempt: 1}
	actx := obs.AttemptStarted(ctx, a)
	observe.SparkOperation(actx, "op-1")
	observe.SparkOperation(actx, "op-2")
	obs.AttemptEnded(actx, a, observe.AttemptEnd{State: run.NodeRetrying, Duration: time.Second, Error: &run.Error{Type: "Unavailable", Message: "spark went away"}})
	a.Attempt = 2
	actx = obs.AttemptStarted(ctx, a)
	obs.AttemptEnded(actx, a, observe.AttemptEnd{State: run.NodeSucceeded, Duration: time.Second})
	obs.RunEnded(ctx, r, observe.End{State: run.Succeeded})

	spans := exp.GetSpans()
	if len(spans) != 3 {
		t.Fatalf("%d spans; want the run's and its 2 attempts'", len(spans))
	}
	first, second, runSpan := spans[0], spans[1], spans[2]
	if runSpan.Name != "run daily" || runSpan.Parent.IsValid() {
		t.Errorf("run span %q with parent %v; a recovered run's span has no parent", runSpan.Name, runSpan.Parent)
	}
	for _, s := range []tracetest.SpanStub{first, second} {
		if s.Name != "node load" || s.Parent.SpanID() != runSpan.SpanContext.SpanID() || s.SpanContext.TraceID() != runSpan.SpanContext.TraceID() {
			t.Errorf("attempt span %q is not a child of the run span", s.Name)
		}
	}
	attrs := func(s tracetest.SpanStub) map[string]string {
		out := map[string]string{}
		for _, kv := range s.Attributes {
			out[string(kv.Key)] = kv.Value.Emit()
		}
		return out
	}
	if got := attrs(first); got["tauro.attempt"] != "1" || got["tauro.node.state"] != "RETRYING" || got["spark.operation_ids"] != `["op-1","op-2"]` || got["tauro.error.type"] != "Unavailable" {
		t.Errorf("first attempt's attributes %v", got)
	}
	if first.Status.Code != codes.Error || !strings.Contains(first.Status.Description, "spark went away") {
		t.Errorf("first attempt's status %+v; want an error saying why", first.Status)
	}
	if len(first.Events) != 2 || first.Events[0].Name != "spark operation" {
		t.Errorf("first attempt's events %+v; want one per Spark operation", first.Events)
	}
	if got := attrs(second); got["tauro.attempt"] != "2" || got["tauro.node.state"] != "SUCCEEDED" || second.Status.Code == codes.Error {
		t.Errorf("second attempt: attributes %v, status %+v", got, second.Status)
	}
	if got := attrs(runSpan); got["tauro.run.id"] != "run-1" || got["tauro.run.state"] != "SUCCEEDED" || got["tauro.run.recovered"] != "true" {
		t.Errorf("run span's attributes %v", got)
	}
}

func TestObserver_CountsExpectationRowsByNodeExpectationAndOutcome(t *testing.T) {
	tel, err := New(context.Background(), Options{Metrics: true, Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	m, obs := tel.Metrics(), tel.Observer()
	a := observe.Attempt{Run: observe.Run{ID: "run-1", Project: "sales", Pipeline: "daily"}, Node: "clean", Attempt: 1}
	actx := obs.AttemptStarted(context.Background(), a)
	// Two micro-batches of one streaming attempt add up.
	for range 2 {
		observe.ExpectationsCounted(actx, []run.ExpectationResult{{Name: "positive", Kind: "drop", Passed: 90, Failed: 10}})
	}
	if n := testutil.ToFloat64(m.expectationRows.WithLabelValues("sales", "daily", "clean", "positive", "passed")); n != 180 {
		t.Errorf("passed = %v; want 180", n)
	}
	if n := testutil.ToFloat64(m.expectationRows.WithLabelValues("sales", "daily", "clean", "positive", "failed")); n != 20 {
		t.Errorf("failed = %v; want 20", n)
	}
}
