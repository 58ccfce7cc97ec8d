package extproc

import (
	"context"
	"sync"
	"testing"
	"time"
)

// outcomeLog keeps every outcome its phaseEnv's streams report.
type outcomeLog struct {
	e   *phaseEnv
	mu  sync.Mutex
	all []Outcome
}

func (l *outcomeLog) ObserveExchange(ctx context.Context, o *Outcome, start time.Time) {
	l.mu.Lock()
	l.all = append(l.all, *o)
	l.mu.Unlock()
	l.e.ObserveExchange(ctx, o, start)
}

// TestReplayOutcome: the outcome of a response replayed from an idempotency entry says
// so (Replayed, with the replayed status and no code); the first request's, which
// reached the upstream, and a conflict's do not.
func TestReplayOutcome(t *testing.T) {
	e := newPhaseEnv(t, Route{})
	r := idemRoute()
	r.App, r.Endpoint, r.Records = "a", "e", e.store
	rs := NewRoutes(r.Dialect)
	rs.Add(&r)
	l := &outcomeLog{e: e}
	e.c = serve(t, NewServer(func() *Routes { return rs }, Options{Now: e.clock, Observer: l}))
	e.run(order("k-1", `{"sku":"a"}`))
	e.run(order("k-1", `{"sku":"a"}`))
	e.run(order("k-1", `{"sku":"b"}`))
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.all) != 3 {
		t.Fatalf("%d outcomes, want 3", len(l.all))
	}
	for i, want := range []struct {
		replayed bool
		status   int
		code     string
	}{{false, 201, ""}, {true, 201, ""}, {false, 409, "CONFLICT"}} {
		o := l.all[i]
		if o.Replayed != want.replayed || o.Status != want.status || string(o.Code) != want.code {
			t.Errorf("exchange %d: replayed %v status %d code %q, want %v %d %q", i, o.Replayed, o.Status, o.Code, want.replayed, want.status, want.code)
		}
	}
}
