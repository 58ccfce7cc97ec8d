package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/ratelimit"
)

// step is one request of a hand-typed sequence on one op and what the store must answer.
type step struct {
	at      time.Duration // after t0
	cost    int64
	allowed bool
	value   int64
}

// counters: a counter of limit 3 in its hour window, counted all or nothing and on its
// own (Op.Always: refused units stay counted, as envoyproxy/ratelimit counts).
func counters(t *testing.T, open Open) {
	for _, tc := range []struct {
		name   string
		always bool
		steps  []step
	}{
		{"all or nothing", false, []step{
			{0, 1, true, 1}, {0, 1, true, 2},
			{0, 2, false, 2},                                  // would pass the limit: nothing counted
			{0, 1, true, 3},                                   // exactly the limit
			{0, 0, true, 3},                                   // a check at the limit
			{0, 1, false, 3},                                  // one over
			{0, -2, true, 1},                                  // a refund
			{0, -5, true, 0},                                  // never below zero
			{time.Hour, 3, true, 3}, {time.Hour, 1, false, 3}, // the next window starts afresh
		}},
		{"every hit counts", true, []step{
			{0, 1, true, 1}, {0, 1, true, 2},
			{0, 2, false, 4}, // refused, and counted
			{0, 1, false, 5},
			{0, 0, false, 5}, // a check over the limit
			{0, -4, true, 1},
			{0, 2, true, 3}, // exactly the limit
			{0, 1, false, 4},
			{time.Hour, 1, true, 1},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := newClock()
			s := open(t, clock.Now)
			for i, st := range tc.steps {
				now := t0.Add(st.at)
				clock.Set(now)
				op := counter("c", now, 3, st.cost)
				op.Always = tc.always
				if o := apply(t, s, now, op)[0]; o.Allowed != st.allowed || o.Value != st.value {
					t.Fatalf("step %d (cost %d): %+v, want allowed %v, value %d", i, st.cost, o, st.allowed, st.value)
				}
			}
		})
	}
}

// allOrNothing: a request denied by one enforcing limit consumes no other; a denial in
// shadow mode blocks nothing.
func allOrNothing(t *testing.T, open Open) {
	s := open(t, newClock().Now)
	a, b := counter("a", t0, 2, 1), counter("b", t0, 1, 1)
	shadow := counter("s", t0, 0, 1)
	shadow.Shadow = true
	for i, tc := range []struct {
		ops  []ratelimit.Op
		want []ratelimit.Outcome
	}{
		{[]ratelimit.Op{a, b, shadow}, []ratelimit.Outcome{{Allowed: true, Value: 1}, {Allowed: true, Value: 1}, {Value: 0}}},
		{[]ratelimit.Op{a, b}, []ratelimit.Outcome{{Allowed: true, Value: 1}, {Value: 1}}}, // b denies: a keeps 1
		{[]ratelimit.Op{a}, []ratelimit.Outcome{{Allowed: true, Value: 2}}},
		{[]ratelimit.Op{a, shadow}, []ratelimit.Outcome{{Value: 2}, {Value: 0}}},
	} {
		got := apply(t, s, t0, tc.ops...)
		for j := range tc.want {
			if got[j].Allowed != tc.want[j].Allowed || got[j].Value != tc.want[j].Value {
				t.Fatalf("request %d, op %d: %+v, want %+v", i, j, got[j], tc.want[j])
			}
		}
	}
}

// tokenBucket: a bucket of 3 tokens refilling one per second; the value is the
// theoretical arrival time (unix ns).
func tokenBucket(t *testing.T, open Open) {
	clock := newClock()
	s := open(t, clock.Now)
	sec := int64(time.Second)
	at := func(d time.Duration) int64 { return t0.Add(d).UnixNano() }
	for i, st := range []step{
		{0, 1, true, at(time.Second)}, {0, 1, true, at(2 * time.Second)}, {0, 1, true, at(3 * time.Second)},
		{0, 1, false, at(3 * time.Second)}, // empty: the TAT does not move
		{time.Second, 1, true, at(4 * time.Second)},
		{time.Second, 1, false, at(4 * time.Second)},
		{time.Second, 4, false, at(4 * time.Second)},      // more than the burst never fits
		{time.Second, -2, true, at(2 * time.Second)},      // two tokens back
		{time.Second, -9, true, at(time.Second)},          // at most a full bucket back
		{10 * time.Second, 3, true, at(13 * time.Second)}, // full again: the whole burst
	} {
		now := t0.Add(st.at)
		clock.Set(now)
		op := ratelimit.Op{Key: ratelimit.NewKey("g", "", 0, "d"), Kind: ratelimit.KindGCRA, Limit: 3, Cost: st.cost, Interval: sec}
		if o := apply(t, s, now, op)[0]; o.Allowed != st.allowed || o.Value != st.value {
			t.Fatalf("step %d (cost %d): %+v, want allowed %v, TAT t0%+v", i, st.cost, o, st.allowed, time.Duration(st.value-t0.UnixNano()))
		}
	}
}

// peekAndSet: a set value is read back; a peek of a missing key is not allowed.
func peekAndSet(t *testing.T, open Open) {
	s := open(t, newClock().Now)
	k := ratelimit.NewKey("lock/until", "lockout", 0, "ip:1")
	exp := t0.Add(time.Minute).UnixNano()
	if o := apply(t, s, t0, ratelimit.Op{Key: k, Kind: ratelimit.KindPeek})[0]; o.Allowed {
		t.Fatalf("peek of a missing key: %+v", o)
	}
	if o := apply(t, s, t0, ratelimit.Op{Key: k, Kind: ratelimit.KindSet, Limit: 42, Expire: exp})[0]; !o.Allowed {
		t.Fatalf("set: %+v", o)
	}
	if o := apply(t, s, t0, ratelimit.Op{Key: k, Kind: ratelimit.KindPeek})[0]; !o.Allowed || o.Value != 42 {
		t.Fatalf("peek: %+v, want 42", o)
	}
}

// credits: adjustments move a never-expiring counter that requests then consume.
func credits(t *testing.T, open Open) {
	s := open(t, newClock().Now)
	c, ok := s.(ratelimit.Credits)
	if !ok {
		t.Fatal("the store keeps no credits (ratelimit.Credits)")
	}
	ctx := context.Background()
	k := ratelimit.NewKey("credits", "", 0, "L")
	for i, tc := range []struct{ delta, want int64 }{{5, 5}, {-2, 3}, {0, 3}} {
		if v, err := c.Adjust(ctx, k, tc.delta); err != nil || v != tc.want {
			t.Fatalf("adjust %d (%+d): %d %v, want %d", i, tc.delta, v, err, tc.want)
		}
	}
	op := ratelimit.Op{Key: k, Kind: ratelimit.KindCounter, Limit: 4, Cost: 1, Persist: true}
	for i, want := range []ratelimit.Outcome{{Allowed: true, Value: 4}, {Value: 4}} {
		if o := apply(t, s, t0, op)[0]; o.Allowed != want.Allowed || o.Value != want.Value {
			t.Fatalf("request %d: %+v, want %+v", i, o, want)
		}
	}
	if v, err := c.Adjust(ctx, k, -4); err != nil || v != 0 {
		t.Fatalf("top-up: %d %v, want 0", v, err)
	}
}

// bindings: first come, first bound, up to the maximum; a reset frees every slot.
func bindings(t *testing.T, open Open) {
	s := open(t, newClock().Now)
	b, ok := s.(ratelimit.Bindings)
	if !ok {
		t.Fatal("the store keeps no bindings (ratelimit.Bindings)")
	}
	ctx := context.Background()
	for i, tc := range []struct {
		member string
		bound  bool
		count  int
	}{{"d1", true, 1}, {"d2", true, 2}, {"d3", false, 2}, {"d1", true, 2}} {
		if bound, n, err := b.Bind(ctx, "lic:1", tc.member, 2); err != nil || bound != tc.bound || n != tc.count {
			t.Fatalf("bind %d (%s): %v %d %v, want %v %d", i, tc.member, bound, n, err, tc.bound, tc.count)
		}
	}
	if bound, n, err := b.Bind(ctx, "lic:2", "d1", 0); err != nil || bound || n != 0 {
		t.Fatalf("bind with a maximum of 0: %v %d %v", bound, n, err)
	}
	if err := b.ResetBindings(ctx, "lic:1"); err != nil {
		t.Fatal(err)
	}
	if bound, n, err := b.Bind(ctx, "lic:1", "d3", 2); err != nil || !bound || n != 1 {
		t.Fatalf("after the reset: %v %d %v, want bound alone", bound, n, err)
	}
}

// ping: a store that serves answers its readiness probe.
func ping(t *testing.T, open Open) {
	s := open(t, newClock().Now)
	p, ok := s.(ratelimit.Pinger)
	if !ok {
		t.Fatal("the store has no readiness probe (ratelimit.Pinger)")
	}
	if err := p.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// sameKeyTwice: one request that names one counter twice (two descriptors of one RLS
// request on the same key, each with its own limit): the second op sees the first's units
// when the first is admitted, and not when it is refused, as if the ops ran one after the
// other; a refused request counts nothing. Values worked out by hand.
func sameKeyTwice(t *testing.T, open Open) {
	type req struct {
		ops  [][2]int64 // cost, limit of each op on the one key
		want []ratelimit.Outcome
	}
	for _, tc := range []struct {
		name  string
		limit int64 // of the single requests first
		warm  int   // single requests of cost 1 first: values 1…warm
		reqs  []req
	}{
		// A counter busy enough for a replica to lease units of it (limit > 32): the
		// second op's count leaves out what the first asked for its lease. Pairs of
		// requests go on (busyPairs) until one finds the lease empty.
		{"a busy counter", 1000, 20, []req{
			{[][2]int64{{2, 1000}, {1, 1000}}, []ratelimit.Outcome{{Allowed: true, Value: 22}, {Allowed: true, Value: 23}}},
		}},
		// The first op refuses (8+5 > 10): the second sees the count without its units
		// (8+1 ≤ 13, admitted); the request counts nothing (values: the count before).
		{"the first refuses", 10, 8, []req{
			{[][2]int64{{5, 10}, {1, 13}}, []ratelimit.Outcome{{Value: 8}, {Allowed: true, Value: 8}}},
			{[][2]int64{{1, 10}}, []ratelimit.Outcome{{Allowed: true, Value: 9}}},
			{[][2]int64{{1, 10}, {1, 10}}, []ratelimit.Outcome{{Allowed: true, Value: 9}, {Value: 10}}}, // 9+1 = 10 then 11
			{[][2]int64{{1, 10}}, []ratelimit.Outcome{{Allowed: true, Value: 10}}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t, newClock().Now)
			for i := 1; i <= tc.warm; i++ {
				if o := apply(t, s, t0, counter("k", t0, tc.limit, 1))[0]; !o.Allowed || o.Value != int64(i) {
					t.Fatalf("single request %d: %+v", i, o)
				}
			}
			for i, r := range tc.reqs {
				var ops []ratelimit.Op
				for _, o := range r.ops {
					ops = append(ops, counter("k", t0, o[1], o[0]))
				}
				got := apply(t, s, t0, ops...)
				for j := range r.want {
					if got[j].Allowed != r.want[j].Allowed || got[j].Value != r.want[j].Value {
						t.Fatalf("request %d, op %d: %+v, want %+v", i, j, got[j], r.want[j])
					}
				}
			}
			if tc.limit == 1000 {
				busyPairs(t, s, 23)
			}
		})
	}
}

// busyPairs sends 100 requests naming counter k (limit 1000, at n) twice, one unit each:
// each admitted, the second op's value one more than the first's.
func busyPairs(t *testing.T, s ratelimit.Store, n int64) {
	t.Helper()
	for i := range 100 {
		got := apply(t, s, t0, counter("k", t0, 1000, 1), counter("k", t0, 1000, 1))
		if !got[0].Allowed || !got[1].Allowed || got[0].Value != n+1 || got[1].Value != n+2 {
			t.Fatalf("pair %d at %d: %+v, want values %d and %d, admitted", i, n, got, n+1, n+2)
		}
		n += 2
	}
}
