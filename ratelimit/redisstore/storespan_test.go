package redisstore

import (
	"context"
	"strconv"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/gatehouse/gatehouse/ratelimit/internal/redistest"
	"github.com/gatehouse/gatehouse/ratelimit/state"
)

// TestStoreSpanAttributes: each Redis round trip under a recording span is a client span
// naming the system, the command (db.operation.name) and the server it went to
// (server.address, server.port), with the OTel semantic-convention keys; a failed round
// trip has status Error and an error.type. Expected values are typed here.
func TestStoreSpanAttributes(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	prev := tracer
	tracer = tp.Tracer("github.com/gatehouse/gatehouse/ratelimit")
	t.Cleanup(func() { tracer = prev })

	p := redistest.Start(t)
	s := openTestRedis(t, state.RedisConfig{Addrs: []string{p.Addr()}}, nil)
	ctx, parent := tp.Tracer("test").Start(context.Background(), "parent")
	if _, err := s.Adjust(ctx, state.NewKey("credits", "", 0, "a"), 5); err != nil {
		t.Fatal(err)
	}
	if err := s.ResetBindings(ctx, "lic"); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	p.Stop()
	if err := s.Ping(ctx); err == nil {
		t.Fatal("a ping to a stopped Redis succeeded")
	}
	parent.End()

	port := strconv.Itoa(p.Port())
	want := []struct {
		op, errType string
	}{{"INCRBY", ""}, {"DEL", ""}, {"PING", ""}, {"PING", "connection_error"}}
	var got []sdktrace.ReadOnlySpan
	for _, sp := range rec.Ended() {
		if sp.Name() == "gatehouse.store" {
			got = append(got, sp)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%d store spans, want %d", len(got), len(want))
	}
	for i, w := range want {
		attrs := map[attribute.Key]string{}
		for _, a := range got[i].Attributes() {
			attrs[a.Key] = a.Value.Emit()
		}
		for k, v := range map[attribute.Key]string{"db.system.name": "redis", "db.operation.name": w.op,
			"server.address": "127.0.0.1", "server.port": port, "error.type": w.errType} {
			if attrs[k] != v {
				t.Errorf("span %d (%s): %s = %q, want %q", i, w.op, k, attrs[k], v)
			}
		}
		if wantStatus := map[bool]otelcodes.Code{true: otelcodes.Error, false: otelcodes.Unset}[w.errType != ""]; got[i].Status().Code != wantStatus {
			t.Errorf("span %d (%s): status %v, want %v", i, w.op, got[i].Status().Code, wantStatus)
		}
	}
}
