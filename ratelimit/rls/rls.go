// Package rls serves envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit over the
// ratelimit engine. It is the only package of the limiter that sees protobufs and gRPC:
// it converts the request into a ratelimit.RLSRequest, asks the current engine, and
// converts the verdict back (both conversions are pure functions).
package rls

import (
	"context"
	"errors"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/gatehouse/gatehouse/ratelimit"
)

// OverLimitBody is the documented ProtectMyAPI body of a 429 (000_*.txt).
const OverLimitBody = `{"success":false,"error":{"code":"RATE_LIMITED","message":"Too many requests"}}`

// Server implements the rate-limit service.
type Server struct {
	rlsv3.UnimplementedRateLimitServiceServer
	current func() *ratelimit.Engine
	clock   ratelimit.Clock
	// Observe, when set, is told of every answered call (metrics).
	Observe func(domain string, overLimit bool, took time.Duration)
}

// New returns a server that asks current() (one atomic load of the compiled snapshot,
// handed in by main) once per request. clock is the time source (ratelimit.SystemClock
// when nil).
func New(current func() *ratelimit.Engine, clock ratelimit.Clock) *Server {
	if clock == nil {
		clock = ratelimit.SystemClock
	}
	return &Server{current: current, clock: clock}
}

// Register adds the service to g.
func (s *Server) Register(g grpc.ServiceRegistrar) { rlsv3.RegisterRateLimitServiceServer(g, s) }

// ShouldRateLimit implements rlsv3.RateLimitServiceServer. A gRPC error UNAVAILABLE
// means the verdict could not be reached, so that Envoy's failure_mode_deny decides;
// INVALID_ARGUMENT, that the request is past the configured bounds (descriptors, entries,
// bytes); UNKNOWN, that its domain or its descriptor list is empty (envoyproxy/ratelimit's
// code and message).
func (s *Server) ShouldRateLimit(ctx context.Context, req *rlsv3.RateLimitRequest) (*rlsv3.RateLimitResponse, error) {
	e := s.current()
	if e == nil {
		return nil, status.Error(codes.Unavailable, "ratelimit: no configuration loaded")
	}
	now := s.clock()
	span := trace.SpanFromContext(ctx)
	res, err := e.ShouldRateLimit(ctx, now, FromProto(req))
	if errors.Is(err, ratelimit.ErrEmptyRequest) { // as envoyproxy/ratelimit: a plain error, UNKNOWN
		span.SetStatus(otelcodes.Error, "empty request")
		return nil, status.Error(codes.Unknown, err.Error())
	}
	if errors.Is(err, ratelimit.ErrInvalidRequest) {
		span.SetStatus(otelcodes.Error, "invalid request")
		span.SetAttributes(semconv.ErrorTypeKey.String("invalid_request"))
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if err != nil {
		span.SetStatus(otelcodes.Error, "could not decide")
		if errors.Is(err, context.Canceled) {
			span.SetAttributes(semconv.ErrorTypeKey.String("canceled"))
			return nil, status.Error(codes.Canceled, err.Error())
		}
		span.SetAttributes(semconv.ErrorTypeKey.String("unavailable"))
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	if span.IsRecording() {
		annotate(span, req, res)
	}
	if s.Observe != nil {
		s.Observe(req.GetDomain(), res.OverLimit, s.clock().Sub(now))
	}
	return ToProto(res, now), nil
}

// annotate records the verdict on the call's server span: domain, descriptor count,
// overall code, and the limit that was hit. Descriptor values (device ids…) are not
// recorded.
func annotate(span trace.Span, req *rlsv3.RateLimitRequest, res ratelimit.RLSResponse) {
	code := "OK"
	if res.OverLimit {
		code = "OVER_LIMIT"
	}
	attrs := []attribute.KeyValue{
		attribute.String("gatehouse.rls.domain", req.GetDomain()),
		attribute.Int("gatehouse.rls.descriptors", len(req.GetDescriptors())),
		attribute.String("gatehouse.rls.overall_code", code),
	}
	for _, st := range res.Statuses {
		if st.OverLimit && st.Limit != nil {
			attrs = append(attrs, attribute.String("gatehouse.rls.limit_hit", st.Limit.Name),
				attribute.Int64("gatehouse.rls.limit", int64(st.Limit.RequestsPerUnit)))
			break
		}
	}
	span.SetAttributes(attrs...)
}

// FromProto converts a request.
func FromProto(req *rlsv3.RateLimitRequest) ratelimit.RLSRequest {
	out := ratelimit.RLSRequest{
		Domain:      req.GetDomain(),
		HitsAddend:  uint64(req.GetHitsAddend()),
		Descriptors: make([]ratelimit.RLSDescriptor, len(req.GetDescriptors())),
	}
	for i, d := range req.GetDescriptors() {
		rd := ratelimit.RLSDescriptor{Entries: make([]ratelimit.RLSEntry, len(d.GetEntries()))}
		for j, en := range d.GetEntries() {
			rd.Entries[j] = ratelimit.RLSEntry{Key: en.GetKey(), Value: en.GetValue()}
		}
		if l := d.GetLimit(); l != nil {
			rd.Limit = &ratelimit.RLSOverride{RequestsPerUnit: l.GetRequestsPerUnit(), Unit: ratelimit.Unit(l.GetUnit())}
		}
		if h := d.GetHitsAddend(); h != nil {
			v := h.GetValue()
			rd.HitsAddend = &v
		}
		rd.NegativeHits = d.GetIsNegativeHits()
		out.Descriptors[i] = rd
	}
	return out
}

// ToProto converts a verdict; now dates the X-RateLimit-Reset header.
func ToProto(res ratelimit.RLSResponse, now time.Time) *rlsv3.RateLimitResponse {
	out := &rlsv3.RateLimitResponse{
		OverallCode: rlsv3.RateLimitResponse_OK, // never UNKNOWN: release Envoys read it as OK anyway
		Statuses:    make([]*rlsv3.RateLimitResponse_DescriptorStatus, len(res.Statuses)),
	}
	if res.OverLimit {
		out.OverallCode = rlsv3.RateLimitResponse_OVER_LIMIT
	}
	for i, st := range res.Statuses {
		ds := &rlsv3.RateLimitResponse_DescriptorStatus{Code: rlsv3.RateLimitResponse_OK, LimitRemaining: st.Remaining}
		if st.OverLimit {
			ds.Code = rlsv3.RateLimitResponse_OVER_LIMIT
		}
		if l := st.Limit; l != nil {
			ds.CurrentLimit = &rlsv3.RateLimitResponse_RateLimit{
				Name:            l.Name,
				RequestsPerUnit: l.RequestsPerUnit,
				Unit:            rlsv3.RateLimitResponse_RateLimit_Unit(l.Unit),
			}
			if l.Multiplier > 1 {
				ds.CurrentLimit.UnitMultiplier = wrapperspb.UInt32(l.Multiplier)
			}
			ds.DurationUntilReset = durationpb.New(st.UntilReset)
		}
		out.Statuses[i] = ds
	}
	if res.AddHeaders {
		out.ResponseHeadersToAdd = rateLimitHeaders(res)
	}
	if res.OverLimit {
		out.RawBody = []byte(OverLimitBody)
		out.ResponseHeadersToAdd = append(out.ResponseHeadersToAdd,
			&core.HeaderValue{Key: "content-type", Value: "application/json"})
	}
	return out
}

// rateLimitHeaders renders the headers of the limit the client is told about, which the
// engine picked (RLSResponse.RateLimit), as policy.LimitResult.Headers spells them.
func rateLimitHeaders(res ratelimit.RLSResponse) []*core.HeaderValue {
	h := res.RateLimit.Headers()
	if h.Limit == "" {
		return nil
	}
	hs := make([]*core.HeaderValue, 0, 4)
	hs = append(hs, &core.HeaderValue{Key: "X-RateLimit-Limit", Value: h.Limit},
		&core.HeaderValue{Key: "X-RateLimit-Remaining", Value: h.Remaining})
	if h.Reset != "" {
		hs = append(hs, &core.HeaderValue{Key: "X-RateLimit-Reset", Value: h.Reset})
	}
	if h.RetryAfter != "" {
		hs = append(hs, &core.HeaderValue{Key: "Retry-After", Value: h.RetryAfter})
	}
	return hs
}
