package telemetry

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/tauro-exec/tauro-exec/internal/engine/observe"
	"github.com/tauro-exec/tauro-exec/internal/engine/run"
)

// Tracing is off unless the standard OTel variables ask for it. The
// specification's default exporter is otlp; execd's is none, so a daemon
// started without OTEL_* costs nothing and sends nothing anywhere.

// tracingProtocol decides from the OTEL_* variables whether traces are
// exported, and over which OTLP protocol ("grpc" or "http/protobuf");
// "" means tracing is off.
func tracingProtocol(getenv func(string) string) (string, error) {
	if v := strings.TrimSpace(getenv("OTEL_SDK_DISABLED")); strings.EqualFold(v, "true") {
		return "", nil
	}
	switch exp := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")); exp {
	case "none":
		return "", nil
	case "":
		if getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
			return "", nil
		}
	case "otlp":
	default:
		return "", fmt.Errorf("OTEL_TRACES_EXPORTER=%q: execd exports traces with otlp only; set otlp, or none to turn tracing off", exp)
	}
	name, proto := "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"))
	if proto == "" {
		name, proto = "OTEL_EXPORTER_OTLP_PROTOCOL", strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_PROTOCOL"))
	}
	switch proto {
	case "":
		return "http/protobuf", nil // the specification's default
	case "grpc", "http/protobuf":
		return proto, nil
	}
	return "", fmt.Errorf("%s=%q: use grpc or http/protobuf", name, proto)
}

// tracing exports spans to an OTLP collector.
type tracing struct {
	tp     *sdktrace.TracerProvider
	tracer trace.Tracer
	// prop reads and writes W3C trace context and baggage.
	prop propagation.TextMapPropagator
}

// newTracing starts the exporter protocol names. The exporters read their
// endpoint, headers, TLS, compression and timeout from the OTEL_EXPORTER_OTLP_*
// variables; the SDK reads the sampler (OTEL_TRACES_SAMPLER) and the batch
// processor's settings (OTEL_BSP_*); the resource takes OTEL_SERVICE_NAME
// and OTEL_RESOURCE_ATTRIBUTES.
func newTracing(ctx context.Context, protocol string) (*tracing, error) {
	var (
		exp sdktrace.SpanExporter
		err error
	)
	if protocol == "grpc" {
		exp, err = otlptracegrpc.New(ctx)
	} else {
		exp, err = otlptracehttp.New(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("OTLP trace exporter (%s): %w", protocol, err)
	}
	res, err := resource.New(ctx, resource.WithAttributes(attribute.String("service.name", "execd")), resource.WithTelemetrySDK(), resource.WithHost(),
		resource.WithProcessPID(), resource.WithFromEnv())
	if err != nil {
		return nil, fmt.Errorf("trace resource from OTEL_RESOURCE_ATTRIBUTES/OTEL_SERVICE_NAME: %w", err)
	}
	return tracingWith(sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))), nil
}

func tracingWith(tp *sdktrace.TracerProvider) *tracing {
	return &tracing{
		tp:     tp,
		tracer: tp.Tracer("github.com/tauro-exec/tauro-exec/internal/telemetry"),
		prop:   propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
	}
}

// Span attributes.
const (
	attrRunID      = attribute.Key("tauro.run.id")
	attrPipeline   = attribute.Key("tauro.pipeline")
	attrProject    = attribute.Key("tauro.project")
	attrEnv        = attribute.Key("tauro.env")
	attrRepair     = attribute.Key("tauro.run.repair")
	attrRecovered  = attribute.Key("tauro.run.recovered")
	attrRunState   = attribute.Key("tauro.run.state")
	attrNode       = attribute.Key("tauro.node")
	attrNodeKind   = attribute.Key("tauro.node.kind")
	attrAttempt    = attribute.Key("tauro.attempt")
	attrNodeState  = attribute.Key("tauro.node.state")
	attrErrorType  = attribute.Key("tauro.error.type")
	attrOperation  = attribute.Key("spark.operation_id")
	attrOperations = attribute.Key("spark.operation_ids")
)

type runSpanKey struct{}

type attemptSpanKey struct{}

// attemptSpan is a node attempt's span and the Spark operations it sent.
type attemptSpan struct {
	span trace.Span
	mu   sync.Mutex
	ops  []string
}

func (a *attemptSpan) operation(id string) {
	a.span.AddEvent("spark operation", trace.WithAttributes(attrOperation.String(id)))
	a.mu.Lock()
	a.ops = append(a.ops, id)
	a.mu.Unlock()
}

// runQueued starts the run's span, a child of whatever span ctx carries
// (the ExecutePipeline or RepairRun server span, itself the child of the
// caller's traceparent). A run queued by a previous execd has no parent.
func (t *tracing) runQueued(ctx context.Context, r observe.Run) context.Context {
	_, span := t.tracer.Start(ctx, "run "+r.Pipeline, trace.WithAttributes(
		attrRunID.String(r.ID), attrProject.String(r.Project), attrPipeline.String(r.Pipeline), attrEnv.String(r.Env),
		attrRepair.Bool(r.Repair), attrRecovered.Bool(r.Recovered)))
	ctx = trace.ContextWithSpan(context.Background(), span)
	return context.WithValue(ctx, runSpanKey{}, span)
}

func (t *tracing) runStarted(ctx context.Context) {
	if span, ok := ctx.Value(runSpanKey{}).(trace.Span); ok {
		span.AddEvent("admitted")
	}
}

func (t *tracing) runEnded(ctx context.Context, end observe.End) {
	span, ok := ctx.Value(runSpanKey{}).(trace.Span)
	if !ok {
		return
	}
	span.SetAttributes(attrRunState.String(string(end.State)))
	if end.State == run.Failed {
		span.SetStatus(codes.Error, end.Message)
	} else if end.Message != "" {
		span.AddEvent(end.Message)
	}
	span.End()
}

func (t *tracing) attemptStarted(ctx context.Context, a observe.Attempt) context.Context {
	ctx, span := t.tracer.Start(ctx, "node "+a.Node, trace.WithAttributes(
		attrRunID.String(a.Run.ID), attrProject.String(a.Run.Project), attrPipeline.String(a.Run.Pipeline), attrNode.String(a.Node),
		attrNodeKind.String(a.Kind), attrAttempt.Int(a.Attempt)))
	as := &attemptSpan{span: span}
	ctx = context.WithValue(ctx, attemptSpanKey{}, as)
	return observe.WithSparkOperations(ctx, as.operation)
}

func (t *tracing) attemptEnded(ctx context.Context, end observe.AttemptEnd) {
	as, ok := ctx.Value(attemptSpanKey{}).(*attemptSpan)
	if !ok {
		return
	}
	as.mu.Lock()
	ops := append([]string(nil), as.ops...)
	as.mu.Unlock()
	as.span.SetAttributes(attrNodeState.String(string(end.State)), attrOperations.StringSlice(ops))
	if end.Error != nil {
		as.span.SetAttributes(attrErrorType.String(end.Error.Type))
		msg := end.Error.Message
		if end.State == run.NodeRetrying {
			msg = "retried: " + msg
		}
		as.span.SetStatus(codes.Error, msg)
	}
	as.span.End()
}

func (t *tracing) shutdown(ctx context.Context) error {
	return t.tp.Shutdown(ctx)
}
