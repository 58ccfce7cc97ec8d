package redisstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/ratelimit"
	"github.com/gatehouse/gatehouse/ratelimit/internal/redistest"
)

// A call that gave up during a stall has its INCRBY run once Redis resumes. When the
// counter's key expired meanwhile (its window ended during the stall), that INCRBY makes
// the key anew, without an expiry: the PEXPIRE rode only with this replica's first count
// of the window. Giving the units back must not leave that key behind for ever: it gets
// its window's expiry again (or is gone). The key is deleted before the stall, as Redis
// would have expired it: the late INCRBY finds it missing either way.
func TestLateGiveBackLeavesNoKeyWithoutExpiry(t *testing.T) {
	r := redistest.Start(t)
	m := ratelimit.NewMetrics()
	st := openTestRedis(t, ratelimit.RedisConfig{Addrs: []string{r.Addr()}, Timeout: 50 * time.Millisecond,
		Breaker: ratelimit.BreakerConfig{Window: time.Hour}, Lease: ratelimit.LeaseConfig{MaxUnits: -1}}, nil)
	st.Instrument(m)
	op := ratelimit.Op{Key: ratelimit.NewKey("late-expiry", "", 1, "d"), Kind: ratelimit.KindCounter, Limit: 10, Cost: 1,
		Expire: t0.Add(time.Minute).UnixNano()}
	out := make([]ratelimit.Outcome, 1)
	if err := st.Apply(context.Background(), t0, []ratelimit.Op{op}, out); err != nil || !out[0].Allowed {
		t.Fatalf("first count: %v %+v", err, out[0])
	}
	key := op.Key.Render(st.Prefix(), false)
	if err := r.Do("DEL", key); err != nil {
		t.Fatal(err)
	}
	pauseRedis(t, r, 1500, "ALL")
	if err := st.Apply(context.Background(), t0, []ratelimit.Op{op}, out); err == nil {
		t.Fatalf("a call during the stall returned no error: %+v", out[0])
	}
	deadline := time.Now().Add(10 * time.Second)
	for metricValue(t, m, "gatehouse_store_late_units_total", "outcome", "given_back") < 1 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond) // the give-back runs in the background once Redis resumes
	}
	if v := metricValue(t, m, "gatehouse_store_late_units_total", "outcome", "given_back"); v != 1 {
		t.Fatalf("units given back: %v, want 1", v)
	}
	ttl, err := r.Query("PTTL", key)
	if err != nil {
		t.Fatal(err)
	}
	if ttl == "-1" {
		v, _ := r.Query("GET", key)
		t.Fatalf("key left without an expiry after the late give-back (value %q)", v)
	}
}
