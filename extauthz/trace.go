package extauthz

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/gatehouse/gatehouse/policy"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/metadata"
)

// UserParent says what to do with the end user's own trace context (a traceparent or B3
// header in the request Envoy describes).
type UserParent uint8

// The modes.
const (
	// UserParentAsParent makes the user's context the decision span's parent when Envoy
	// sent none in the call's metadata, and links it when both exist and differ.
	UserParentAsParent UserParent = iota
	UserParentLink                // only ever link the user's context
	UserParentOff                 // ignore it
)

// ParseUserParent reads parent, link or off.
func ParseUserParent(s string) (UserParent, error) {
	switch s {
	case "", "parent":
		return UserParentAsParent, nil
	case "link":
		return UserParentLink, nil
	case "off":
		return UserParentOff, nil
	}
	return 0, fmt.Errorf("unknown trace parent mode %q (want parent, link or off)", s)
}

// Tracing records each Check's decision on its span. Make one with NewTracing.
type Tracing struct {
	tracer     trace.Tracer
	propagator propagation.TextMapPropagator
	userParent UserParent
	deviceKey  []byte
	fields     []string // header names the propagator reads, lower-case, baggage excluded
}

// NewTracing returns the decision tracing of a server. deviceKey keys the HMAC that stands
// for a device id in traces: the raw id never appears in a span.
func NewTracing(tracer trace.Tracer, prop propagation.TextMapPropagator, mode UserParent, deviceKey []byte) *Tracing {
	t := &Tracing{tracer: tracer, propagator: prop, userParent: mode, deviceKey: deviceKey}
	for _, f := range prop.Fields() {
		if f = strings.ToLower(f); f != "baggage" {
			t.fields = append(t.fields, f)
		}
	}
	return t
}

// startSpan returns the span that records the decision. Normally that is the gRPC server
// span itself (one span per Check, parented by the trace context in Envoy's metadata), so
// that tracing adds no span of its own. Only when the end user's trace context must become
// the parent (Envoy sent none) is a separate gatehouse.decision span started under it,
// linked to the server span; own reports that case (the caller ends the span).
func (t *Tracing) startSpan(ctx context.Context, in *policy.Input) (_ context.Context, span trace.Span, own bool) {
	server := trace.SpanFromContext(ctx)
	if t.userParent == UserParentOff || !t.hasUserContext(in.Headers) {
		return ctx, server, false
	}
	user := trace.SpanContextFromContext(t.propagator.Extract(context.Background(), propagation.MapCarrier(in.Headers)))
	if !user.IsValid() {
		return ctx, server, false
	}
	md, _ := metadata.FromIncomingContext(ctx)
	envoy := trace.SpanContextFromContext(t.propagator.Extract(context.Background(), metadataCarrier(md)))
	switch {
	case t.userParent == UserParentAsParent && !envoy.IsValid():
		// Envoy is not tracing this request: join the user's trace, and keep a link to
		// the server span that started here.
		var opts []trace.SpanStartOption
		if sc := server.SpanContext(); sc.IsValid() {
			opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc}))
		}
		ctx, span = t.tracer.Start(trace.ContextWithRemoteSpanContext(ctx, user), "gatehouse.decision", opts...)
		return ctx, span, true
	case user.TraceID() != envoy.TraceID():
		server.AddLink(trace.Link{SpanContext: user, Attributes: []attribute.KeyValue{attribute.String("gatehouse.link", "end_user")}})
	}
	return ctx, server, false
}

// hasUserContext reports whether the request carries any header the propagator reads:
// a map lookup or two instead of a full extraction on the common path.
func (t *Tracing) hasUserContext(h map[string]string) bool {
	for _, f := range t.fields {
		if _, ok := h[f]; ok {
			return true
		}
	}
	return false
}

// endSpan records the verdict on the span from startSpan, and ends it when it is the
// span's owner. A denial is a normal outcome; only a failure to decide is a span error.
func (t *Tracing) endSpan(span trace.Span, own bool, in *policy.Input, d *policy.Decision, id, version string) {
	if own {
		defer span.End()
	}
	if !span.IsRecording() {
		return
	}
	decision, status := "allow", 0
	switch d.Outcome {
	case policy.Deny:
		decision, status = "deny", d.Render().Status
	case policy.Served:
		decision = "served"
		if d.Direct != nil {
			status = d.Direct.Status
		}
	case policy.Undecided:
		decision = "error"
		span.SetStatus(otelcodes.Error, "could not decide")
		span.SetAttributes(semconv.ErrorTypeKey.String("undecided"))
	}
	attrs := []attribute.KeyValue{
		attribute.String("gatehouse.decision", decision),
		attribute.String("gatehouse.decision_id", id),
		attribute.String("gatehouse.code", string(d.Code)),
		attribute.String("gatehouse.step", string(d.Step)),
		attribute.String("gatehouse.app", d.App),
		attribute.String("gatehouse.endpoint", d.Endpoint),
		attribute.String("gatehouse.dialect", d.Dialect.String()),
		attribute.Bool("gatehouse.cache_hit", d.CacheHit),
		attribute.String("gatehouse.config.version", version),
		attribute.String("gatehouse.request_id", in.RequestID), // Envoy's x-request-id
	}
	if status != 0 {
		attrs = append(attrs, attribute.Int("gatehouse.http_status", status))
	}
	if d.AttestationProvider != "" {
		attrs = append(attrs, attribute.String("gatehouse.attestation.provider", d.AttestationProvider))
	}
	if d.RateLimit.Limit > 0 {
		attrs = append(attrs, attribute.Int64("gatehouse.ratelimit.limit", d.RateLimit.Limit),
			attribute.Int64("gatehouse.ratelimit.remaining", d.RateLimit.Remaining))
		if d.RateLimit.Name != "" {
			attrs = append(attrs, attribute.String("gatehouse.ratelimit.name", d.RateLimit.Name))
		}
	}
	if d.DeviceID != "" {
		attrs = append(attrs, attribute.String("gatehouse.device.hash", t.hashDevice(d.DeviceID)))
	}
	if d.FailOpen {
		attrs = append(attrs, attribute.Bool("gatehouse.fail_open", true))
	}
	if d.Cause != "" {
		attrs = append(attrs, attribute.String("gatehouse.cause", d.Cause))
	}
	span.SetAttributes(attrs...)
}

// hashDevice is HMAC-SHA256(key, id), truncated to 128 bits: stable for one key, so a
// device's spans can be found, and useless to anyone without the key.
func (t *Tracing) hashDevice(id string) string {
	m := hmac.New(sha256.New, t.deviceKey)
	m.Write([]byte(id))
	return hex.EncodeToString(m.Sum(nil)[:16])
}

// metadataCarrier reads gRPC metadata as a propagation carrier.
type metadataCarrier metadata.MD

func (c metadataCarrier) Get(k string) string {
	if v := metadata.MD(c).Get(k); len(v) > 0 {
		return v[0]
	}
	return ""
}

func (c metadataCarrier) Set(k, v string) { metadata.MD(c).Set(k, v) }

func (c metadataCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}
