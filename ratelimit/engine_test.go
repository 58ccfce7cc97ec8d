package ratelimit

import (
	"context"
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/ratelimit/memstore"
)

var t0 = time.Date(2025, 3, 14, 10, 0, 0, 0, time.UTC)

// TestDemoLimited is the demo fact: GET /v1/limited, 3 requests per minute per app.
func TestDemoLimited(t *testing.T) {
	in := CompileInput{Endpoints: map[string][]LimitConfig{
		"GET /v1/limited": {{Name: "per_app", Key: []string{"app"}, Requests: 3, Per: time.Minute}},
	}}
	e := mustCompile(t, in, memStore(t, MemoryConfig{}, nil))
	req := policy.LimitRequest{App: "demo", Endpoint: "GET /v1/limited"}
	for i := 1; i <= 4; i++ {
		res, err := e.Limit(context.Background(), t0.Add(time.Duration(i)*time.Second), req)
		if err != nil {
			t.Fatal(err)
		}
		if i <= 3 {
			if res.Code != "" || res.Remaining != int64(3-i) || res.Limit != 3 {
				t.Fatalf("call %d: %+v", i, res)
			}
			continue
		}
		want := policy.LimitResult{Code: policy.RateLimited, Limit: 3, Remaining: 0, Reset: t0.Add(time.Minute),
			RetryAfter: 56 * time.Second, Name: "per_app"}
		if res != want {
			t.Fatalf("call 4: %+v, want %+v", res, want)
		}
	}
	// Another app, and another endpoint, count apart.
	if res, _ := e.Limit(context.Background(), t0, policy.LimitRequest{App: "other", Endpoint: "GET /v1/limited"}); res.Code != "" {
		t.Fatalf("other app: %+v", res)
	}
	if res, _ := e.Limit(context.Background(), t0, policy.LimitRequest{App: "demo", Endpoint: "GET /v1/hello"}); res.Code != "" || res.Limit != 0 {
		t.Fatalf("other endpoint: %+v", res)
	}
}

func TestCodesAndSelection(t *testing.T) {
	in := CompileInput{
		Apps: map[string]AppLimits{"a": {Org: "acme", Limits: []LimitConfig{
			{Name: "device", Key: []string{"device"}, Requests: 1, Per: time.Minute},
			{Name: "app", Requests: 10, Per: time.Minute},
			{Name: "monthly", Requests: 5, Period: "month"},
			{Name: "prepaid", Key: []string{"license"}, Credits: true, Requests: 2},
			{Name: "watch", Key: []string{"ip"}, Requests: 1, Per: time.Hour, Shadow: true},
		}}},
		Orgs: map[string][]LimitConfig{"acme": {{Name: "org_day", Requests: 100, Period: "day"}}},
	}
	e := mustCompile(t, in, memStore(t, MemoryConfig{}, nil))
	ctx := context.Background()
	limit := func(req policy.LimitRequest) policy.LimitResult {
		t.Helper()
		res, err := e.Limit(ctx, t0, req)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	// First request: most constraining allowed limit is the device's (remaining 0).
	if res := limit(policy.LimitRequest{App: "a", Device: "d1", IP: "1.2.3.4"}); res.Code != "" || res.Name != "device" || res.Remaining != 0 {
		t.Fatalf("first: %+v", res)
	}
	// Second from the same device: DEVICE_RATE_LIMITED, and the shadow ip limit (over now) never denies.
	if res := limit(policy.LimitRequest{App: "a", Device: "d1", IP: "1.2.3.4"}); res.Code != policy.DeviceRateLimited {
		t.Fatalf("second: %+v", res)
	}
	// The denied request consumed nothing else: app has 9 left (1 used), monthly 4.
	res := limit(policy.LimitRequest{App: "a", Device: "d2"})
	if res.Code != "" || res.Name != "device" {
		t.Fatalf("third: %+v", res)
	}
	res = limit(policy.LimitRequest{App: "a"}) // no device: the device limit does not apply
	if res.Code != "" || res.Name != "monthly" || res.Remaining != 2 {
		t.Fatalf("no device: %+v (want monthly with 2 left)", res)
	}
	limit(policy.LimitRequest{App: "a"})
	limit(policy.LimitRequest{App: "a"})
	if res := limit(policy.LimitRequest{App: "a"}); res.Code != policy.QuotaExceeded || res.Reset != time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC) {
		t.Fatalf("quota: %+v", res)
	}

	t.Run("org", func(t *testing.T) {
		in := CompileInput{Orgs: map[string][]LimitConfig{"acme": {{Name: "o", Requests: 1, Per: time.Minute}}}}
		e := mustCompile(t, in, memStore(t, MemoryConfig{}, nil))
		e.Limit(ctx, t0, policy.LimitRequest{App: "x", Org: "acme"})
		if res, _ := e.Limit(ctx, t0, policy.LimitRequest{App: "y", Org: "acme"}); res.Code != policy.OrgLimitReached {
			t.Fatalf("org: %+v", res)
		}
	})
}

func TestCreditsTopUp(t *testing.T) {
	in := CompileInput{Apps: map[string]AppLimits{"a": {Limits: []LimitConfig{
		{Name: "prepaid", Key: []string{"license"}, Credits: true, Requests: 2},
	}}}}
	e := mustCompile(t, in, memStore(t, MemoryConfig{}, nil))
	ctx := context.Background()
	req := policy.LimitRequest{App: "a", License: "lic1"}
	for i := 0; i < 2; i++ {
		if res, _ := e.Limit(ctx, t0, req); res.Code != "" {
			t.Fatalf("call %d: %+v", i, res)
		}
	}
	// Credits never reset by themselves.
	res, _ := e.Limit(ctx, t0.Add(365*24*time.Hour), req)
	if res.Code != policy.NoCredits || !res.Reset.IsZero() || res.RetryAfter != creditsRetryAfter {
		t.Fatalf("exhausted: %+v (want no reset and a Retry-After of %v)", res, creditsRetryAfter)
	}
	ref := CreditsRef{Scope: "app", Owner: "a", Name: "prepaid"}
	bal, err := e.TopUp(ctx, ref, req, 5)
	if err != nil || bal != 5 {
		t.Fatalf("top-up: %d %v", bal, err)
	}
	if res, _ := e.Limit(ctx, t0, policy.LimitRequest{App: "a", License: "lic1", Cost: 5}); res.Code != "" || res.Remaining != 0 {
		t.Fatalf("after top-up: %+v", res)
	}
	if _, err := e.TopUp(ctx, CreditsRef{Scope: "app", Owner: "a", Name: "nope"}, req, 1); err == nil {
		t.Fatal("unknown credits limit accepted")
	}
	if _, err := e.TopUp(ctx, ref, policy.LimitRequest{App: "a"}, 1); err == nil || !strings.Contains(err.Error(), "license") {
		t.Fatalf("missing license: %v", err)
	}
}

func TestLockout(t *testing.T) {
	in := CompileInput{Lockout: LockoutConfig{MaxFailures: 3, Window: time.Minute, LockFor: 10 * time.Minute, Key: []string{"ip", "device"}}}
	e := mustCompile(t, in, memStore(t, MemoryConfig{}, nil))
	ctx := context.Background()
	now := t0
	for i := 0; i < 2; i++ {
		if err := e.Fail(ctx, now, "ip:1.2.3.4", "user:bob"); err != nil {
			t.Fatal(err)
		}
	}
	if _, locked, _ := e.Locked(ctx, now, "ip:1.2.3.4"); locked {
		t.Fatal("locked after 2 failures")
	}
	e.Fail(ctx, now.Add(time.Second), "ip:1.2.3.4")
	until, locked, err := e.Locked(ctx, now.Add(2*time.Second), "device:zz", "ip:1.2.3.4")
	if err != nil || !locked || !until.Equal(now.Add(time.Second+10*time.Minute)) {
		t.Fatalf("locked=%v until=%v err=%v", locked, until, err)
	}
	if _, locked, _ := e.Locked(ctx, now.Add(11*time.Minute), "ip:1.2.3.4"); locked {
		t.Fatal("still locked after lock_for")
	}
	if _, locked, _ := e.Locked(ctx, now, "user:bob"); locked {
		t.Fatal("untracked key kind locked")
	}
}

// failingStore is a store whose backend is down: a real Redis outage is tested in
// redis_test.go; this isolates the engine's fail-mode logic.
type failingStore struct {
	Store
	local Store
}

func (f failingStore) Apply(context.Context, time.Time, []Op, []Outcome) error {
	return ErrUnavailable
}
func (f failingStore) Local() Store { return f.local }

func TestFailModes(t *testing.T) {
	lim := []LimitConfig{{Name: "l", Requests: 1, Per: time.Minute}}
	local := memStore(t, MemoryConfig{}, nil)
	in := CompileInput{Apps: map[string]AppLimits{
		"closed": {Limits: lim}, "open": {Limits: lim, FailMode: "open"}, "local": {Limits: lim, FailMode: "local"},
	}}
	e := mustCompile(t, in, failingStore{local: local})
	ctx := context.Background()
	if _, err := e.Limit(ctx, t0, policy.LimitRequest{App: "closed"}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("closed: %v", err)
	}
	for i := 0; i < 3; i++ {
		if res, err := e.Limit(ctx, t0, policy.LimitRequest{App: "open"}); err != nil || res != (policy.LimitResult{}) {
			t.Fatalf("open: %+v %v, want no limit (so no X-RateLimit headers)", res, err)
		}
	}
	e.Limit(ctx, t0, policy.LimitRequest{App: "local"})
	if res, err := e.Limit(ctx, t0, policy.LimitRequest{App: "local"}); err != nil || res.Code != policy.RateLimited {
		t.Fatalf("local: %+v %v", res, err)
	}
}

func TestMemoryPersistence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "state.json")
	clock := newFakeClock(t0)
	in := CompileInput{Apps: map[string]AppLimits{"a": {Limits: []LimitConfig{
		{Name: "monthly", Key: []string{"device"}, Requests: 3, Period: "month"},
		{Name: "burst", Key: []string{"device"}, Algorithm: "gcra", Requests: 100, Per: time.Second},
	}}}}
	ctx := context.Background()
	req := policy.LimitRequest{App: "a", Device: "d"}
	open := func() (*memstore.Store, *Engine) {
		s, err := memstore.Open(MemoryConfig{File: file}, clock.Now)
		if err != nil {
			t.Fatal(err)
		}
		return s, mustCompile(t, in, s)
	}
	s, e := open()
	e.Limit(ctx, clock.Now(), req)
	e.Limit(ctx, clock.Now(), req)
	if bound, n, _ := s.Bind(ctx, "lic", "dev1", 2); !bound || n != 1 {
		t.Fatal("bind")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, e = open()
	defer s.Close()
	if res, _ := e.Limit(ctx, clock.Now(), req); res.Code != "" || res.Name != "monthly" || res.Remaining != 0 {
		t.Fatalf("after reopen: %+v", res)
	}
	if res, _ := e.Limit(ctx, clock.Now(), req); res.Code != policy.QuotaExceeded {
		t.Fatalf("quota lost on restart: %+v", res)
	}
	if bound, n, _ := s.Bind(ctx, "lic", "dev2", 2); !bound || n != 2 {
		t.Fatalf("binding lost: %v %d", bound, n)
	}
	if bound, n, _ := s.Bind(ctx, "lic", "dev3", 2); bound || n != 2 {
		t.Fatalf("third device bound: %v %d", bound, n)
	}
	if bound, _, _ := s.Bind(ctx, "lic", "dev1", 2); !bound {
		t.Fatal("dev1 no longer bound")
	}
	s.ResetBindings(ctx, "lic")
	if bound, n, _ := s.Bind(ctx, "lic", "dev3", 2); !bound || n != 1 {
		t.Fatal("reset")
	}
}

func TestMemoryBound(t *testing.T) {
	s := memStore(t, MemoryConfig{MaxEntries: 1024, Shards: 4}, nil)
	out := make([]Outcome, 1)
	for i := 0; i < 10_000; i++ {
		op := Op{Key: NewKey("k", "", 0, string(rune(i))), Kind: KindCounter, Limit: 10, Cost: 1, Expire: t0.Add(time.Minute).UnixNano()}
		s.Apply(context.Background(), t0, []Op{op}, out)
	}
	if n := s.Len(); n > 1024 {
		t.Fatalf("%d entries, bound 1024", n)
	}
	// Expired entries go first: fill with expired ones, then one live insert sweeps them.
	s2 := memStore(t, MemoryConfig{MaxEntries: 64, Shards: 1}, nil)
	for i := 0; i < 64; i++ {
		op := Op{Key: NewKey("k", "", 0, string(rune(i))), Kind: KindCounter, Limit: 10, Cost: 1, Expire: t0.Add(time.Second).UnixNano()}
		s2.Apply(context.Background(), t0, []Op{op}, out)
	}
	live := Op{Key: NewKey("live", "", 0), Kind: KindCounter, Limit: 10, Cost: 1, Expire: t0.Add(time.Hour).UnixNano()}
	s2.Apply(context.Background(), t0.Add(2*time.Second), []Op{live}, out)
	if n := s2.Len(); n != 1 {
		t.Fatalf("%d entries after sweep of expired ones, want 1", n)
	}
}

// TestMemoryBoundKeepsCredits: when a full shard has to evict persisted counters, spent
// credits stay spent: only an operator's top-up restores them.
func TestMemoryBoundKeepsCredits(t *testing.T) {
	s := memStore(t, MemoryConfig{MaxEntries: 16, Shards: 1}, nil)
	e := mustCompile(t, CompileInput{Apps: map[string]AppLimits{"a": {Limits: []LimitConfig{
		{Name: "prepaid", Key: []string{"license"}, Credits: true, Requests: 1},
		{Name: "monthly", Key: []string{"device"}, Requests: 100, Period: "month"}}}}}, s)
	ctx := context.Background()
	lic := policy.LimitRequest{App: "a", License: "L"}
	for i, want := range []policy.Code{"", policy.NoCredits} {
		if res, err := e.Limit(ctx, t0, lic); err != nil || res.Code != want {
			t.Fatalf("credit request %d: %+v %v, want %q", i+1, res, err, want)
		}
	}
	for i := 0; i < 40; i++ { // persisted quota counters fill the shard
		if _, err := e.Limit(ctx, t0, policy.LimitRequest{App: "a", Device: "d" + strconv.Itoa(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.Len(); n > 16 {
		t.Fatalf("%d entries, bound 16 (quota counters may be evicted)", n)
	}
	if res, err := e.Limit(ctx, t0, lic); err != nil || res.Code != policy.NoCredits {
		t.Fatalf("spent credits after evictions: %+v %v, want NO_CREDITS", res, err)
	}
}
