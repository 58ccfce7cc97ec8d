package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/ratelimit"
	"github.com/gatehouse/gatehouse/ratelimit/internal/redistest"
)

// TestRedisReplicas: three engines (three replicas, each with its own Redis client)
// sharing one Redis under concurrent load admit exactly the configured number.
func TestRedisReplicas(t *testing.T) {
	r := redistest.Start(t)
	in := ratelimit.CompileInput{Apps: map[string]ratelimit.AppLimits{"a": {Limits: []ratelimit.LimitConfig{
		{Name: "window", Key: []string{"device"}, Requests: 100, Per: time.Hour},
	}}, "g": {Limits: []ratelimit.LimitConfig{
		{Name: "bucket", Key: []string{"device"}, Algorithm: "gcra", Requests: 50, Per: time.Second, Burst: 100},
	}}}}
	var engines []*ratelimit.Engine
	for i := 0; i < 3; i++ {
		engines = append(engines, mustCompile(t, in, openTestRedis(t, ratelimit.RedisConfig{Addrs: []string{r.Addr()}}, nil)))
	}
	count := func(engines []*ratelimit.Engine, app string, now func() time.Time, perWorker int) int64 {
		return countAllowed(t, engines, 4, perWorker, now, policy.LimitRequest{App: app, Device: "dev"})
	}
	t.Run("fixed window: exactly the limit", func(t *testing.T) {
		if n := count(engines, "a", func() time.Time { return t0 }, 25); n != 100 {
			t.Fatalf("admitted %d of 300, want exactly 100", n)
		}
	})
	t.Run("fixed window, script: exactly the limit", func(t *testing.T) {
		var scripted []*ratelimit.Engine
		for i := 0; i < 3; i++ {
			st := openTestRedis(t, ratelimit.RedisConfig{Addrs: []string{r.Addr()}, Counters: "script"}, nil)
			scripted = append(scripted, mustCompile(t, in, st))
		}
		at := func() time.Time { return t0.Add(2 * time.Hour) } // the next window
		if n := count(scripted, "a", at, 25); n != 100 {
			t.Fatalf("admitted %d of 300, want exactly 100", n)
		}
	})
	t.Run("gcra: never more than the burst at one instant", func(t *testing.T) {
		// Replicas lease units of a busy bucket (gcralease.go): a replica whose workers
		// are done may still hold its last lease, at most 16 units, unused.
		if n := count(engines, "g", func() time.Time { return t0 }, 25); n > 100 || n < 100-3*16 {
			t.Fatalf("admitted %d of 300, want at most the burst of 100 (and at least %d)", n, 100-3*16)
		}
	})
	t.Run("gcra: never more than burst + rate × elapsed", func(t *testing.T) {
		// An injected clock, monotonic across workers: each request comes 1 ms after
		// the one before, so 720 requests span 719 ms.
		var calls atomic.Int64
		start := t0.Add(4 * time.Hour)
		now := func() time.Time { return start.Add(time.Duration(calls.Add(1)-1) * time.Millisecond) }
		// Another device: a fresh bucket.
		in := in
		in.Apps = map[string]ratelimit.AppLimits{"g2": in.Apps["g"]}
		for i := range engines {
			engines[i] = mustCompile(t, in, storeOf(engines[i]))
		}
		n := count(engines, "g2", now, 60)
		const bound = 100 + 719*50/1000 + 1 // burst + 50/s × 719 ms, and the one at the end
		if n > bound || n < 100 {
			t.Fatalf("admitted %d of 720 over 719 ms; want 100 to %d", n, bound)
		}
	})
}

// countAllowed sends req from workers goroutines per engine, perWorker times each, at
// now(), and returns how many were admitted.
func countAllowed(t *testing.T, engines []*ratelimit.Engine, workers, perWorker int, now func() time.Time, req policy.LimitRequest) int64 {
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for _, e := range engines {
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < perWorker; i++ {
					res, err := e.Limit(context.Background(), now(), req)
					if err != nil {
						t.Error(err)
						return
					}
					if res.Code == "" {
						allowed.Add(1)
					}
				}
			}()
		}
	}
	wg.Wait()
	return allowed.Load()
}

// TestRedisCounterKeysExpire: every counter key a random sequence of inline requests
// creates with native counters expires with its window, credits never. (The verdicts and
// counts of such sequences are checked against models by the store suite: storetest,
// "random inline limits".)
func TestRedisCounterKeysExpire(t *testing.T) {
	r := redistest.Start(t)
	in := ratelimit.CompileInput{Apps: map[string]ratelimit.AppLimits{"a": {Limits: []ratelimit.LimitConfig{
		{Name: "minute", Key: []string{"ip"}, Requests: 20, Per: time.Minute},
		{Name: "month", Requests: 150, Period: "month", TimeZone: "America/New_York"},
		{Name: "credits", Key: []string{"license"}, Credits: true, Requests: 120},
		{Name: "shadow", Key: []string{"ip"}, Requests: 3, Per: time.Minute, Shadow: true},
	}}}}
	st := openTestRedis(t, ratelimit.RedisConfig{Addrs: []string{r.Addr()}, KeyPrefix: "expire:", Counters: "native"}, nil)
	e := mustCompile(t, in, st)
	rng := rand.New(rand.NewPCG(1, 2))
	now := time.Date(2025, 1, 31, 23, 0, 0, 0, time.UTC)
	ctx := context.Background()
	refused := 0
	for i := 0; i < 400; i++ {
		now = now.Add(time.Duration(rng.IntN(400)) * time.Millisecond)
		req := policy.LimitRequest{App: "a", Device: fmt.Sprint("d", rng.IntN(3)), IP: fmt.Sprint("ip", rng.IntN(2)),
			License: "L", Cost: int64(1 + rng.IntN(2))}
		res, err := e.Limit(ctx, now, req)
		if err != nil {
			t.Fatal(err)
		}
		if res.Code != "" {
			refused++
		}
	}
	if refused == 0 {
		t.Fatal("no request was refused: the sequence does not exercise refusals")
	}
	c := st.Client()
	keys, err := c.Do(ctx, c.B().Keys().Pattern(st.Prefix()+"*").Build()).AsStrSlice()
	if err != nil || len(keys) == 0 {
		t.Fatalf("keys: %v %v", keys, err)
	}
	for _, k := range keys {
		pttl, err := c.Do(ctx, c.B().Pttl().Key(k).Build()).AsInt64()
		credits := strings.Contains(k, "credits")
		if err != nil || credits != (pttl == -1) || (!credits && pttl <= 0) {
			t.Errorf("%s: pttl %d %v", k, pttl, err)
		}
	}
}

func TestRedisBindCreditsLockout(t *testing.T) {
	r := redistest.Start(t)
	s := openTestRedis(t, ratelimit.RedisConfig{Addrs: []string{r.Addr()}}, nil)
	ctx := context.Background()
	for i, tc := range []struct {
		member string
		bound  bool
		count  int
	}{{"d1", true, 1}, {"d2", true, 2}, {"d3", false, 2}, {"d1", true, 2}} {
		bound, n, err := s.Bind(ctx, "lic:1", tc.member, 2)
		if err != nil || bound != tc.bound || n != tc.count {
			t.Fatalf("bind %d: %v %d %v", i, bound, n, err)
		}
	}
	if err := s.ResetBindings(ctx, "lic:1"); err != nil {
		t.Fatal(err)
	}
	if bound, n, _ := s.Bind(ctx, "lic:1", "d3", 2); !bound || n != 1 {
		t.Fatal("after reset")
	}
	in := ratelimit.CompileInput{
		Apps:    map[string]ratelimit.AppLimits{"a": {Limits: []ratelimit.LimitConfig{{Name: "prepaid", Key: []string{"license"}, Credits: true, Requests: 1}}}},
		Lockout: ratelimit.LockoutConfig{MaxFailures: 2, Window: time.Minute, LockFor: time.Minute},
	}
	e := mustCompile(t, in, s)
	req := policy.LimitRequest{App: "a", License: "L"}
	e.Limit(ctx, t0, req)
	if res, _ := e.Limit(ctx, t0, req); res.Code != policy.NoCredits {
		t.Fatalf("credits: %+v", res)
	}
	if bal, err := e.TopUp(ctx, ratelimit.CreditsRef{Scope: "app", Owner: "a", Name: "prepaid"}, req, 3); err != nil || bal != 3 {
		t.Fatalf("top-up: %d %v", bal, err)
	}
	if res, _ := e.Limit(ctx, t0, req); res.Code != "" || res.Remaining != 2 {
		t.Fatalf("after top-up: %+v", res)
	}
	e.Fail(ctx, t0, "ip:9.9.9.9")
	e.Fail(ctx, t0, "ip:9.9.9.9")
	if until, locked, err := e.Locked(ctx, t0, "ip:9.9.9.9", "device:x"); err != nil || !locked || !until.Equal(t0.Add(time.Minute)) {
		t.Fatalf("lockout: %v %v %v", until, locked, err)
	}
}

// TestRedisCluster runs the store against a one-node Redis Cluster: a script whose keys
// hash to different slots fails there (CROSSSLOT), so this checks the hash tags.
func TestRedisCluster(t *testing.T) {
	r := redistest.StartCluster(t)
	s := openTestRedis(t, ratelimit.RedisConfig{Mode: "cluster", Addrs: []string{r.Addr()}}, nil)
	in := ratelimit.CompileInput{
		Apps: map[string]ratelimit.AppLimits{"a": {Org: "acme", Limits: []ratelimit.LimitConfig{
			{Name: "device", Key: []string{"device"}, Requests: 1, Per: time.Minute},
			{Name: "ip", Key: []string{"ip"}, Requests: 5, Per: time.Minute},
		}}},
		Orgs:    map[string][]ratelimit.LimitConfig{"acme": {{Name: "org", Requests: 100, Period: "month"}}},
		Lockout: ratelimit.LockoutConfig{MaxFailures: 1, Window: time.Minute, LockFor: time.Minute},
		RLS:     ratelimit.RLSConfig{Files: []string{"../testdata/messaging.yaml"}},
	}
	e := mustCompile(t, in, s)
	ctx := context.Background()
	req := policy.LimitRequest{App: "a", Device: "d", IP: "1.1.1.1"}
	if res, err := e.Limit(ctx, t0, req); err != nil || res.Code != "" {
		t.Fatalf("first: %+v %v", res, err)
	}
	if res, err := e.Limit(ctx, t0, req); err != nil || res.Code != policy.DeviceRateLimited {
		t.Fatalf("second: %+v %v", res, err)
	}
	rls := ratelimit.RLSRequest{Domain: "messaging", Descriptors: []ratelimit.RLSDescriptor{
		{Entries: []ratelimit.RLSEntry{{Key: "message_type", Value: "marketing"}, {Key: "to_number", Value: "1"}}},
		{Entries: []ratelimit.RLSEntry{{Key: "to_number", Value: "1"}}},
	}}
	if res, err := e.ShouldRateLimit(ctx, t0, rls); err != nil || res.OverLimit || res.Statuses[1].Remaining != 99 {
		t.Fatalf("rls: %+v %v", res, err)
	}
	if err := e.Fail(ctx, t0, "ip:1", "device:2"); err != nil {
		t.Fatal(err)
	}
	if _, locked, err := e.Locked(ctx, t0, "ip:1", "device:2"); err != nil || !locked {
		t.Fatalf("lockout: %v %v", locked, err)
	}
}

// TestRedisFaults kills Redis under load: every fail mode behaves as configured, every
// call returns (with ErrUnavailable once Redis is gone), a known-over key is still
// denied without Redis, and after a restart the store recovers. Requests and the circuit
// breaker run on an injected clock; the test waits on conditions, never on time.
func TestRedisFaults(t *testing.T) {
	r := redistest.Start(t)
	clock := newFakeClock(t0)
	store := openTestRedis(t, ratelimit.RedisConfig{Addrs: []string{r.Addr()}, Timeout: 250 * time.Millisecond,
		Breaker: ratelimit.BreakerConfig{Failures: 3, Window: 50 * time.Millisecond, Cooldown: 100 * time.Millisecond}}, clock.Now)
	lim := []ratelimit.LimitConfig{{Name: "l", Key: []string{"device"}, Requests: 1000, Per: time.Hour}}
	in := ratelimit.CompileInput{Apps: map[string]ratelimit.AppLimits{
		"closed": {Limits: lim},
		"open":   {Limits: lim, FailMode: "open"},
		"local":  {Limits: []ratelimit.LimitConfig{{Name: "l", Key: []string{"device"}, Requests: 2, Per: time.Hour}}, FailMode: "local"},
		"hot":    {Limits: []ratelimit.LimitConfig{{Name: "l", Key: []string{"device"}, Requests: 1, Per: time.Hour}}},
	}}
	e := mustCompile(t, in, store)
	ctx := context.Background()
	limit := func(c context.Context, app, device string) (policy.LimitResult, error) {
		return e.Limit(c, clock.Now(), policy.LimitRequest{App: app, Device: device})
	}
	// A hot device goes over its limit while Redis is up.
	limit(ctx, "hot", "abuser")
	if res, _ := limit(ctx, "hot", "abuser"); res.Code != policy.DeviceRateLimited {
		t.Fatalf("hot: %+v", res)
	}
	store.WaitOverMarks()

	var stop atomic.Bool
	var calls, errs atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load() && i < 100_000; i++ {
				cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
				_, err := limit(cctx, "closed", fmt.Sprint("d", i%10))
				cancel()
				calls.Add(1)
				if err != nil && !errors.Is(err, ratelimit.ErrUnavailable) {
					t.Errorf("a failed call: %v, want ratelimit.ErrUnavailable", err)
				}
				if err != nil {
					errs.Add(1)
					runtime.Gosched()
				}
			}
		}()
	}
	waitFor(t, 10*time.Second, "calls under load", func() bool { return calls.Load() >= 100 })
	r.Stop() // Redis dies under load
	waitFor(t, 10*time.Second, "the breaker to open", func() bool {
		clock.Add(10 * time.Millisecond) // failures spread over the breaker's window
		limit(ctx, "closed", "w")
		return store.BreakerOpen()
	})

	res, err := limit(ctx, "closed", "x")
	if !errors.Is(err, ratelimit.ErrUnavailable) {
		t.Fatalf("closed: %+v %v", res, err)
	}
	if res, err := limit(ctx, "open", "x"); err != nil || res.Code != "" {
		t.Fatalf("open: %+v %v", res, err)
	}
	for i, want := range []policy.Code{"", "", policy.DeviceRateLimited} {
		if res, err := limit(ctx, "local", "x"); err != nil || res.Code != want {
			t.Fatalf("local %d: %+v %v", i, res, err)
		}
	}
	if res, err := limit(ctx, "hot", "abuser"); err != nil || res.Code != policy.DeviceRateLimited {
		t.Fatalf("known-over key without Redis: %+v %v", res, err)
	}

	r.Start() // same port
	waitFor(t, 10*time.Second, "recovery after the restart", func() bool {
		clock.Add(100 * time.Millisecond) // a cooldown: the breaker lets a probe through
		_, err := limit(ctx, "closed", "z")
		return err == nil
	})
	stop.Store(true)
	wg.Wait()
	t.Logf("%d calls, %d errors", calls.Load(), errs.Load())
}
