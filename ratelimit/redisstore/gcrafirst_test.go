package redisstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/ratelimit"
	"github.com/gatehouse/gatehouse/ratelimit/internal/redistest"
)

// slowThrottle: a device bucket of 10 a burst, one token a minute, beside an app quota.
// Its keys live for minutes in Redis, so what a replica wrote is still there when the
// next one asks, however slow the machine.
var slowThrottle = ratelimit.CompileInput{Apps: map[string]ratelimit.AppLimits{"a": {Limits: []ratelimit.LimitConfig{
	{Name: "per_device", Key: []string{"device"}, Algorithm: "gcra", Requests: 1, Per: time.Minute, Burst: 10},
	{Name: "monthly", Key: []string{"app"}, Requests: 1_000_000, Period: "month", TimeZone: "UTC"},
}}}}

// TestGCRAFirstRequest: a device's first request on a replica (none in the last second)
// finds its bucket full in the common case (a key that does not exist) and takes its
// token with a plain SET NX, no script; a bucket another replica has used is still
// decided by the script, so no replica mistakes it for a full one.
func TestGCRAFirstRequest(t *testing.T) {
	ctx := context.Background()
	r := redistest.Start(t)
	a := mustCompile(t, slowThrottle, openTestRedis(t, ratelimit.RedisConfig{Addrs: []string{r.Addr()}}, nil))
	b := mustCompile(t, slowThrottle, openTestRedis(t, ratelimit.RedisConfig{Addrs: []string{r.Addr()}}, nil))
	req := policy.LimitRequest{App: "a", Device: "d"}

	scripts := scriptCalls(r)
	res, err := a.Limit(ctx, t0, req)
	if err != nil || res.Code != "" || res.Remaining != 9 {
		t.Fatalf("replica a, first request: %+v %v, want admitted with 9 remaining", res, err)
	}
	if n := scriptCalls(r) - scripts; n != 0 {
		t.Errorf("replica a, first request on a full bucket: %d scripts, want 0 (one SET NX)", n)
	}

	// Replica b has never seen the device, but replica a took a token at t0: b must see
	// 9 tokens left, not a full bucket of 10.
	admitted := 0
	for i := 1; i <= 12; i++ {
		res, err := b.Limit(ctx, t0, req)
		if err != nil {
			t.Fatalf("replica b, request %d: %v", i, err)
		}
		if res.Code == "" {
			admitted++
		} else if res.Code != "DEVICE_RATE_LIMITED" {
			t.Fatalf("replica b, request %d: %+v", i, res)
		}
	}
	if admitted != 9 {
		t.Fatalf("replica b admitted %d at t0, want 9 (burst 10, one taken by replica a)", admitted)
	}
	// A first request of another device on b: its bucket is full, again no script.
	scripts = scriptCalls(r)
	res, err = b.Limit(ctx, t0, policy.LimitRequest{App: "a", Device: "e"})
	if err != nil || res.Code != "" || res.Remaining != 9 {
		t.Fatalf("replica b, device e: %+v %v, want admitted with 9 remaining", res, err)
	}
	if n := scriptCalls(r) - scripts; n != 0 {
		t.Errorf("replica b, device e: %d scripts, want 0", n)
	}
}
