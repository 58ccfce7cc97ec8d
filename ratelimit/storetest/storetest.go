// Package storetest is the one suite every counter store passes: the contract of
// ratelimit.Store and of the small interfaces beside it, checked against hand-typed
// tables, and long random sequences checked against a plain running-sum model written
// here, never against another store. A store's tests call [Run] once per configuration
// worth covering; a new store gets the whole suite by doing the same.
package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/ratelimit"
	"github.com/gatehouse/gatehouse/ratelimit/internal/testclock"
)

// Open opens a fresh, empty store that reads time from clock. The store is the caller's
// to close (t.Cleanup). Each call must return a store that shares no counters with the
// stores of earlier calls (a new key prefix, a new process…).
type Open func(t *testing.T, clock ratelimit.Clock) ratelimit.Store

// settler is implemented (in its tests) by a store whose answers can come from state it
// keeps beside the counters, such as Redis's over-limit marks, which answer a refusal
// with the count they remembered: the random sequences clear it before each request,
// since they compare counts, not that cache.
type settler interface{ ForgetOverMarks() }

// t0 is the suite's start time: on a whole second, far from any window's edge.
var t0 = time.Date(2025, 3, 14, 10, 0, 0, 0, time.UTC)

// Run runs the whole suite against the stores open makes.
func Run(t *testing.T, open Open) {
	t.Run("counters", func(t *testing.T) { counters(t, open) })
	t.Run("all or nothing", func(t *testing.T) { allOrNothing(t, open) })
	t.Run("one key twice", func(t *testing.T) { sameKeyTwice(t, open) })
	t.Run("token bucket", func(t *testing.T) { tokenBucket(t, open) })
	t.Run("peek and set", func(t *testing.T) { peekAndSet(t, open) })
	t.Run("credits", func(t *testing.T) { credits(t, open) })
	t.Run("bindings", func(t *testing.T) { bindings(t, open) })
	t.Run("ping", func(t *testing.T) { ping(t, open) })
	t.Run("random counters", func(t *testing.T) { randomCounters(t, open) })
	t.Run("random rate-limit service", func(t *testing.T) { randomRLS(t, open) })
	t.Run("random inline limits", func(t *testing.T) { randomInline(t, open) })
}

func newClock() *testclock.Clock { return testclock.New(t0) }

// apply runs ops on s at now and returns the outcomes.
func apply(t *testing.T, s ratelimit.Store, now time.Time, ops ...ratelimit.Op) []ratelimit.Outcome {
	t.Helper()
	out := make([]ratelimit.Outcome, len(ops))
	if st, ok := s.(settler); ok {
		st.ForgetOverMarks()
	}
	if err := s.Apply(context.Background(), now, ops, out); err != nil {
		t.Fatalf("apply: %v", err)
	}
	return out
}

// counter is a counter op of the hour window containing now, tagged as the engine tags keys (one request's keys share a Redis Cluster slot).
func counter(name string, now time.Time, limit, cost int64) ratelimit.Op {
	start := now.Truncate(time.Hour)
	return ratelimit.Op{Key: ratelimit.NewKey(name, "suite", start.UnixNano(), "d"), Kind: ratelimit.KindCounter,
		Limit: limit, Cost: cost, Expire: start.Add(time.Hour).UnixNano()}
}
