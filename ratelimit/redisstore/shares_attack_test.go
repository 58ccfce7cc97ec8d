package redisstore_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/ratelimit"
	"github.com/gatehouse/gatehouse/ratelimit/internal/redistest"
	"github.com/gatehouse/gatehouse/ratelimit/redisstore"
)

// holderOf opens a replica with shares on r, its clock stopped at start, and waits until
// its keeper has claimed a slot (the keeper's first claim runs as the store opens).
func holderOf(t *testing.T, r *redistest.Proc, in ratelimit.CompileInput, start time.Time, shares ratelimit.SharesConfig) (*ratelimit.Engine, *redisstore.Store) {
	t.Helper()
	s := openTestRedis(t, ratelimit.RedisConfig{Addrs: []string{r.Addr()}, Shares: shares}, newFakeClock(start).Now)
	for deadline := time.Now().Add(30 * time.Second); !s.HoldsShare(); runtime.Gosched() {
		if time.Now().After(deadline) {
			t.Fatal("the replica holds no slot after 30 s")
		}
	}
	return mustCompile(t, in, s), s
}

// drain sends n requests of device at one instant and returns how many were admitted
// and the Retry-After of the last refusal.
func drain(t *testing.T, e *ratelimit.Engine, at time.Time, device string, n int) (admitted int, retry time.Duration) {
	t.Helper()
	for range n {
		res, err := e.Limit(context.Background(), at, policy.LimitRequest{App: "a", Device: device})
		if err != nil {
			t.Fatal(err)
		}
		if res.Code == "" {
			admitted++
		} else {
			retry = res.RetryAfter
		}
	}
	return admitted, retry
}

func deviceLimits(limits ...ratelimit.LimitConfig) ratelimit.CompileInput {
	return ratelimit.CompileInput{Apps: map[string]ratelimit.AppLimits{"a": {Limits: limits}}}
}

// TestShareSlowBucketStaysBounded: a slow bucket whose share is forced to one unit has a
// share interval of slots/fraction intervals (here 1000 × 1100 h): a share's TAT plus
// one unit passes the top of int64. Such a bucket is not split (TestShareSplit); the
// device still gets no more than its burst at one instant.
func TestShareSlowBucketStaysBounded(t *testing.T) {
	r := redistest.Start(t)
	in := deviceLimits(ratelimit.LimitConfig{Name: "slow", Key: []string{"device"}, Algorithm: "gcra",
		Requests: 1, Per: 1100 * time.Hour, Burst: 10})
	e, _ := holderOf(t, r, in, t0, ratelimit.SharesConfig{Slots: 1, Fraction: 0.001, TTL: time.Hour})
	if n, _ := drain(t, e, t0.Add(time.Minute), "d", 100); n > 10 {
		t.Fatalf("admitted %d of 100 at one instant, want at most the burst of 10", n)
	}
}

// TestShareSlotLostInRedis: the slot key disappears from Redis while its holder may still
// use it (FLUSHALL, a failover that lost the last renewal, eviction, a DEL), and another
// replica claims the slot. The two must not together admit more from the slot than it
// allows: in any span d, a device gets at most burst + d/interval.
//
// Bucket: 40 a burst, one a minute; 1 slot, a quarter set aside: the share is 10 units
// (one per 4 min), Redis's part 30 (one per 80 s). TTL 1 h: replica a may use its slot
// for 54 min after its last renewal.
func TestShareSlotLostInRedis(t *testing.T) {
	r := redistest.Start(t)
	in := deviceLimits(ratelimit.LimitConfig{Name: "per_device", Key: []string{"device"}, Algorithm: "gcra",
		Requests: 1, Per: time.Minute, Burst: 40})
	cfg := ratelimit.SharesConfig{Slots: 1, Fraction: 0.25, TTL: time.Hour}
	at := t0.Add(3 * time.Hour) // a's share full
	a, as := holderOf(t, r, in, t0, cfg)
	if n, _ := drain(t, a, at, "d", 60); n != 40 {
		t.Fatalf("a admitted %d, want the burst of 40", n)
	}
	if err := r.Do("DEL", as.ShareKey(0)); err != nil {
		t.Fatal(err)
	}
	b, _ := holderOf(t, r, in, at, cfg) // b claims the slot a still uses
	if !as.HoldsShare() {
		t.Fatal("a gave its slot up: the test needs it to run out by itself")
	}
	later := at.Add(8 * time.Minute)
	na, _ := drain(t, a, later, "d", 60)
	nb, _ := drain(t, b, later, "d", 60)
	if total := 40 + na + nb; total > 48 {
		t.Fatalf("admitted 40 + %d (a) + %d (b) = %d over 8 min, want at most 40 + 8 = 48", na, nb, total)
	}
}

// TestShareRetryAfterOfUnusedShare: a refusal's Retry-After may count on this replica's
// share only where the share is offered the request. A device with two token buckets
// (not the throttle path) and a device past the table of shares are counted in Redis
// only: the wait is Redis's part's interval (80 min here), never 0.
func TestShareRetryAfterOfUnusedShare(t *testing.T) {
	perDevice := ratelimit.LimitConfig{Name: "per_device", Key: []string{"device"}, Algorithm: "gcra",
		Requests: 1, Per: time.Hour, Burst: 40}
	cfg := ratelimit.SharesConfig{Slots: 1, Fraction: 0.25, TTL: time.Hour}
	at := t0.Add(50 * time.Hour) // the 10-unit share (one per 4 h) full

	t.Run("two buckets", func(t *testing.T) {
		r := redistest.Start(t)
		second := ratelimit.LimitConfig{Name: "per_device_fast", Key: []string{"device"}, Algorithm: "gcra",
			Requests: 1000, Per: time.Second, Burst: 1000}
		e, _ := holderOf(t, r, deviceLimits(perDevice, second), t0, cfg)
		n, retry := drain(t, e, at, "d", 60)
		if n == 60 || retry != 80*time.Minute {
			t.Fatalf("admitted %d of 60, last Retry-After %v; want refusals with Retry-After 80m", n, retry)
		}
	})

	t.Run("table full", func(t *testing.T) {
		r := redistest.Start(t)
		e, s := holderOf(t, r, deviceLimits(perDevice), t0, cfg)
		s.FillShareTable()
		n, retry := drain(t, e, at, "d", 60)
		if n != 30 || retry != 80*time.Minute {
			t.Fatalf("admitted %d of 60, last Retry-After %v; want Redis's 30, then Retry-After 80m", n, retry)
		}
	})
}

// TestShareSmallBurst: a bucket whose Redis part would be too small for the throttle
// path is not split (its share would never be offered a request): one replica gets the
// whole burst, as the README's bound promises with one slot.
func TestShareSmallBurst(t *testing.T) {
	r := redistest.Start(t)
	in := deviceLimits(ratelimit.LimitConfig{Name: "per_device", Key: []string{"device"}, Algorithm: "gcra",
		Requests: 1, Per: time.Hour, Burst: 8})
	e, _ := holderOf(t, r, in, t0, ratelimit.SharesConfig{Slots: 1, TTL: time.Hour})
	if n, _ := drain(t, e, t0.Add(1000*time.Hour), "d", 20); n != 8 {
		t.Fatalf("admitted %d of 20 at one instant, want the burst of 8", n)
	}
}

// TestShareConfigNeedsLeases: shares work only beside the leases (the store builds them
// together): a configuration that asks for slots with the leases off would run without
// shares, splitting no bucket while the other replicas split them. It is refused.
func TestShareConfigNeedsLeases(t *testing.T) {
	for _, redis := range []ratelimit.RedisConfig{
		{Counters: "script"},
		{Lease: ratelimit.LeaseConfig{MaxUnits: -1}},
	} {
		redis.Addrs, redis.Shares = []string{"127.0.0.1:1"}, ratelimit.SharesConfig{Slots: 3}
		cfg := ratelimit.StoreConfig{Type: "redis", Redis: redis}
		if errs := cfg.Validate(); len(errs) != 1 || !strings.Contains(fmt.Sprint(errs[0]), "redis.shares.slots") {
			t.Errorf("counters %q, lease.max_units %d: %v, want one error naming redis.shares.slots",
				redis.Counters, redis.Lease.MaxUnits, errs)
		}
	}
}
