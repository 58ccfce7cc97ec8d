package extauthz

import (
	"context"
	"testing"

	"github.com/gatehouse/gatehouse/policy"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// TestEndSpanErrorTypeAndRequestID: a decision that could not be made marks the span
// Error with error.type=undecided; a denial is a verdict and sets neither. The request id
// is under Gatehouse's namespace (gatehouse.request_id), not a name of its own.
func TestEndSpanErrorTypeAndRequestID(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	tr := NewTracing(tp.Tracer("test"), propagation.TraceContext{}, UserParentOff, []byte("k"))
	for _, tc := range []struct {
		name    string
		d       policy.Decision
		errType string
	}{
		{"undecided", policy.Decision{Outcome: policy.Undecided, Step: policy.StepIdentity}, "undecided"},
		{"deny", policy.Decision{Outcome: policy.Deny, Code: policy.Unauthorized, Step: policy.StepApp}, ""},
	} {
		_, span := tp.Tracer("test").Start(context.Background(), tc.name)
		tr.endSpan(span, true, &policy.Input{RequestID: "req-7"}, &tc.d, "id", "v1")
		s := rec.Ended()[len(rec.Ended())-1]
		attrs := map[string]string{}
		for _, a := range s.Attributes() {
			attrs[string(a.Key)] = a.Value.Emit()
		}
		if attrs["error.type"] != tc.errType {
			t.Errorf("%s: error.type %q, want %q", tc.name, attrs["error.type"], tc.errType)
		}
		if (s.Status().Code == codes.Error) != (tc.errType != "") {
			t.Errorf("%s: status %v", tc.name, s.Status())
		}
		if attrs["gatehouse.request_id"] != "req-7" {
			t.Errorf("%s: gatehouse.request_id %q, want req-7", tc.name, attrs["gatehouse.request_id"])
		}
		if _, ok := attrs["envoy.request_id"]; ok {
			t.Errorf("%s: the request id is still under envoy.request_id", tc.name)
		}
	}
}
