package redisstore

import (
	"context"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/ratelimit/internal/testclock"
	"github.com/gatehouse/gatehouse/ratelimit/state"
)

var t0 = time.Date(2025, 3, 14, 10, 0, 0, 0, time.UTC)

func newFakeClock(t time.Time) *testclock.Clock { return testclock.New(t) }

// openTestRedis opens a Redis store with a generous timeout (the race detector on a
// shared machine is slow); fault tests pass their own config.
func openTestRedis(t testing.TB, cfg state.RedisConfig, clock state.Clock) *Store {
	t.Helper()
	if cfg.Timeout == 0 {
		cfg.Timeout = 2 * time.Second
	}
	s, err := Open(context.Background(), cfg, clock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if s.client.Load() == nil {
		t.Fatalf("cannot connect to %v", cfg.Addrs)
	}
	return s
}
