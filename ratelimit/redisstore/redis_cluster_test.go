package redisstore_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/ratelimit"
	"github.com/gatehouse/gatehouse/ratelimit/internal/redistest"
)

// TestRedisTryAgainKeepsBreakerClosed: TRYAGAIN is Redis Cluster's answer to a script
// whose keys a slot migration has split between two masters. Redis ran nothing and is
// up: the call fails (its fail mode applies), but the breaker does not count it, so the
// replica's other requests keep counting. Any other error still counts.
func TestRedisTryAgainKeepsBreakerClosed(t *testing.T) {
	r := redistest.Start(t)
	var tick atomic.Int64 // each reading a second later: any streak spans the window
	clock := func() time.Time { return t0.Add(time.Duration(tick.Add(1)) * time.Second) }
	st := openTestRedis(t, ratelimit.RedisConfig{Addrs: []string{r.Addr()}, Lease: ratelimit.LeaseConfig{MaxUnits: -1},
		Breaker: ratelimit.BreakerConfig{Failures: 2, Cooldown: time.Hour}}, clock)
	e := mustCompile(t, ratelimit.CompileInput{Apps: map[string]ratelimit.AppLimits{"a": {Limits: []ratelimit.LimitConfig{
		{Name: "l", Key: []string{"device"}, Requests: 100, Per: time.Hour}}}}}, st)
	ctx := context.Background()
	req := policy.LimitRequest{App: "a", Device: "d"}
	for _, step := range []struct {
		reply string
		open  bool
	}{
		{"TRYAGAIN Multiple keys request during rehashing of slot", false},
		{"ERR something else", true}, // last: it leaves the breaker open
	} {
		for i := 0; i < 3; i++ {
			if err := st.CallReplying(ctx, step.reply); !errors.Is(err, ratelimit.ErrUnavailable) {
				t.Fatalf("%q: call %d: %v, want ratelimit.ErrUnavailable", step.reply, i+1, err)
			}
		}
		if _, err := e.Limit(ctx, t0, req); (err != nil) != step.open || st.BreakerOpen() != step.open {
			t.Fatalf("after three %q: limit %v, breaker open %v; want open %v", step.reply, err, st.BreakerOpen(), step.open)
		}
	}
}
