package ratelimit

import (
	"bytes"
	"context"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy"
)

// TestMemoryFloodKeepsLiveCounters: a flood of distinct keys far past max_entries never
// evicts a key over its limit, a running quota or credit, or a lockout; memory stays
// bounded; what is shed (counters under their limit, then new keys not tracked) is
// counted, and logged once per interval.
func TestMemoryFloodKeepsLiveCounters(t *testing.T) {
	clock := newFakeClock(t0)
	s := memStore(t, MemoryConfig{MaxEntries: 64, Shards: 1}, clock.Now)
	var logs bytes.Buffer
	s.SetLog(slog.New(slog.NewJSONHandler(&logs, nil)))
	m := NewMetrics()
	e := mustCompile(t, CompileInput{
		Apps: map[string]AppLimits{"a": {Limits: []LimitConfig{
			{Name: "ip", Key: []string{"ip"}, Requests: 2, Per: 30 * time.Minute},
			{Name: "device", Key: []string{"device"}, Requests: 1000, Per: time.Minute},
			{Name: "monthly", Key: []string{"license"}, Requests: 100, Period: "month"},
			{Name: "prepaid", Key: []string{"org"}, Credits: true, Requests: 10},
		}}},
		Lockout: LockoutConfig{MaxFailures: 2, Window: time.Hour, LockFor: time.Hour},
	}, s, WithMetrics(m))
	ctx := context.Background()
	limit := func(req policy.LimitRequest) policy.LimitResult {
		t.Helper()
		req.App = "a"
		res, err := e.Limit(ctx, clock.Now(), req)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	// The state that must survive: an IP over its limit, a quota and credits in use, a
	// lockout.
	for range 3 {
		limit(policy.LimitRequest{IP: "abuser"})
	}
	for range 5 {
		limit(policy.LimitRequest{License: "L"})
		limit(policy.LimitRequest{Org: "O"})
	}
	for range 2 {
		if err := e.Fail(ctx, clock.Now(), "ip:guesser"); err != nil {
			t.Fatal(err)
		}
	}
	used := 5
	survives := func(when string) {
		t.Helper()
		used++
		if res := limit(policy.LimitRequest{IP: "abuser"}); res.Code != policy.RateLimited {
			t.Fatalf("%s: the IP over its limit is admitted: %+v", when, res)
		}
		if res := limit(policy.LimitRequest{License: "L"}); res.Remaining != int64(100-used) {
			t.Fatalf("%s: the quota restarted: %+v, want %d left", when, res, 100-used)
		}
		if res := limit(policy.LimitRequest{Org: "O"}); res.Remaining != int64(10-used) {
			t.Fatalf("%s: the credits restarted: %+v, want %d left", when, res, 10-used)
		}
		if _, locked, _ := e.Locked(ctx, clock.Now(), "ip:guesser"); !locked {
			t.Fatalf("%s: the lockout is gone", when)
		}
	}
	// 1. A flood of devices under their limit: they shed each other.
	for i := range 10_000 {
		limit(policy.LimitRequest{Device: "flood-" + strconv.Itoa(i)})
	}
	if n := s.Len(); n > 64 {
		t.Fatalf("%d counters, bound 64", n)
	}
	survives("after 10000 devices")
	if got := metricValue(t, m, "gatehouse_ratelimit_memory_shed_total"); got == 0 {
		t.Fatal("no shed counter counted")
	}
	// 2. A flood of IPs each over its limit: nothing can be shed, new keys are not
	// tracked, and that is logged once per interval.
	for i := range 1000 {
		for range 3 {
			limit(policy.LimitRequest{IP: "over-" + strconv.Itoa(i)})
		}
	}
	if n := s.Len(); n > 64 {
		t.Fatalf("%d counters, bound 64", n)
	}
	survives("after 1000 IPs over their limit")
	if got := metricValue(t, m, "gatehouse_ratelimit_memory_untracked_total"); got == 0 {
		t.Fatal("no untracked key counted")
	}
	if n := strings.Count(logs.String(), "not tracked"); n != 1 {
		t.Fatalf("%d log lines in one interval, want 1:\n%s", n, logs.String())
	}
	clock.Add(time.Minute)
	limit(policy.LimitRequest{IP: "one-more"})
	if n := strings.Count(logs.String(), "not tracked"); n != 2 {
		t.Fatalf("%d log lines after the interval, want 2", n)
	}
	clock.Add(time.Hour + time.Second) // every window over: the flood's counters can go
	if res := limit(policy.LimitRequest{Device: "fresh"}); res.Remaining != 999 {
		t.Fatalf("a new device after the windows: %+v, want tracked (999 left)", res)
	}
}
