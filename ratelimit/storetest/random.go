package storetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/ratelimit"
)

// model is what a counter store must hold: a plain running sum per counter, by a name
// the test gives each (its key and window).
type model map[string]int64

// apply applies ops (distinct counters, named names[i]) as the Store contract says, and
// returns the outcomes a store must report: each op is evaluated on the sums before the
// call; if any enforcing op that is not Always is refused, only refunds and Always ops
// are committed; an Always counter keeps a refused request's units.
func (m model) apply(ops []ratelimit.Op, names []string) []ratelimit.Outcome {
	out := make([]ratelimit.Outcome, len(ops))
	next := make([]int64, len(ops))
	commit := true
	for i, op := range ops {
		cur := m[names[i]]
		if op.Cost < 0 {
			next[i], out[i].Allowed = max(cur+op.Cost, 0), true
		} else {
			next[i] = cur + op.Cost
			out[i].Allowed = next[i] <= op.Limit
		}
		if !out[i].Allowed && !op.Shadow && !op.Always {
			commit = false
		}
	}
	for i, op := range ops {
		forced := op.Always && op.Cost > 0
		if out[i].Allowed && (commit || op.Cost < 0 || op.Always) || forced {
			m[names[i]] = next[i]
		}
		out[i].Value = m[names[i]]
	}
	return out
}

// randomCounters replays random sequences and checks every verdict and count against
// the model: two counters, costs of 1–3, refunds, checks, a second limit on some
// requests, limits that rise and fall (a reload, or routes with different limits on one
// counter), a token bucket that takes some requests off the counters' fast paths, and
// windows that end; each sequence all or nothing or every op on its own.
func randomCounters(t *testing.T, open Open) {
	for seed := uint64(1); seed <= 24; seed++ {
		rng := rand.New(rand.NewPCG(seed, 7*seed+1))
		always := seed%2 == 0
		clock := newClock()
		s := open(t, clock.Now)
		now := t0.Add(time.Second)
		limA := int64(40 + rng.IntN(361))
		m := model{}
		for step := 0; step < 300; step++ {
			now = now.Add(time.Duration(rng.IntN(60_000)) * time.Millisecond)
			clock.Set(now)
			if rng.IntN(10) == 0 {
				limA = int64(40 + rng.IntN(361))
			}
			lim := limA
			if rng.IntN(8) == 0 { // another route on the same counter
				lim = int64(40 + rng.IntN(361))
			}
			cost := randomCost(rng)
			window := now.Truncate(time.Hour).Unix()
			ops := []ratelimit.Op{counter("A", now, lim, cost)}
			names := []string{fmt.Sprint("A", window)}
			if rng.IntN(3) == 0 {
				ops = append(ops, counter("B", now, int64(10+rng.IntN(50)), cost))
				names = append(names, fmt.Sprint("B", window))
			}
			for i := range ops {
				ops[i].Always = always
			}
			want := m.apply(ops, names)
			if rng.IntN(4) == 0 { // never refuses: it only sends the request another way
				ops = append(ops, ratelimit.Op{Key: ratelimit.NewKey("G", "suite", 0, "d"), Kind: ratelimit.KindGCRA,
					Limit: 1 << 30, Cost: 1, Interval: int64(time.Millisecond), Always: always})
			}
			got := apply(t, s, now, ops...)
			for i := range want {
				if got[i].Allowed != want[i].Allowed || got[i].Value != want[i].Value {
					t.Fatalf("seed %d (always %v), step %d, op %d (%s, limit %d, cost %d): %+v, want allowed %v, value %d",
						seed, always, step, i, ops[i].Key.ID, ops[i].Limit, ops[i].Cost, got[i], want[i].Allowed, want[i].Value)
				}
			}
		}
	}
}

func randomCost(rng *rand.Rand) int64 {
	switch n := rng.IntN(20); {
	case n < 2:
		return -int64(1 + rng.IntN(3))
	case n < 4:
		return 0
	default:
		return int64(1 + rng.IntN(3))
	}
}

// randomRLS sends random rate-limit service requests through the engine, in a domain
// that counts every hit and one that counts all or nothing, and checks every status
// against the model: limits of 5, 9 and 40 an hour and one of 4 in shadow mode, on two
// values each; hits_addend of 0–3 and per-descriptor overrides of 0 (a check) and 1.
func randomRLS(t *testing.T, open Open) {
	limits := map[string]int64{"a": 5, "b": 9, "c": 40, "s": 4}
	var domains []ratelimit.DomainConfig
	for _, counting := range []string{"every_hit", "atomic"} {
		d := ratelimit.DomainConfig{Domain: counting, Counting: counting}
		for _, k := range []string{"a", "b", "c", "s"} {
			d.Descriptors = append(d.Descriptors, ratelimit.DescriptorConfig{Key: k, ShadowMode: k == "s",
				RateLimit: &ratelimit.RateLimitConfig{Unit: "hour", RequestsPerUnit: uint32(limits[k])}})
		}
		domains = append(domains, d)
	}
	in := ratelimit.CompileInput{RLS: ratelimit.RLSConfig{Domains: domains}}
	for seed := uint64(1); seed <= 2; seed++ {
		clock := newClock()
		s := open(t, clock.Now)
		e, err := ratelimit.Compile(in, s)
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(3, seed))
		now, m, refused := t0.Add(time.Second), model{}, 0
		for step := 0; step < 400; step++ {
			now = now.Add(time.Duration(rng.IntN(30_000)) * time.Millisecond)
			clock.Set(now)
			req, ops, names := randomRLSRequest(rng, limits, now)
			want := m.apply(ops, names)
			if st, ok := s.(settler); ok {
				st.ForgetOverMarks()
			}
			got, err := e.ShouldRateLimit(context.Background(), now, req)
			if err != nil {
				t.Fatal(err)
			}
			over := false
			for j, o := range want {
				shadow := req.Descriptors[j].Entries[0].Key == "s"
				rem := uint32(max(ops[j].Limit-o.Value, 0))
				if !o.Allowed {
					rem, over = 0, over || !shadow
				}
				g := got.Statuses[j]
				if g.OverLimit != (!o.Allowed && !shadow) || g.Remaining != rem {
					t.Fatalf("seed %d, step %d (%+v), descriptor %d: %+v, want over %v, remaining %d",
						seed, step, req, j, g, !o.Allowed && !shadow, rem)
				}
			}
			if got.OverLimit != over {
				t.Fatalf("seed %d, step %d: over limit %v, want %v", seed, step, got.OverLimit, over)
			}
			if over {
				refused++
			}
		}
		if refused < 20 {
			t.Fatalf("%d refusals: the sequence does not exercise them", refused)
		}
	}
}

// randomRLSRequest returns a request on distinct keys (one key twice in a request is
// two ops on one counter, which the model does not cover: sameKeyTwice does) and the ops
// the model applies.
func randomRLSRequest(rng *rand.Rand, limits map[string]int64, now time.Time) (ratelimit.RLSRequest, []ratelimit.Op, []string) {
	domain := []string{"every_hit", "atomic"}[rng.IntN(2)]
	req := ratelimit.RLSRequest{Domain: domain, HitsAddend: uint64(rng.IntN(4))}
	var ops []ratelimit.Op
	var names []string
	window := now.Truncate(time.Hour).Unix()
	for _, k := range rng.Perm(4)[:1+rng.IntN(3)] {
		key := []string{"a", "b", "c", "s"}[k]
		d := ratelimit.RLSDescriptor{Entries: []ratelimit.RLSEntry{{Key: key, Value: fmt.Sprint(rng.IntN(2))}}}
		hits := int64(max(req.HitsAddend, 1))
		if rng.IntN(8) == 0 {
			h := uint64(rng.IntN(2)) // 0: a check without counting
			d.HitsAddend, hits = &h, int64(h)
		}
		req.Descriptors = append(req.Descriptors, d)
		ops = append(ops, ratelimit.Op{Limit: limits[key], Cost: hits, Shadow: key == "s", Always: domain == "every_hit"})
		names = append(names, fmt.Sprint(domain, "/", key, "=", d.Entries[0].Value, "@", window))
	}
	return req, ops, names
}
