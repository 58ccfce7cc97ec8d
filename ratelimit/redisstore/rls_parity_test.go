package redisstore_test

import (
	"context"
	"fmt"
	"github.com/gatehouse/gatehouse/ratelimit"
	"github.com/gatehouse/gatehouse/ratelimit/internal/redistest"
	"math/rand/v2"
	"testing"
	"time"
)

// TestRedisRLSParity sends the same random rate-limit service requests to the memory
// store and to Redis (native counters with leases, and the script), in a domain that
// counts every hit and one that counts all or nothing, and compares every status.
// Over-limit marks are cleared before each request (see TestRedisLeaseParity).
func TestRedisRLSParity(t *testing.T) {
	r := redistest.Start(t)
	limit := func(key string, rpu uint32) ratelimit.DescriptorConfig {
		return ratelimit.DescriptorConfig{Key: key, RateLimit: &ratelimit.RateLimitConfig{Unit: "hour", RequestsPerUnit: rpu}}
	}
	var domains []ratelimit.DomainConfig
	for _, counting := range []string{"every_hit", "atomic"} {
		domains = append(domains, ratelimit.DomainConfig{Domain: counting, Counting: counting, Descriptors: []ratelimit.DescriptorConfig{
			limit("a", 5), limit("b", 9), limit("c", 40), {Key: "s", ShadowMode: true, RateLimit: &ratelimit.RateLimitConfig{Unit: "hour", RequestsPerUnit: 4}}}})
	}
	in := ratelimit.CompileInput{RLS: ratelimit.RLSConfig{Domains: domains}}
	for i, counters := range []string{"native", "script"} {
		t.Run(counters, func(t *testing.T) {
			now, ctx := t0.Add(time.Second), context.Background()
			clock := newFakeClock(now) // the stores' sweeps follow the requests' time
			st := openTestRedis(t, ratelimit.RedisConfig{Addrs: []string{r.Addr()}, KeyPrefix: fmt.Sprintf("rp%d:", i), Counters: counters,
				Lease: ratelimit.LeaseConfig{Idle: time.Hour}}, clock.Now) // no sweep gives units back mid-request
			mem, red := mustCompile(t, in, memStore(t, ratelimit.MemoryConfig{}, clock.Now)), mustCompile(t, in, st)
			rng := rand.New(rand.NewPCG(3, uint64(i)))
			refused := 0
			for step := 0; step < 400; step++ {
				now = now.Add(time.Duration(rng.IntN(30_000)) * time.Millisecond)
				clock.Set(now)
				req := ratelimit.RLSRequest{Domain: []string{"every_hit", "atomic"}[rng.IntN(2)], HitsAddend: uint64(rng.IntN(4))}
				// Distinct keys: with one key twice in a request, the Redis store may tell
				// another remaining count (and, with leases, refuse) where memory does not.
				for _, k := range rng.Perm(4)[:1+rng.IntN(3)] {
					d := ratelimit.RLSDescriptor{Entries: []ratelimit.RLSEntry{{Key: []string{"a", "b", "c", "s"}[k], Value: fmt.Sprint(rng.IntN(2))}}}
					if rng.IntN(8) == 0 {
						h := uint64(rng.IntN(2)) // 0: a check without counting
						d.HitsAddend = &h
					}
					req.Descriptors = append(req.Descriptors, d)
				}
				a, err1 := mem.ShouldRateLimit(ctx, now, req)
				st.ForgetOverMarks()
				b, err2 := red.ShouldRateLimit(ctx, now, req)
				if err1 != nil || err2 != nil {
					t.Fatal(err1, err2)
				}
				if a.OverLimit {
					refused++
				}
				for j := range a.Statuses {
					x, y := a.Statuses[j], b.Statuses[j]
					if a.OverLimit != b.OverLimit || x.OverLimit != y.OverLimit || x.Remaining != y.Remaining {
						t.Fatalf("step %d (%+v), descriptor %d: memory %+v, redis %+v", step, req, j, a.Statuses, b.Statuses)
					}
				}
			}
			if refused < 20 {
				t.Fatalf("%d refusals: the sequence does not exercise them", refused)
			}
		})
	}
}
