package redisstore

// One store call: the breaker, the shared deadline, the batch, the trace span.

import (
	"context"
	"errors"
	"fmt"
	"github.com/gatehouse/gatehouse/ratelimit/state"
	"net"
	"strconv"
	"time"

	"github.com/redis/rueidis"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"
)

// redisCall is what one store call sees of Redis: the client, the context that bounds the
// call, and send, which shares a round trip with concurrent calls when it may.
type redisCall struct {
	ctx     context.Context // bounds the call
	caller  context.Context // the caller's own context
	c       rueidis.Client
	b       *batcher // nil unless the call may join a batch (ctx is the shared deadline)
	timeout time.Duration
}

// followUp returns a context for a second round trip of the call: a budget of its own
// (the store timeout), bounded by the caller's deadline but not ended by its cancellation
// (units taken back matter even when the caller has gone).
func (r redisCall) followUp() (context.Context, context.CancelFunc) {
	ctx := context.WithoutCancel(r.caller)
	if dl, ok := r.caller.Deadline(); ok && time.Until(dl) < r.timeout {
		return context.WithDeadline(ctx, dl)
	}
	return context.WithTimeout(ctx, r.timeout)
}

// send sends cmds and returns their replies in order.
func (r redisCall) send(cmds rueidis.Commands) []rueidis.RedisResult {
	switch {
	case r.b != nil:
		return r.b.do(r.ctx, r.c, cmds)
	case len(cmds) == 1:
		return []rueidis.RedisResult{r.c.Do(r.ctx, cmds[0])}
	}
	return r.c.DoMulti(r.ctx, cmds...)
}

// call runs one store call under the breaker and the timeout. op names the call's
// command for traces (db.operation.name).
func (s *Store) call(ctx context.Context, op string, run func(redisCall) error) error {
	box := s.client.Load()
	if box == nil {
		return fmt.Errorf("%w: not connected", state.ErrUnavailable)
	}
	start := s.clock()
	ok, probe := s.br.allow(start)
	if !ok {
		s.metrics.Load().StoreCall("redis", 0, state.ErrUnavailable, true)
		return fmt.Errorf("%w: circuit breaker open", state.ErrUnavailable)
	}
	if !s.conn.up.Load() { // reconnecting in the background: a failure, as a refused dial would be
		s.br.done(start, probe, true)
		s.metrics.Load().StoreCall("redis", 0, errDialInCall, s.br.isOpen())
		return fmt.Errorf("%w: %w", state.ErrUnavailable, errDialInCall)
	}
	if err := ctx.Err(); err != nil {
		s.br.release(probe)
		return fmt.Errorf("%w: %w", state.ErrUnavailable, err)
	}
	// A round-trip span only under a span that records: a root span per Redis call would
	// be noise, and building a span that records nothing costs the hot path.
	var span trace.Span
	if trace.SpanFromContext(ctx).IsRecording() {
		ctx, span = tracer.Start(ctx, "gatehouse.store", trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(s.spanAttrs...), trace.WithAttributes(semconv.DBOperationName(op)))
	}
	cctx, cancel, shared := s.deadlines.bound(ctx)
	var b *batcher
	if shared && !s.cluster { // in cluster mode a batch would span shards: one slow or missing shard would fail it all
		b = &s.batch
	}
	err := run(redisCall{ctx: cctx, caller: ctx, c: box.c, b: b, timeout: s.timeout})
	cancel()
	end := s.clock()
	// A call on its own context that failed because its caller went away says nothing
	// about Redis: it neither counts as a failure nor, as a success would, resets the
	// failure streak or closes the breaker. Nor does TRYAGAIN: Redis Cluster is up and
	// ran nothing, the call's keys being split between two masters by a slot migration.
	if !shared && err != nil && errors.Is(ctx.Err(), context.Canceled) || tryAgain(err) {
		s.br.release(probe)
	} else {
		s.br.done(end, probe, err != nil)
	}
	s.metrics.Load().StoreCall("redis", end.Sub(start), err, s.br.isOpen())
	if err != nil {
		if span != nil {
			span.SetStatus(otelcodes.Error, "store call failed")
			span.SetAttributes(semconv.ErrorTypeKey.String(storeErrorType(err)))
			span.End()
		}
		return fmt.Errorf("%w: %w", state.ErrUnavailable, err)
	}
	if span != nil {
		span.End()
	}
	return nil
}

// tryAgain reports whether err is Redis Cluster's TRYAGAIN: a script or multi-key command
// whose keys are split between two masters while their slot migrates, refused unrun.
func tryAgain(err error) bool {
	var rerr *rueidis.RedisError
	return errors.As(err, &rerr) && rerr.IsTryAgain()
}

// storeSpanAttrs are the attributes every store span carries: the system and the first
// configured address (with sentinel or cluster, the node that was asked first).
func storeSpanAttrs(addrs []string) []attribute.KeyValue {
	attrs := []attribute.KeyValue{semconv.DBSystemNameRedis}
	if len(addrs) == 0 {
		return attrs
	}
	host, port, err := net.SplitHostPort(addrs[0])
	if err != nil {
		return append(attrs, semconv.ServerAddress(addrs[0]))
	}
	attrs = append(attrs, semconv.ServerAddress(host))
	if n, err := strconv.Atoi(port); err == nil {
		attrs = append(attrs, semconv.ServerPort(n))
	}
	return attrs
}

// storeErrorType is the error.type of a failed round trip: a few fixed values, never the
// error's text (it could hold a key).
func storeErrorType(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	if _, ok := rueidis.IsRedisErr(err); ok {
		return "redis_error"
	}
	return "connection_error"
}

// tracer makes the store round-trip spans; a no-op unless tracing is set up.
var tracer = otel.Tracer("github.com/gatehouse/gatehouse/ratelimit")
