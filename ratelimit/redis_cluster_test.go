package ratelimit

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy"
)

// TestRedisTryAgainKeepsBreakerClosed: TRYAGAIN is Redis Cluster's answer to a script
// whose keys a slot migration has split between two masters. Redis ran nothing and is
// up: the call fails (its fail mode applies), but the breaker does not count it, so the
// replica's other requests keep counting. Any other error still counts.
func TestRedisTryAgainKeepsBreakerClosed(t *testing.T) {
	r := startRedis(t)
	var tick atomic.Int64 // each reading a second later: any streak spans the window
	clock := func() time.Time { return t0.Add(time.Duration(tick.Add(1)) * time.Second) }
	st := openTestRedis(t, RedisConfig{Addrs: []string{r.addr()}, Lease: LeaseConfig{MaxUnits: -1},
		Breaker: BreakerConfig{Failures: 2, Cooldown: time.Hour}}, clock)
	e := mustCompile(t, CompileInput{Apps: map[string]AppLimits{"a": {Limits: []LimitConfig{
		{Name: "l", Key: []string{"device"}, Requests: 100, Per: time.Hour}}}}}, st)
	ctx := context.Background()
	answer := func(msg string) func(redisCall) error {
		return func(r redisCall) error {
			return r.c.Do(r.ctx, r.c.B().Eval().Script("return redis.error_reply(ARGV[1])").Numkeys(0).Arg(msg).Build()).Error()
		}
	}
	req := policy.LimitRequest{App: "a", Device: "d"}
	for _, step := range []struct {
		reply string
		open  bool
	}{
		{"TRYAGAIN Multiple keys request during rehashing of slot", false},
		{"ERR something else", true}, // last: it leaves the breaker open
	} {
		for i := 0; i < 3; i++ {
			if err := st.call(ctx, "EVAL", answer(step.reply)); !errors.Is(err, ErrUnavailable) {
				t.Fatalf("%q: call %d: %v, want ErrUnavailable", step.reply, i+1, err)
			}
		}
		if _, err := e.Limit(ctx, t0, req); (err != nil) != step.open || st.br.isOpen() != step.open {
			t.Fatalf("after three %q: limit %v, breaker open %v; want open %v", step.reply, err, st.br.isOpen(), step.open)
		}
	}
}
