package redisstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/ratelimit"
	"github.com/gatehouse/gatehouse/ratelimit/internal/redistest"
)

// throttleApp: the inline device throttle (50/s, burst 100) beside a monthly app quota.
var throttleApp = ratelimit.CompileInput{Apps: map[string]ratelimit.AppLimits{"a": {Limits: []ratelimit.LimitConfig{
	{Name: "per_device", Key: []string{"device"}, Algorithm: "gcra", Requests: 50, Per: time.Second, Burst: 100},
	{Name: "monthly", Key: []string{"app"}, Requests: 1_000_000, Period: "month", TimeZone: "UTC"},
}}}}

// scriptCalls is how many scripts Redis has run.
func scriptCalls(r *redistest.Proc) int { return r.CmdCalls("evalsha") + r.CmdCalls("eval") }

// TestGCRALease: a device's streak of requests is admitted from units the replica leased
// of its bucket, with the same verdicts and remaining counts as one round trip each.
func TestGCRALease(t *testing.T) {
	ctx := context.Background()
	req := policy.LimitRequest{App: "a", Device: "d"}

	t.Run("a streak costs a few round trips, exact remaining", func(t *testing.T) {
		r := redistest.Start(t)
		e := mustCompile(t, throttleApp, openTestRedis(t, ratelimit.RedisConfig{Addrs: []string{r.Addr()}}, nil))
		before := scriptCalls(r)
		for i := int64(1); i <= 60; i++ { // one instant: 60 of the burst of 100
			res, err := e.Limit(ctx, t0, req)
			if err != nil || res.Code != "" || res.Remaining != 100-i {
				t.Fatalf("request %d: %+v %v, want admitted with %d remaining", i, res, err, 100-i)
			}
		}
		if n := scriptCalls(r) - before; n > 15 {
			t.Fatalf("%d scripts for a streak of 60 requests, want at most 15", n)
		}
		// The other 40 pass, then the bucket refuses: the lease never adds units.
		for i := 61; i <= 110; i++ {
			res, err := e.Limit(ctx, t0, req)
			if err != nil || (res.Code == "") != (i <= 100) {
				t.Fatalf("request %d: %+v %v, want admitted up to the burst of 100 only", i, res, err)
			}
		}
	})

	t.Run("held units die with their slot", func(t *testing.T) {
		r := redistest.Start(t)
		a := mustCompile(t, throttleApp, openTestRedis(t, ratelimit.RedisConfig{Addrs: []string{r.Addr()}}, nil))
		b := mustCompile(t, throttleApp, openTestRedis(t, ratelimit.RedisConfig{Addrs: []string{r.Addr()}}, nil))
		for i := 0; i < 10; i++ { // replica a leases units of the bucket
			if res, err := a.Limit(ctx, t0, req); err != nil || res.Code != "" {
				t.Fatalf("request %d: %+v %v", i, res, err)
			}
		}
		// 10 s later the bucket is full again in Redis: replica b takes the whole burst,
		// and a's old units, whose slots ended long ago, must not admit one more.
		later := t0.Add(10 * time.Second)
		for i := 1; i <= 100; i++ {
			if res, err := b.Limit(ctx, later, req); err != nil || res.Code != "" {
				t.Fatalf("replica b, request %d: %+v %v, want admitted", i, res, err)
			}
		}
		for i := 1; i <= 5; i++ {
			if res, err := a.Limit(ctx, later, req); err != nil || res.Code != "DEVICE_RATE_LIMITED" {
				t.Fatalf("replica a after the burst, request %d: %+v %v, want DEVICE_RATE_LIMITED", i, res, err)
			}
		}
	})

	t.Run("a quota refusal gives the units back", func(t *testing.T) {
		r := redistest.Start(t)
		in := throttleApp
		in.Apps = map[string]ratelimit.AppLimits{"a": {Limits: []ratelimit.LimitConfig{
			in.Apps["a"].Limits[0], {Name: "monthly", Key: []string{"app"}, Requests: 3, Period: "month", TimeZone: "UTC"}}}}
		e := mustCompile(t, in, openTestRedis(t, ratelimit.RedisConfig{Addrs: []string{r.Addr()}}, nil))
		for i := 1; i <= 8; i++ {
			res, err := e.Limit(ctx, t0, req)
			if err != nil || (res.Code == "") != (i <= 3) {
				t.Fatalf("request %d: %+v %v, want 3 admitted by the quota", i, res, err)
			}
		}
		// The refused requests took nothing of the bucket: with the quota raised (a
		// reload, same store), the next request leaves 100 − 4 of the burst.
		res, err := mustCompile(t, throttleApp, storeOf(e)).Limit(ctx, t0, req)
		if err != nil || res.Code != "" || res.Remaining != 96 {
			t.Fatalf("after the quota refusals: %+v %v, want admitted with 96 remaining", res, err)
		}
	})
}
