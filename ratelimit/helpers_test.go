package ratelimit

import (
	"context"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/ratelimit/internal/metrictest"
	"github.com/gatehouse/gatehouse/ratelimit/internal/testclock"
	"github.com/gatehouse/gatehouse/ratelimit/memstore"
	"github.com/gatehouse/gatehouse/ratelimit/redisstore"
)

// fakeClock is a settable clock for tests.
type fakeClock = testclock.Clock

func newFakeClock(t time.Time) *fakeClock { return testclock.New(t) }

// memStore opens a memory store closed at the end of the test.
func memStore(t testing.TB, cfg MemoryConfig, clock Clock) *memstore.Store {
	t.Helper()
	s, err := memstore.Open(cfg, clock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func mustCompile(t testing.TB, in CompileInput, s Store, opts ...Option) *Engine {
	t.Helper()
	e, err := Compile(in, s, opts...)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return e
}

func mustTime(t testing.TB, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// openTestRedis opens a Redis store with a generous timeout (the race detector on a
// shared machine is slow); fault tests pass their own config.
func openTestRedis(t testing.TB, cfg RedisConfig, clock Clock) *redisstore.Store {
	t.Helper()
	if cfg.Timeout == 0 {
		cfg.Timeout = 2 * time.Second
	}
	s, err := redisstore.Open(context.Background(), cfg, clock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Ping(context.Background()); err != nil {
		t.Fatalf("cannot connect to %v: %v", cfg.Addrs, err)
	}
	return s
}

// metricValue returns the value of the counter or gauge name in m whose labels include
// labels (name, value pairs); 0 when there is none.
func metricValue(t testing.TB, m *Metrics, name string, labels ...string) float64 {
	t.Helper()
	return metrictest.Value(t, m, name, labels...)
}
