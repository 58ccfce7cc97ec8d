package redisstore

import (
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/ratelimit/state"
)

// TestLeaseRefillsBeforeEmpty: a hot counter's lease asks Redis for more units while it
// still holds half of max_units, so that the requests that come while the refill is in
// flight are served from what is left instead of each making its own round trip.
func TestLeaseRefillsBeforeEmpty(t *testing.T) {
	const max = 64
	l := newLeases(max, time.Second, time.Second)
	op := state.Op{Key: state.NewKey("quota", "app", 1, "a"), Kind: state.KindCounter, Limit: 1 << 40, Cost: 1, Expire: 1 << 62}
	id := op.Key.Base()
	plan := func() (leaseUse, bool) {
		var out state.Outcome
		sh := l.shard(id)
		sh.mu.Lock()
		defer sh.mu.Unlock()
		return l.plan(id, &op, &out, true)
	}
	var count int64 // what Redis holds
	finish := func(u leaseUse) {
		sh := l.shard(id)
		sh.mu.Lock()
		defer sh.mu.Unlock()
		count += op.Cost - u.pooled + u.extra
		var own int64
		if u.held > 0 {
			own = l.stillHeld(id, &op, u)
		}
		l.finish(id, &op, u, count, true, u.extra, own)
	}
	// Warm the counter up until a refill brings the lease to max_units.
	for i := 0; ; i++ {
		if i > 10_000 {
			t.Fatal("the lease never reached max_units")
		}
		u, local := plan()
		if !local {
			finish(u)
		}
		if sh, e := l.current(id, &op); e.left == max {
			sh.mu.Unlock()
			break
		} else {
			sh.mu.Unlock()
		}
	}
	// 64 held: the first 32 requests leave 63 … 32; the 33rd would leave 31, under half,
	// and asks for 33 more (max_units in all) as it takes its own unit.
	for i := 1; i <= 32; i++ {
		if _, local := plan(); !local {
			t.Fatalf("request %d with %d units held went to Redis", i, max-i+1)
		}
	}
	refill, local := plan()
	if local || refill.pooled != 1 || refill.extra != 33 {
		t.Fatalf("request 33: local %v, pooled %d, extra %d; want a refill of 33 with its own unit from the lease", local, refill.pooled, refill.extra)
	}
	// While it is in flight, the 31 units left serve 31 requests; the next one finds none.
	for i := 1; i <= 31; i++ {
		if u, local := plan(); !local || u.extra != 0 {
			t.Fatalf("request %d during the refill: local %v extra %d, want served from the lease", i, local, u.extra)
		}
	}
	if u, local := plan(); local || u.extra != 0 {
		t.Fatalf("request 32 during the refill: local %v extra %d, want its own round trip, no second refill", local, u.extra)
	}
	finish(refill)
	if sh, e := l.current(id, &op); e.left != 33 || e.pending {
		sh.mu.Unlock()
		t.Fatalf("after the refill: %d held, pending %v; want 33", e.left, e.pending)
	} else {
		sh.mu.Unlock()
	}
}
