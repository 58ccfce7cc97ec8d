package telemetry

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"

	"go.opentelemetry.io/contrib/exporters/autoexport"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc/filters"
	"go.opentelemetry.io/contrib/propagators/autoprop"
	"go.opentelemetry.io/contrib/propagators/b3"
	"go.opentelemetry.io/otel"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc"
	"google.golang.org/grpc/stats"
)

// Tracing is the process's OpenTelemetry tracing. With no exporter configured it is off:
// a no-op provider and no gRPC instrumentation, so it costs nothing.
type Tracing struct {
	Enabled    bool
	Provider   trace.TracerProvider
	Propagator propagation.TextMapPropagator
	shutdown   func(context.Context) error
}

// SetupTracing configures tracing from the standard OTEL_* environment variables
// (OTEL_TRACES_EXPORTER, OTEL_EXPORTER_OTLP_*, OTEL_TRACES_SAMPLER[_ARG],
// OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, OTEL_PROPAGATORS) and installs it globally.
// The default sampler is parentbased_always_on, so Envoy's sampling decision wins.
// Propagators default to W3C tracecontext, baggage and B3 (single and multi header),
// because Envoy injects whichever its tracer uses.
func SetupTracing(ctx context.Context, version string) (*Tracing, error) {
	t := &Tracing{Provider: noop.NewTracerProvider(), Propagator: defaultPropagator(), shutdown: func(context.Context) error { return nil }}
	if os.Getenv("OTEL_PROPAGATORS") != "" {
		t.Propagator = autoprop.NewTextMapPropagator()
	}
	otel.SetTextMapPropagator(t.Propagator)
	if !exporterConfigured() {
		return t, nil
	}
	exp, err := autoexport.NewSpanExporter(ctx)
	if err != nil {
		return nil, fmt.Errorf("trace exporter: %w", err)
	}
	if autoexport.IsNoneSpanExporter(exp) {
		return t, nil
	}
	res, err := resource.New(ctx, resource.WithFromEnv(), resource.WithTelemetrySDK(),
		resource.WithAttributes(semconv.ServiceVersion(version)))
	if err != nil {
		return nil, fmt.Errorf("trace resource: %w", err)
	}
	if os.Getenv("OTEL_SERVICE_NAME") == "" {
		res, _ = resource.Merge(res, resource.NewSchemaless(semconv.ServiceName("gatehouse")))
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res), sdktrace.WithIDGenerator(idGenerator{}))
	otel.SetTracerProvider(tp)
	t.Enabled, t.Provider, t.shutdown = true, tp, tp.Shutdown
	return t, nil
}

func defaultPropagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{},
		b3.New(b3.WithInjectEncoding(b3.B3MultipleHeader|b3.B3SingleHeader)))
}

// exporterConfigured reports whether the environment asks for a trace exporter at all.
func exporterConfigured() bool {
	for _, k := range []string{"OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"} {
		if os.Getenv(k) != "" {
			return os.Getenv("OTEL_TRACES_EXPORTER") != "none"
		}
	}
	return false
}

// idGenerator draws span and trace ids from math/rand/v2's per-thread ChaCha8 source: no
// lock, unlike the SDK's default generator, which every Check would otherwise contend
// on (ids are made even for spans that are not sampled).
type idGenerator struct{}

func (idGenerator) NewIDs(context.Context) (trace.TraceID, trace.SpanID) {
	var t trace.TraceID
	for !t.IsValid() {
		binary.LittleEndian.PutUint64(t[:8], rand.Uint64())
		binary.LittleEndian.PutUint64(t[8:], rand.Uint64())
	}
	return t, newSpanID()
}

func (idGenerator) NewSpanID(context.Context, trace.TraceID) trace.SpanID { return newSpanID() }

func newSpanID() trace.SpanID {
	var s trace.SpanID
	for !s.IsValid() {
		binary.LittleEndian.PutUint64(s[:], rand.Uint64())
	}
	return s
}

// Shutdown flushes buffered spans.
func (t *Tracing) Shutdown(ctx context.Context) error { return t.shutdown(ctx) }

// ServerOptions instrument a gRPC server: one server span per call whose parent is the
// trace context in the call's metadata; health checks are not traced. None when tracing
// is off.
func (t *Tracing) ServerOptions() []grpc.ServerOption {
	if !t.Enabled {
		return nil
	}
	return []grpc.ServerOption{grpc.StatsHandler(ServerHandler(t.Provider, t.Propagator))}
}

// ServerHandler is the otelgrpc stats handler used by ServerOptions (tests build servers
// with a recording provider through it).
func ServerHandler(tp trace.TracerProvider, prop propagation.TextMapPropagator) stats.Handler {
	// Metrics come from Gatehouse's own Prometheus registry: the handler's are not
	// recorded at all (a no-op meter), which saves work on every call.
	return otelgrpc.NewServerHandler(otelgrpc.WithTracerProvider(tp), otelgrpc.WithPropagators(prop),
		otelgrpc.WithMeterProvider(metricnoop.NewMeterProvider()),
		otelgrpc.WithFilter(filters.Not(filters.HealthCheck())))
}
