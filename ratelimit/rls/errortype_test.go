package rls_test

import (
	"context"
	"testing"

	common "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/gatehouse/gatehouse/ratelimit"
	"github.com/gatehouse/gatehouse/ratelimit/rls"
)

// TestErrorSpanType: a refused request marks the call's span Error with
// error.type=invalid_request; an answered one sets neither.
func TestErrorSpanType(t *testing.T) {
	store, err := ratelimit.OpenStore(context.Background(), ratelimit.StoreConfig{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	e, err := ratelimit.Compile(ratelimit.CompileInput{RLS: ratelimit.RLSConfig{MaxDescriptors: 1}}, store)
	if err != nil {
		t.Fatal(err)
	}
	srv := rls.New(func() *ratelimit.Engine { return e }, nil)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	for _, tc := range []struct {
		name    string
		ds      []*common.RateLimitDescriptor
		errType string
	}{
		{"1 descriptor: answered", []*common.RateLimitDescriptor{desc("a", "1")}, ""},
		{"2 descriptors: refused", []*common.RateLimitDescriptor{desc("a", "1"), desc("b", "2")}, "invalid_request"},
	} {
		ctx, span := tp.Tracer("test").Start(context.Background(), tc.name)
		srv.ShouldRateLimit(ctx, &rlsv3.RateLimitRequest{Domain: "d", Descriptors: tc.ds})
		span.End()
		s := rec.Ended()[len(rec.Ended())-1]
		got := ""
		for _, a := range s.Attributes() {
			if a.Key == "error.type" {
				got = a.Value.AsString()
			}
		}
		if got != tc.errType {
			t.Errorf("%s: error.type %q, want %q", tc.name, got, tc.errType)
		}
		if isErr := s.Status().Code == codes.Error; isErr != (tc.errType != "") {
			t.Errorf("%s: status %v", tc.name, s.Status())
		}
	}
}
