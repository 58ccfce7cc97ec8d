package redisstore

import (
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/ratelimit/state"
)

// TestShareSplit: how a bucket is split between the slots' shares and Redis, against
// figures worked out by hand (each interval rounded up; Redis's to a whole µs).
func TestShareSplit(t *testing.T) {
	gcra := func(burst int64, interval time.Duration) state.Op {
		return state.Op{Kind: state.KindGCRA, Limit: burst, Interval: int64(interval), Cost: 1}
	}
	shadow, always, exact := gcra(100, time.Second), gcra(100, time.Second), gcra(100, time.Second)
	shadow.Shadow, always.Always, exact.Exact = true, true, true
	for _, tc := range []struct {
		name     string
		slots    int
		fraction float64
		op       state.Op
		want     shareParams // zero: not shared
	}{
		// 50/s burst 100, 3 slots, the default 10 %: a share of ⌊100×0.1/3⌋ = 3 units at
		// 50×0.1/3 per second (one per 600 ms); Redis: 91 units at 45/s (22222222.2 ns →
		// 22223 µs).
		{"device throttle, default fraction", 3, 0, gcra(100, 20*time.Millisecond), shareParams{3, 600_000_000, 91, 22_223_000}},
		// 5 %: a share of ⌊100×0.05/3⌋ = 1 unit at 50×0.05/3 per second (one per 1.2 s);
		// Redis: 97 units at 47.5/s (21052631.6 ns → 21053 µs).
		{"device throttle, 5 %", 3, 0.05, gcra(100, 20*time.Millisecond), shareParams{1, 1_200_000_000, 97, 21_053_000}},
		{"a quarter, 3 slots", 3, 0.25, gcra(40, time.Hour), shareParams{3, int64(12 * time.Hour), 31, 4_800_000_000_000}},
		{"a quarter, 1 slot", 1, 0.25, gcra(40, time.Hour), shareParams{10, int64(4 * time.Hour), 30, 4_800_000_000_000}},
		{"burst 12: shares take a quarter", 3, 0.05, gcra(12, time.Second), shareParams{1, 60_000_000_000, 9, 1_052_632_000}},
		{"burst 11: too small to share", 3, 0.05, gcra(11, time.Second), shareParams{}},
		// One slot: the share is 1 unit (one per 20 s), Redis's part 9 (one per 1052632 µs).
		{"burst 10, one slot", 1, 0.05, gcra(10, time.Second), shareParams{1, 20_000_000_000, 9, 1_052_632_000}},
		// Redis's part of 8 − 1 = 7 would not take the throttle path, where shares are used.
		{"burst 8, one slot: Redis's part too small", 1, 0.05, gcra(8, time.Second), shareParams{}},
		// A share of 1 unit per 1000 × 1100 h = 3.96×10¹⁸ ns: a TAT a share ahead of now,
		// plus one unit, passes the top of int64.
		{"a share's span past int64", 1, 0.001, gcra(10, 1100*time.Hour), shareParams{}},
		{"shadow", 3, 0, shadow, shareParams{}},
		{"counts on its own", 3, 0, always, shareParams{}},
		{"exact", 3, 0, exact, shareParams{}},
		{"a counter", 3, 0, state.Op{Kind: state.KindCounter, Limit: 100, Cost: 1}, shareParams{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sh := newShares(state.SharesConfig{Slots: tc.slots, Fraction: tc.fraction}, "gh:")
			got, ok := sh.split(&tc.op)
			if ok != (tc.want != shareParams{}) || got != tc.want {
				t.Fatalf("split = %+v, %v; want %+v", got, ok, tc.want)
			}
		})
	}
}

// TestShareCollisionNeverDoubles: two buckets whose digests collide (a device id chosen
// to land on a victim's) share one entry of the table: together they get one share,
// never one each. The cost falls on them (fewer admissions), never on the bound.
func TestShareCollisionNeverDoubles(t *testing.T) {
	sh := newShares(state.SharesConfig{Slots: 3}, "gh:")
	sh.valid.Store(int64(time.Hour)) // a slot held for the test's length
	p, ok := sh.split(&state.Op{Kind: state.KindGCRA, Limit: 100, Interval: int64(20 * time.Millisecond), Cost: 1})
	if !ok || p.burst != 3 {
		t.Fatalf("split: %+v %v, want a share of 3 units (⌊100×0.1/3⌋)", p, ok)
	}
	ns := int64(time.Minute) // past the claim's empty start (claim at 0 + 1.8 s)
	const id = 42            // both buckets' digest
	taken := 0
	for range 10 { // the attacker's bucket and the victim's, in turn, at one instant
		if _, _, ok := sh.take(id, p, 1, ns); ok {
			taken++
		}
	}
	if taken != 3 {
		t.Fatalf("%d units taken by two colliding buckets, want 3: one share between them", taken)
	}
}
