package redisstore_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/ratelimit"
	"github.com/gatehouse/gatehouse/ratelimit/internal/redistest"
	"github.com/gatehouse/gatehouse/ratelimit/redisstore"
)

// shareThrottle: a device bucket of 40 a burst, one token an hour. With 3 slots and a
// quarter set aside, each slot's share is 3 units (one per 12 h) and Redis counts 31
// (one per 80 min); with 1 slot, the share is 10 units (one per 4 h) and Redis 30.
var shareThrottle = ratelimit.CompileInput{Apps: map[string]ratelimit.AppLimits{"a": {Limits: []ratelimit.LimitConfig{
	{Name: "per_device", Key: []string{"device"}, Algorithm: "gcra", Requests: 1, Per: time.Hour, Burst: 40},
}}}}

// shareReplicas opens n replicas on r with slots slots, each on a clock stopped at
// start (a share starts empty a TTL after its slot is claimed, then: it is full 36 h
// later with 3 slots, 40 h with 1), and waits until min(n, slots) of them hold a slot.
func shareReplicas(t *testing.T, r *redistest.Proc, start time.Time, n, slots int) ([]*ratelimit.Engine, []*redisstore.Store) {
	t.Helper()
	engines, stores := make([]*ratelimit.Engine, n), make([]*redisstore.Store, n)
	for i := range n {
		stores[i] = openTestRedis(t, ratelimit.RedisConfig{Addrs: []string{r.Addr()},
			Shares: ratelimit.SharesConfig{Slots: slots, Fraction: 0.25, TTL: time.Second}}, newFakeClock(start).Now)
		engines[i] = mustCompile(t, shareThrottle, stores[i])
	}
	for deadline := time.Now().Add(30 * time.Second); holding(stores) < min(n, slots); {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d replicas hold a slot after 30 s, want %d", holding(stores), n, min(n, slots))
		}
		for _, s := range stores {
			s.RenewShares()
		}
		time.Sleep(20 * time.Millisecond) // a poll: a slot frees when its key's TTL runs out
	}
	return engines, stores
}

func holding(stores []*redisstore.Store) int {
	n := 0
	for _, s := range stores {
		if s.HoldsShare() {
			n++
		}
	}
	return n
}

// TestSharesAddUpToTheBucket: the shares and Redis's part add up to the bucket, exactly.
// Hand-worked: burst 40 = 3 shares of 3 + 31 in Redis.
func TestSharesAddUpToTheBucket(t *testing.T) {
	ctx := context.Background()
	r := redistest.Start(t)
	engines, _ := shareReplicas(t, r, t0, 4, 3) // the fourth replica holds no slot: Redis only
	at := t0.Add(37 * time.Hour)                // every share full

	t.Run("spread over every replica: the whole burst", func(t *testing.T) {
		admitted := 0
		for i := range 200 {
			res, err := engines[i%4].Limit(ctx, at, policy.LimitRequest{App: "a", Device: "spread"})
			if err != nil {
				t.Fatal(err)
			}
			if res.Code == "" {
				admitted++
			}
		}
		if admitted != 40 {
			t.Fatalf("admitted %d, want 40 (the burst)", admitted)
		}
	})

	t.Run("one replica: the burst less the other slots' shares", func(t *testing.T) {
		scripts, sets := scriptCalls(r), r.CmdCalls("set")
		for i := 1; i <= 3; i++ { // its own share: no round trip, the rest of the bucket told
			res, err := engines[0].Limit(ctx, at, policy.LimitRequest{App: "a", Device: "one"})
			if err != nil || res.Code != "" || res.Remaining != int64(34-i) {
				t.Fatalf("request %d: %+v %v, want admitted with %d remaining (share %d + Redis 31)", i, res, err, 34-i, 3-i)
			}
		}
		if n := scriptCalls(r) - scripts + r.CmdCalls("set") - sets; n != 0 {
			t.Errorf("the share's requests cost %d Redis commands, want 0", n)
		}
		admitted := 3
		for range 60 {
			res, err := engines[0].Limit(ctx, at, policy.LimitRequest{App: "a", Device: "one"})
			if err != nil {
				t.Fatal(err)
			}
			if res.Code == "" {
				admitted++
				continue
			}
			// Redis's part gets a unit back every 80 min, the share every 12 h.
			if res.Code != "DEVICE_RATE_LIMITED" || res.RetryAfter != 80*time.Minute {
				t.Fatalf("refusal %+v, want DEVICE_RATE_LIMITED with Retry-After 80m", res)
			}
		}
		if admitted != 34 {
			t.Fatalf("admitted %d, want 34 (40 less two other slots' shares of 3)", admitted)
		}
	})

	t.Run("concurrent replicas never admit more than the burst", func(t *testing.T) {
		var admitted atomic.Int64
		var wg sync.WaitGroup
		for w := range 16 {
			wg.Go(func() {
				for range 25 {
					res, err := engines[w%4].Limit(ctx, at, policy.LimitRequest{App: "a", Device: "race"})
					if err != nil {
						t.Error(err)
						return
					}
					if res.Code == "" {
						admitted.Add(1)
					}
				}
			})
		}
		wg.Wait()
		if n := admitted.Load(); n > 40 || n < 31 {
			t.Fatalf("admitted %d of 400, want at most the burst of 40 (and at least Redis's 31)", n)
		}
	})
}

// TestShareTakeover: a replica that claims a slot another one held (and crashed with)
// starts its share empty, so the two never admit more than the slot's share together;
// a replica that finds its slot taken stops using it at once.
func TestShareTakeover(t *testing.T) {
	ctx := context.Background()
	at := t0.Add(41 * time.Hour) // the 1-slot share (10 units, one per 4 h) full
	count := func(e *ratelimit.Engine, device string, n int) int {
		admitted := 0
		for range n {
			res, err := e.Limit(ctx, at, policy.LimitRequest{App: "a", Device: device})
			if err != nil {
				t.Fatal(err)
			}
			if res.Code == "" {
				admitted++
			}
		}
		return admitted
	}

	t.Run("crash", func(t *testing.T) {
		r := redistest.Start(t)
		engines, stores := shareReplicas(t, r, t0, 1, 1)
		if n := count(engines[0], "d", 50); n != 40 {
			t.Fatalf("replica a admitted %d, want 40 (its share of 10 and Redis's 30)", n)
		}
		stores[0].Abandon()                   // the key stays until its TTL runs out
		b, _ := shareReplicas(t, r, at, 1, 1) // it claims the slot after a's last request
		if n := count(b[0], "d", 50); n != 0 {
			t.Fatalf("replica b admitted %d more at the same instant, want 0 (its share starts empty)", n)
		}
		if n := count(b[0], "fresh", 50); n != 30 {
			t.Fatalf("replica b admitted %d of a fresh device before its share filled, want 30 (Redis's part)", n)
		}
	})

	t.Run("slot taken", func(t *testing.T) {
		r := redistest.Start(t)
		engines, stores := shareReplicas(t, r, t0, 1, 1)
		if err := r.Do("SET", stores[0].ShareKey(0), "another-replica"); err != nil {
			t.Fatal(err)
		}
		stores[0].RenewShares()
		if stores[0].HoldsShare() {
			t.Fatal("the replica still uses a slot whose key names another replica")
		}
		if n := count(engines[0], "d", 50); n != 30 {
			t.Fatalf("admitted %d without a slot, want 30 (Redis's part only)", n)
		}
	})
}

// TestShareConfigRefused: a fraction or TTL out of bounds is refused by name.
func TestShareConfigRefused(t *testing.T) {
	for _, tc := range []struct {
		shares ratelimit.SharesConfig
		want   string
	}{
		{ratelimit.SharesConfig{Slots: -1}, "redis.shares.slots"},
		{ratelimit.SharesConfig{Slots: 65}, "redis.shares.slots"},
		{ratelimit.SharesConfig{Slots: 3, Fraction: 0.26}, "redis.shares.fraction"},
		{ratelimit.SharesConfig{Slots: 3, Fraction: 0.0001}, "redis.shares.fraction"},
		{ratelimit.SharesConfig{Slots: 3, TTL: 999 * time.Millisecond}, "redis.shares.ttl"},
		{ratelimit.SharesConfig{Slots: 3, TTL: time.Hour + time.Millisecond}, "redis.shares.ttl"},
	} {
		cfg := ratelimit.StoreConfig{Type: "redis", Redis: ratelimit.RedisConfig{Addrs: []string{"127.0.0.1:1"}, Shares: tc.shares}}
		if errs := cfg.Validate(); len(errs) != 1 || !strings.Contains(fmt.Sprint(errs[0]), tc.want) {
			t.Errorf("%+v: %v, want one error naming %s", tc.shares, errs, tc.want)
		}
	}
}
