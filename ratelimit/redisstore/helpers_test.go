package redisstore_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/ratelimit"
	"github.com/gatehouse/gatehouse/ratelimit/internal/metrictest"
	"github.com/gatehouse/gatehouse/ratelimit/internal/testclock"
	"github.com/gatehouse/gatehouse/ratelimit/memstore"
	"github.com/gatehouse/gatehouse/ratelimit/redisstore"
)

var t0 = time.Date(2025, 3, 14, 10, 0, 0, 0, time.UTC)

func newFakeClock(t time.Time) *testclock.Clock { return testclock.New(t) }

// openTestRedis opens a Redis store with a generous timeout (the race detector on a
// shared machine is slow); fault tests pass their own config.
func openTestRedis(t testing.TB, cfg ratelimit.RedisConfig, clock ratelimit.Clock) *redisstore.Store {
	t.Helper()
	if cfg.Timeout == 0 {
		cfg.Timeout = 2 * time.Second
	}
	s, err := redisstore.Open(context.Background(), cfg, clock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if !s.Connected() {
		t.Fatalf("cannot connect to %v", cfg.Addrs)
	}
	return s
}

// memStore opens a memory store closed at the end of the test.
func memStore(t testing.TB, cfg ratelimit.MemoryConfig, clock ratelimit.Clock) *memstore.Store {
	t.Helper()
	s, err := memstore.Open(cfg, clock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func mustCompile(t testing.TB, in ratelimit.CompileInput, s ratelimit.Store, opts ...ratelimit.Option) *ratelimit.Engine {
	t.Helper()
	e, err := ratelimit.Compile(in, s, opts...)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	engineStores.Store(e, s)
	return e
}

// engineStores maps each engine mustCompile made to its store.
var engineStores sync.Map

// storeOf returns the store e was compiled on (by mustCompile).
func storeOf(e *ratelimit.Engine) ratelimit.Store {
	s, _ := engineStores.Load(e)
	return s.(ratelimit.Store)
}

// metricValue returns the value of the counter or gauge name in m whose labels include
// labels (name, value pairs); 0 when there is none.
func metricValue(t testing.TB, m *ratelimit.Metrics, name string, labels ...string) float64 {
	t.Helper()
	return metrictest.Value(t, m, name, labels...)
}

// gcraTokens is the number of whole tokens a bucket of burst tokens, one every interval
// ns, holds at now when its theoretical arrival time is tat (the GCRA's definition).
func gcraTokens(burst, interval, tat, now int64) int64 {
	return min(max((now+burst*interval-tat)/interval, 0), burst)
}
