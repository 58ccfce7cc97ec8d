package memstore_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/ratelimit"
	"github.com/gatehouse/gatehouse/ratelimit/memstore"
)

// A counter that counts every hit (Op.Always, the rate-limit service's default) keeps
// the units of refused requests, so it can be driven to the top of int64 (a long window,
// hits_addend up to 2³²-1). Past it, the count must stay at the top and refuse, never
// wrap to a negative count that admits the next requests.
func TestAlwaysCounterSaturatesAtInt64(t *testing.T) {
	now := time.Date(2025, 3, 14, 10, 0, 0, 0, time.UTC)
	s, err := memstore.Open(ratelimit.MemoryConfig{}, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	op := func(cost int64) []ratelimit.Op {
		return []ratelimit.Op{{Key: ratelimit.NewKey("wrap", "", 1, "d"), Kind: ratelimit.KindCounter, Limit: 10, Cost: cost,
			Expire: now.Add(time.Hour).UnixNano(), Always: true}}
	}
	out := make([]ratelimit.Outcome, 1)
	for _, tc := range []struct {
		cost  int64
		value int64 // hand-computed
	}{
		{math.MaxInt64 - 5, math.MaxInt64 - 5}, // refused, kept
		{5, math.MaxInt64},                     // exactly the top
		{1, math.MaxInt64},                     // one past: saturates
		{1 << 32, math.MaxInt64},
		{1, math.MaxInt64},
	} {
		if err := s.Apply(context.Background(), now, op(tc.cost), out); err != nil {
			t.Fatal(err)
		}
		if out[0].Allowed || out[0].Value != tc.value {
			t.Fatalf("cost %d: allowed %v value %d, want refused at %d", tc.cost, out[0].Allowed, out[0].Value, tc.value)
		}
	}
}
