package redisstore

import (
	"context"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/gatehouse/gatehouse/ratelimit/internal/redistest"
	"github.com/gatehouse/gatehouse/ratelimit/state"
)

// TestRecordsSpans: each record call under a recording span is one store span naming
// its command, as every other store call is, and no span carries the record's key or
// value.
func TestRecordsSpans(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	prev := tracer
	tracer = tp.Tracer("github.com/gatehouse/gatehouse/ratelimit")
	t.Cleanup(func() { tracer = prev })

	p := redistest.Start(t)
	s := openTestRedis(t, state.RedisConfig{Addrs: []string{p.Addr()}}, nil)
	ctx, parent := tp.Tracer("test").Start(context.Background(), "parent")
	const key, val = "idem:KEYMARK", "VALMARK"
	s.Create(ctx, t0, key, []byte(val), time.Minute)
	s.Get(ctx, t0, key)
	s.Swap(ctx, t0, key, []byte(val), []byte(val+"2"), time.Minute)
	s.Take(ctx, t0, key)
	parent.End()

	var ops []string
	for _, sp := range rec.Ended() {
		if sp.Name() != "gatehouse.store" {
			continue
		}
		for _, a := range sp.Attributes() {
			if a.Key == "db.operation.name" {
				ops = append(ops, a.Value.Emit())
			}
			if v := a.Value.Emit(); strings.Contains(v, "KEYMARK") || strings.Contains(v, "VALMARK") {
				t.Errorf("span attribute %s = %q holds the record", a.Key, v)
			}
		}
	}
	if got, want := strings.Join(ops, " "), "SET GET EVALSHA GETDEL"; got != want {
		t.Fatalf("store spans %q, want %q", got, want)
	}
}
