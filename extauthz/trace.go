package extauthz

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/gatehouse/gatehouse/policy"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
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

// Tracing configures the decision span each Check records.
type Tracing struct {
	Tracer     trace.Tracer
	Propagator propagation.TextMapPropagator
	UserParent UserParent
	// DeviceKey keys the HMAC that stands for a device id in traces: the raw id never
	// appears in a span.
	DeviceKey []byte
}

// startSpan opens the decision span under the right parent.
func (t *Tracing) startSpan(ctx context.Context, in *policy.Input) (context.Context, trace.Span) {
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindInternal)}
	if t.UserParent != UserParentOff {
		user := trace.SpanContextFromContext(t.Propagator.Extract(context.Background(), propagation.MapCarrier(in.Headers)))
		if user.IsValid() {
			md, _ := metadata.FromIncomingContext(ctx)
			envoy := trace.SpanContextFromContext(t.Propagator.Extract(context.Background(), metadataCarrier(md)))
			switch {
			case t.UserParent == UserParentAsParent && !envoy.IsValid():
				// Envoy is not tracing this request: join the user's trace, and keep a
				// link to the server span that started here.
				if server := trace.SpanContextFromContext(ctx); server.IsValid() {
					opts = append(opts, trace.WithLinks(trace.Link{SpanContext: server}))
				}
				ctx = trace.ContextWithRemoteSpanContext(ctx, user)
			case user.TraceID() != envoy.TraceID():
				opts = append(opts, trace.WithLinks(trace.Link{SpanContext: user,
					Attributes: []attribute.KeyValue{attribute.String("gatehouse.link", "end_user")}}))
			}
		}
	}
	return t.Tracer.Start(ctx, "gatehouse.decision", opts...)
}

// endSpan records the verdict on the decision span. A denial is a normal outcome; only a
// failure to decide is a span error.
func (t *Tracing) endSpan(span trace.Span, in *policy.Input, d *policy.Decision, id, version string) {
	defer span.End()
	if !span.IsRecording() {
		return
	}
	decision, status := "allow", 0
	switch d.Outcome {
	case policy.Deny:
		decision, status = "deny", d.Render().Status
	case policy.Undecided:
		decision = "error"
		span.SetStatus(otelcodes.Error, "could not decide")
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
		attribute.String("envoy.request_id", in.RequestID),
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
	m := hmac.New(sha256.New, t.DeviceKey)
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
