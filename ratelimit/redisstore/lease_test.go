package redisstore_test

import (
	"context"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/ratelimit"
	"github.com/gatehouse/gatehouse/ratelimit/internal/redistest"
	"github.com/gatehouse/gatehouse/ratelimit/redisstore"
)

// redisCount returns the value of key in r (-1: absent).
func redisCount(t *testing.T, r *redistest.Proc, key string) int64 {
	t.Helper()
	n, err := r.Query("EXISTS", key)
	if err != nil {
		t.Fatal(err)
	}
	if n == "0" {
		return -1
	}
	v, err := r.Query("GET", key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		t.Fatalf("GET %s: %q", key, v)
	}
	return c
}

// leaseStore starts a Redis and opens a store on it whose leases go back after idle.
func leaseStore(t *testing.T, idle time.Duration) (*redistest.Proc, *redisstore.Store) {
	r := redistest.Start(t)
	return r, openTestRedis(t, ratelimit.RedisConfig{Addrs: []string{r.Addr()}, Lease: ratelimit.LeaseConfig{Idle: idle}}, nil)
}

func leaseApp(requests int64, per time.Duration) ratelimit.CompileInput {
	return ratelimit.CompileInput{Apps: map[string]ratelimit.AppLimits{"a": {Limits: []ratelimit.LimitConfig{
		{Name: "l", Key: []string{"device"}, Requests: requests, Per: per}}}}}
}

// TestRedisLease: a replica reserves units of a busy counter and admits from them without
// a round trip; the counts it reports stay exact, Redis never holds fewer units than were
// admitted, and unused units go back when the counter goes idle and when the store closes.
func TestRedisLease(t *testing.T) {
	ctx := context.Background()
	req := policy.LimitRequest{App: "a", Device: "d"}

	t.Run("fewer round trips, exact counts, unused units back on close", func(t *testing.T) {
		r, st := leaseStore(t, time.Hour)
		m := ratelimit.NewMetrics()
		e := mustCompile(t, leaseApp(10_000, time.Hour), st, ratelimit.WithMetrics(m))
		before := r.CmdCalls("incrby")
		for i := 1; i <= 300; i++ {
			res, err := e.Limit(ctx, t0, req)
			if err != nil || res.Code != "" || res.Remaining != int64(10_000-i) {
				t.Fatalf("request %d: %+v %v, want admitted with %d remaining", i, res, err, 10_000-i)
			}
		}
		n := r.CmdCalls("incrby") - before
		if n > 20 {
			t.Fatalf("%d INCRBY for 300 requests on one counter, want at most 20", n)
		}
		key := onlyKey(t, st)
		held := redisCount(t, r, key)
		if held < 300 || held > 300+redisstore.DefaultLeaseUnits {
			t.Fatalf("Redis counts %d, want 300 admitted plus at most %d reserved", held, redisstore.DefaultLeaseUnits)
		}
		st.Close()
		if c := redisCount(t, r, key); c != 300 {
			t.Fatalf("after close Redis counts %d, want the 300 admitted", c)
		}
		// The units returned are those Redis held past the 300 admitted; every request
		// not sent to Redis was admitted from leased units (and so were those that went
		// to Redis only to refill the lease, their own units taken from it).
		leased := metricValue(t, m, "gatehouse_store_lease_units_total", "event", "leased")
		returned := metricValue(t, m, "gatehouse_store_lease_units_total", "event", "returned")
		if returned != float64(held-300) || returned <= 0 || leased-returned < float64(300-n) {
			t.Fatalf("lease units: %v leased, %v returned; want %d returned and at least %d admitted from leases", leased, returned, held-300, 300-n)
		}
		t.Logf("%d INCRBY for 300 requests", n)
	})

	t.Run("idle reserves go back, keeping the key's expiry", func(t *testing.T) {
		r, st := leaseStore(t, 40*time.Millisecond)
		e := mustCompile(t, leaseApp(10_000, time.Hour), st)
		for i := 0; i < 100; i++ {
			if _, err := e.Limit(ctx, t0, req); err != nil {
				t.Fatal(err)
			}
		}
		key := onlyKey(t, st)
		waitFor(t, 5*time.Second, "the reserve to go back", func() bool { return redisCount(t, r, key) == 100 })
		if ms, err := r.Query("PTTL", key); err != nil || ms == "-1" || strings.HasPrefix(ms, "-") {
			t.Fatalf("PTTL %s %v: the returned key lost its expiry", ms, err)
		}
		// The reserve is gone: the next request counts from what Redis holds.
		if res, err := e.Limit(ctx, t0, req); err != nil || res.Remaining != 10_000-101 {
			t.Fatalf("after the return: %+v %v", res, err)
		}
	})

	t.Run("a key Redis lost is not recreated by a return", func(t *testing.T) {
		r, st := leaseStore(t, time.Hour)
		e := mustCompile(t, leaseApp(10_000, time.Hour), st)
		for i := 0; i < 100; i++ {
			if _, err := e.Limit(ctx, t0, req); err != nil {
				t.Fatal(err)
			}
		}
		key := onlyKey(t, st)
		if err := r.Do("FLUSHALL"); err != nil {
			t.Fatal(err)
		}
		st.Close()
		if c := redisCount(t, r, key); c != -1 {
			t.Fatalf("the return recreated the key with %d", c)
		}
	})

	t.Run("three replicas: never more than the limit, all of it once reserves are back", func(t *testing.T) {
		r := redistest.Start(t)
		var engines []*ratelimit.Engine
		for i := 0; i < 3; i++ {
			st := openTestRedis(t, ratelimit.RedisConfig{Addrs: []string{r.Addr()}, Lease: ratelimit.LeaseConfig{Idle: 40 * time.Millisecond}}, nil)
			engines = append(engines, mustCompile(t, leaseApp(500, time.Hour), st))
		}
		at := func() time.Time { return t0 }
		// Far from the limit nothing is refused.
		if n := countAllowed(t, engines, 4, 30, at, req); n != 360 {
			t.Fatalf("first 360 requests: %d admitted, want all", n)
		}
		n := countAllowed(t, engines, 4, 30, at, req)
		if n > 140 {
			t.Fatalf("next 360 requests: %d admitted, over the limit (140 left)", n)
		}
		key := onlyKey(t, storeOf(engines[0]).(*redisstore.Store))
		waitFor(t, 5*time.Second, "the reserves to go back", func() bool { return redisCount(t, r, key) == 360+n })
		n += countAllowed(t, engines, 4, 20, at, req)
		if n != 140 {
			t.Fatalf("admitted %d after the first 360, want exactly the 140 left", n)
		}
	})

	t.Run("a lowered limit does not let reserved units through", func(t *testing.T) {
		r := redistest.Start(t)
		cfg := ratelimit.RedisConfig{Addrs: []string{r.Addr()}, Lease: ratelimit.LeaseConfig{Idle: 40 * time.Millisecond}}
		a := mustCompile(t, leaseApp(10_000, time.Hour), openTestRedis(t, cfg, nil))
		b := mustCompile(t, leaseApp(10_000, time.Hour), openTestRedis(t, cfg, nil))
		for i := 0; i < 200; i++ { // a holds a reserve
			if _, err := a.Limit(ctx, t0, req); err != nil {
				t.Fatal(err)
			}
		}
		big := req
		big.Cost = 8800 // b takes the count to 9,000 admitted
		if res, err := b.Limit(ctx, t0, big); err != nil || res.Code != "" {
			t.Fatalf("b's request: %+v %v", res, err)
		}
		// A reload lowers the limit to what was admitted: nothing more may pass, though a
		// still holds units reserved under the old limit.
		a = mustCompile(t, leaseApp(9000, time.Hour), storeOf(a))
		b = mustCompile(t, leaseApp(9000, time.Hour), storeOf(b))
		for i := 0; i < 100; i++ {
			for _, e := range []*ratelimit.Engine{a, b} {
				if res, err := e.Limit(ctx, t0, req); err != nil || res.Code == "" {
					t.Fatalf("request %d after the limit was lowered to the count: %+v %v", i+1, res, err)
				}
			}
		}
		// The units a cannot use go back: Redis counts what was admitted.
		key := onlyKey(t, storeOf(a).(*redisstore.Store))
		waitFor(t, 5*time.Second, "the unusable lease to go back", func() bool { return redisCount(t, r, key) == 9000 })
	})

	t.Run("lockout failures are never leased", func(t *testing.T) {
		r := redistest.Start(t)
		cfg := ratelimit.RedisConfig{Addrs: []string{r.Addr()}, Lease: ratelimit.LeaseConfig{Idle: time.Hour}}
		in := ratelimit.CompileInput{Lockout: ratelimit.LockoutConfig{MaxFailures: 20, Window: time.Hour, LockFor: time.Hour, Key: []string{"ip"}}}
		a := mustCompile(t, in, openTestRedis(t, cfg, nil))
		b := mustCompile(t, in, openTestRedis(t, cfg, nil))
		fail := func(e *ratelimit.Engine, n int) {
			for i := 0; i < n; i++ {
				if err := e.Fail(ctx, t0, "ip:1.2.3.4"); err != nil {
					t.Fatal(err)
				}
			}
		}
		locked := func() bool {
			_, locked, err := a.Locked(ctx, t0, "ip:1.2.3.4")
			if err != nil {
				t.Fatal(err)
			}
			return locked
		}
		fail(a, 17) // a lease would hold units besides: 14 after 17 failures
		fail(b, 1)
		if locked() {
			t.Fatal("locked after 18 of 20 failures")
		}
		fail(b, 2)
		if !locked() {
			t.Fatal("not locked after 20 failures")
		}
	})

	t.Run("a refund takes the reserve back with it", func(t *testing.T) {
		r, st := leaseStore(t, time.Hour)
		exp := t0.Add(time.Hour).UnixNano()
		op := ratelimit.Op{Key: ratelimit.NewKey("w", "", 1, "d"), Kind: ratelimit.KindCounter, Limit: 1000, Cost: 1, Expire: exp}
		out := make([]ratelimit.Outcome, 1)
		for i := 0; i < 20; i++ {
			if err := st.Apply(ctx, t0, []ratelimit.Op{op}, out); err != nil {
				t.Fatal(err)
			}
		}
		refund := op
		refund.Cost = -30 // more than was admitted: down to nothing, as in memory
		if err := st.Apply(ctx, t0, []ratelimit.Op{refund}, out); err != nil || out[0].Value != 0 {
			t.Fatalf("refund: %+v %v, want nothing counted", out[0], err)
		}
		if c := redisCount(t, r, op.Key.Render(st.Prefix(), false)); c != 0 {
			t.Fatalf("Redis counts %d after the refund, want 0", c)
		}
		// From nothing, the whole limit again, and not one more.
		admitted := 0
		for i := 0; i < 1100; i++ {
			if err := st.Apply(ctx, t0, []ratelimit.Op{op}, out); err != nil {
				t.Fatal(err)
			}
			if out[0].Allowed {
				admitted++
			}
		}
		if admitted != 1000 {
			t.Fatalf("%d admitted after the refund, want 1000", admitted)
		}
	})

	t.Run("a request that never reached Redis keeps the lease", func(t *testing.T) {
		r, st := leaseStore(t, time.Hour)
		op := ratelimit.Op{Key: ratelimit.NewKey("w", "", 1, "d"), Kind: ratelimit.KindCounter, Limit: 1000, Cost: 1, Expire: t0.Add(time.Hour).UnixNano()}
		out := make([]ratelimit.Outcome, 1)
		for i := 0; i < 20; i++ {
			if err := st.Apply(ctx, t0, []ratelimit.Op{op}, out); err != nil {
				t.Fatal(err)
			}
		}
		refund := op
		refund.Cost = -5
		restore := st.Disconnect() // not connected: the call fails before sending anything
		if err := st.Apply(ctx, t0, []ratelimit.Op{refund}, out); err == nil {
			t.Fatal("refund without a connection succeeded")
		}
		restore()
		// The lease is still here: the next request is admitted from it.
		before := r.CmdCalls("incrby")
		if err := st.Apply(ctx, t0, []ratelimit.Op{op}, out); err != nil || !out[0].Allowed || out[0].Value != 21 {
			t.Fatalf("next request: %+v %v", out[0], err)
		}
		if n := r.CmdCalls("incrby") - before; n != 0 {
			t.Fatalf("the next request went to Redis (%d INCRBY): the lease was lost", n)
		}
		st.Close()
		if c := redisCount(t, r, op.Key.Render(st.Prefix(), false)); c != 21 {
			t.Fatalf("Redis counts %d after close, want the 21 admitted (the refund failed)", c)
		}
	})

	t.Run("limits that change on one counter count as in memory", func(t *testing.T) {
		// A reload lowers a limit, or routes with different limits share a counter (RLS
		// overrides can): a lease under a higher limit serves no lower one, and the
		// counts and verdicts stay those of the memory store.
		type step struct{ limit, cost, n int64 }
		for _, tc := range []struct {
			name  string
			steps []step
		}{
			{"lowered", []step{{1000, 1, 100}, {500, 1, 450}}},
			{"lowered near the count", []step{{400, 3, 12}, {40, 3, 3}}},
			{"alternating routes", []step{{1000, 1, 1}, {600, 1, 1}, {1000, 1, 1}, {600, 1, 1}, {1000, 1, 300}, {600, 1, 400}}},
			{"a small limit on a leased counter", []step{{400, 1, 2}, {30, 1, 1}, {400, 1, 1}, {30, 1, 40}}},
			{"costs", []step{{1000, 3, 50}, {200, 2, 40}, {1000, 5, 30}}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, st := leaseStore(t, time.Hour)
				mem := memStore(t, ratelimit.MemoryConfig{}, nil)
				op := ratelimit.Op{Key: ratelimit.NewKey("w", "", 1, "d"), Kind: ratelimit.KindCounter, Expire: t0.Add(time.Hour).UnixNano()}
				refused := 0
				for si, s := range tc.steps {
					op.Limit, op.Cost = s.limit, s.cost
					for i := int64(0); i < s.n; i++ {
						a, b := make([]ratelimit.Outcome, 1), make([]ratelimit.Outcome, 1)
						if err := mem.Apply(ctx, t0, []ratelimit.Op{op}, a); err != nil {
							t.Fatal(err)
						}
						if err := st.Apply(ctx, t0, []ratelimit.Op{op}, b); err != nil {
							t.Fatal(err)
						}
						if a[0].Allowed != b[0].Allowed || a[0].Value != b[0].Value {
							t.Fatalf("step %d (limit %d, cost %d), request %d: memory %+v, redis %+v", si+1, s.limit, s.cost, i+1, a[0], b[0])
						}
						if !a[0].Allowed {
							refused++
						}
					}
				}
				if refused == 0 && tc.name != "alternating routes" {
					t.Fatal("nothing refused: the steps do not reach the limit")
				}
			})
		}
	})

	t.Run("a lease given back ahead of a request that times out is not given back twice", func(t *testing.T) {
		r := redistest.Start(t)
		st := openTestRedis(t, ratelimit.RedisConfig{Addrs: []string{r.Addr()}, Timeout: 50 * time.Millisecond, Lease: ratelimit.LeaseConfig{Idle: time.Hour}}, nil)
		op := ratelimit.Op{Key: ratelimit.NewKey("w", "", 1, "d"), Kind: ratelimit.KindCounter, Limit: 10_000, Cost: 1, Expire: t0.Add(time.Hour).UnixNano()}
		out := make([]ratelimit.Outcome, 2)
		for i := 0; i < 200; i++ {
			if err := st.Apply(ctx, t0, []ratelimit.Op{op}, out); err != nil || !out[0].Allowed {
				t.Fatalf("request %d: %+v %v", i+1, out[0], err)
			}
		}
		// Redis is stopped (SIGSTOP: connected but silent): the next request's commands
		// wait in its socket, and it times out after they were sent; Redis runs them
		// once it resumes, the lease's return with them.
		if err := r.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		bucket := ratelimit.Op{Key: ratelimit.NewKey("b", "", 0, "d"), Kind: ratelimit.KindGCRA, Limit: 1 << 30, Cost: 1, Interval: int64(time.Millisecond)}
		err := st.Apply(ctx, t0, []ratelimit.Op{op, bucket}, out)
		if err := r.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		if err == nil {
			t.Fatal("the request did not time out with Redis stopped")
		}
		if err := r.Do("PING"); err != nil { // Redis is running again
			t.Fatal(err)
		}
		st.Close()
		key := op.Key.Render(st.Prefix(), false)
		// Given back twice, the lease would leave Redis below the 200 admitted, so that the
		// counter could admit past its limit: never. Above: 201 when the timed-out request was
		// counted and the store closed before Redis ran its give-back (flight.go); more only
		// when, on a loaded machine, the request timed out before its commands were written
		// and the give-back on Close timed out too, which loses at most one lease's units
		// until the window ends, as a replica's crash does.
		if c := redisCount(t, r, key); c < 200 || c > 200+1+redisstore.DefaultLeaseUnits {
			t.Fatalf("Redis counts %d, want the 200 admitted, plus at most the timed-out request and one lease", c)
		}
	})

	t.Run("a lease no request can use goes back though the counter stays busy", func(t *testing.T) {
		r, st := leaseStore(t, 40*time.Millisecond)
		high := ratelimit.Op{Key: ratelimit.NewKey("w", "", 1, "d"), Kind: ratelimit.KindCounter, Limit: 1000, Cost: 1, Expire: t0.Add(time.Hour).UnixNano()}
		low := high
		low.Limit = 900
		out := make([]ratelimit.Outcome, 1)
		for i := 0; i < 150; i++ {
			if err := st.Apply(ctx, t0, []ratelimit.Op{high}, out); err != nil {
				t.Fatal(err)
			}
		}
		key := high.Key.Render(st.Prefix(), false)
		admitted := int64(150)
		for deadline := time.Now().Add(5 * time.Second); redisCount(t, r, key) != admitted; time.Sleep(2 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("Redis counts %d with %d admitted after 5s of requests the lease cannot serve", redisCount(t, r, key), admitted)
			}
			if err := st.Apply(ctx, t0, []ratelimit.Op{low}, out); err != nil || !out[0].Allowed {
				t.Fatalf("%+v %v", out[0], err)
			}
			admitted++
		}
	})

	t.Run("a script reading a leased counter reports what was admitted", func(t *testing.T) {
		_, st := leaseStore(t, time.Hour)
		exp := t0.Add(time.Hour).UnixNano()
		op := ratelimit.Op{Key: ratelimit.NewKey("w", "", 1, "d"), Kind: ratelimit.KindCounter, Limit: 1000, Cost: 1, Expire: exp}
		bucket := ratelimit.Op{Key: ratelimit.NewKey("b", "", 0, "d"), Kind: ratelimit.KindGCRA, Limit: 1000, Cost: 1, Interval: int64(time.Millisecond)}
		out := make([]ratelimit.Outcome, 2)
		for i := 1; i <= 20; i++ {
			if err := st.Apply(ctx, t0, []ratelimit.Op{op}, out); err != nil || out[0].Value != int64(i) {
				t.Fatalf("request %d: %+v %v", i, out[0], err)
			}
		}
		// With a token bucket the request goes through the script.
		if err := st.Apply(ctx, t0, []ratelimit.Op{op, bucket}, out); err != nil || out[0].Value != 21 {
			t.Fatalf("scripted request: %+v %v, want 21 counted", out[0], err)
		}
		if err := st.Apply(ctx, t0, []ratelimit.Op{op}, out); err != nil || out[0].Value != 22 {
			t.Fatalf("next request: %+v %v, want 22 counted", out[0], err)
		}
	})

	t.Run("a new window starts from zero", func(t *testing.T) {
		_, st := leaseStore(t, time.Hour)
		e := mustCompile(t, leaseApp(1000, time.Minute), st)
		for i := 0; i < 100; i++ {
			if _, err := e.Limit(ctx, t0, req); err != nil {
				t.Fatal(err)
			}
		}
		for i := 1; i <= 100; i++ {
			res, err := e.Limit(ctx, t0.Add(time.Minute), req)
			if err != nil || res.Remaining != int64(1000-i) {
				t.Fatalf("request %d of the next window: %+v %v", i, res, err)
			}
		}
	})

	t.Run("a request another limit refuses consumes no reserved unit", func(t *testing.T) {
		r, st := leaseStore(t, time.Hour)
		exp := t0.Add(time.Hour).UnixNano()
		big := ratelimit.Op{Key: ratelimit.NewKey("big", "", 1, "d"), Kind: ratelimit.KindCounter, Limit: 1000, Cost: 1, Expire: exp}
		small := ratelimit.Op{Key: ratelimit.NewKey("small", "", 1, "d"), Kind: ratelimit.KindCounter, Limit: 40, Cost: 1, Expire: exp}
		for i := 1; i <= 100; i++ {
			out := make([]ratelimit.Outcome, 2)
			if err := st.Apply(ctx, t0, []ratelimit.Op{big, small}, out); err != nil {
				t.Fatal(err)
			}
			want := i <= 40
			if allowed := out[0].Allowed && out[1].Allowed; allowed != want {
				t.Fatalf("request %d: %+v, want admitted %v", i, out, want)
			}
			if want && out[0].Value != int64(i) {
				t.Fatalf("request %d: big counts %d", i, out[0].Value)
			}
		}
		check := big
		check.Cost = 0
		out := make([]ratelimit.Outcome, 1)
		if err := st.Apply(ctx, t0, []ratelimit.Op{check}, out); err != nil || out[0].Value != 40 {
			t.Fatalf("check of big: %+v %v, want 40 counted", out[0], err)
		}
		st.Close()
		if c := redisCount(t, r, big.Key.Render(st.Prefix(), false)); c != 40 {
			t.Fatalf("Redis counts %d on big after close, want 40", c)
		}
	})

	t.Run("a refused request gives back the part of its cost the reserve lent", func(t *testing.T) {
		r, st := leaseStore(t, time.Hour)
		exp := t0.Add(time.Hour).UnixNano()
		big := ratelimit.Op{Key: ratelimit.NewKey("big", "", 1, "d"), Kind: ratelimit.KindCounter, Limit: 1000, Cost: 1, Expire: exp}
		none := ratelimit.Op{Key: ratelimit.NewKey("none", "", 1, "d"), Kind: ratelimit.KindCounter, Limit: 0, Cost: 1, Expire: exp}
		out := make([]ratelimit.Outcome, 2)
		// The first request reserves nothing, the second one unit more than its own.
		for i := 0; i < 2; i++ {
			if err := st.Apply(ctx, t0, []ratelimit.Op{big}, out); err != nil || !out[0].Allowed {
				t.Fatalf("request %d: %+v %v", i+1, out[0], err)
			}
		}
		// Two units: one from the reserve, one from Redis; the other limit refuses.
		big.Cost = 2
		if err := st.Apply(ctx, t0, []ratelimit.Op{big, none}, out); err != nil || out[1].Allowed {
			t.Fatalf("refused request: %+v %v", out, err)
		}
		if out[0].Value != 2 {
			t.Fatalf("big counts %d after the refusal, want 2", out[0].Value)
		}
		st.Close()
		if c := redisCount(t, r, big.Key.Render(st.Prefix(), false)); c != 2 {
			t.Fatalf("Redis counts %d on big after close, want 2", c)
		}
	})

	t.Run("Redis gone: the reserve still admits, then the fail mode applies", func(t *testing.T) {
		r := redistest.Start(t)
		st := openTestRedis(t, ratelimit.RedisConfig{Addrs: []string{r.Addr()}, Timeout: 50 * time.Millisecond,
			Lease: ratelimit.LeaseConfig{Idle: time.Hour}}, nil)
		e := mustCompile(t, leaseApp(10_000, time.Hour), st)
		for i := 0; i < 100; i++ { // the reserve grows to 64 units
			if _, err := e.Limit(ctx, t0, req); err != nil {
				t.Fatal(err)
			}
		}
		r.Stop()
		admitted, failed := 0, 0
		for i := 0; i < 200 && failed == 0; i++ {
			res, err := e.Limit(ctx, t0, req)
			switch {
			case err != nil:
				failed++
			case res.Code == "":
				admitted++
			}
		}
		if admitted == 0 || admitted > redisstore.DefaultLeaseUnits || failed == 0 {
			t.Fatalf("with Redis gone: %d admitted from the reserve, then %d failures", admitted, failed)
		}
	})
}

// TestLeaseConfig: reserves can be turned off, and bad values are reported.
func TestLeaseConfig(t *testing.T) {
	for _, tc := range []struct {
		lease ratelimit.LeaseConfig
		bad   string
	}{
		{ratelimit.LeaseConfig{MaxUnits: -2}, "redis.lease.max_units"},
		{ratelimit.LeaseConfig{Idle: time.Millisecond}, "redis.lease.idle"},
		{ratelimit.LeaseConfig{Idle: -time.Second}, "redis.lease.idle"},
		{ratelimit.LeaseConfig{MaxUnits: -1}, ""},
		{ratelimit.LeaseConfig{MaxUnits: 500, Idle: 5 * time.Second}, ""},
	} {
		errs := ratelimit.StoreConfig{Type: "redis", Redis: ratelimit.RedisConfig{Addrs: []string{"127.0.0.1:1"}, Lease: tc.lease}}.Validate()
		got := ""
		for _, err := range errs {
			got += err.Error()
		}
		if (tc.bad == "") != (got == "") || !strings.Contains(got, tc.bad) {
			t.Errorf("%+v: %q, want an error on %q", tc.lease, got, tc.bad)
		}
	}

	r := redistest.Start(t)
	st := openTestRedis(t, ratelimit.RedisConfig{Addrs: []string{r.Addr()}, Lease: ratelimit.LeaseConfig{MaxUnits: -1}}, nil)
	e := mustCompile(t, leaseApp(10_000, time.Hour), st)
	before := r.CmdCalls("incrby")
	for i := 0; i < 50; i++ {
		if _, err := e.Limit(context.Background(), t0, policy.LimitRequest{App: "a", Device: "d"}); err != nil {
			t.Fatal(err)
		}
	}
	if n := r.CmdCalls("incrby") - before; n != 50 {
		t.Fatalf("reserves off: %d INCRBY for 50 requests, want 50", n)
	}
}
