package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	commonrl "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"github.com/redis/rueidis"
)

// TestRedisStallCostsNothing: three Gatehouse processes on one redis-server serve
// ShouldRateLimit on one hot descriptor (1,000 an hour, counted all or nothing) while Redis
// is stalled for 1.5 s by CLIENT PAUSE. No call waits for the stall (each returns within
// the 50 ms store timeout plus a generous slack for a loaded machine; a call that waited
// would take over a second), and once Redis answers again and the replicas stop (giving
// back their leases), Redis counts exactly the calls answered OK.
func TestRedisStallCostsNothing(t *testing.T) {
	addr, _ := redisServer(t)
	cfg := fmt.Sprintf(`
store: {type: redis, redis: {addrs: ["%s"], timeout: 50ms}}
apps: []
rate_limit_service:
  fail_mode: error
  domains:
    - domain: stall
      counting: atomic
      descriptors: [{key: device, rate_limit: {unit: hour, requests_per_unit: 1000}}]
`, addr)
	path := writeConfig(t, t.TempDir(), cfg)
	var servers []*testServer
	for range 3 {
		s := startProcess(t, "--config", path)
		s.waitReady(t)
		servers = append(servers, s)
	}
	rc, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr}, ForceSingleClient: true, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close() // waits for the pause to end

	const limitTime = 50*time.Millisecond + 250*time.Millisecond
	req := &rlsv3.RateLimitRequest{Domain: "stall", Descriptors: []*commonrl.RateLimitDescriptor{
		{Entries: []*commonrl.RateLimitDescriptor_Entry{{Key: "device", Value: "hot"}}}}}
	var (
		ok, calls atomic.Int64
		resumed   atomic.Bool
		once      sync.Once
		wg        sync.WaitGroup
		mu        sync.Mutex
		longest   time.Duration
	)
	pause := func() {
		once.Do(func() {
			if err := rc.Do(context.Background(), rc.B().ClientPause().Timeout(1500).Write().Build()).Error(); err != nil {
				t.Error(err)
			}
			go func() { // returns once Redis takes writes again
				defer resumed.Store(true)
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				if err := rc.Do(ctx, rc.B().Incr().Key("resume-probe").Build()).Error(); err != nil {
					t.Error(err)
				}
			}()
		})
	}
	for g := range 9 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := rlsv3.NewRateLimitServiceClient(servers[g%3].conn)
			for left := 40; left > 0; {
				start := time.Now()
				res, err := c.ShouldRateLimit(context.Background(), req)
				took := time.Since(start)
				mu.Lock()
				longest = max(longest, took)
				mu.Unlock()
				if err == nil && res.GetOverallCode() == rlsv3.RateLimitResponse_OK && ok.Add(1) >= 200 {
					pause()
				}
				calls.Add(1)
				if resumed.Load() {
					left--
				} else if err != nil {
					time.Sleep(time.Millisecond) // pace the calls that fail fast while the stall lasts
				}
			}
		}()
	}
	wg.Wait()
	if longest > limitTime {
		t.Errorf("a ShouldRateLimit took %v with a 50ms store timeout", longest)
	}
	for _, s := range servers {
		s.stop(t) // gives back the leases
	}
	admitted := ok.Load()
	deadline := time.Now().Add(10 * time.Second)
	counted := stallCounted(t, rc)
	for counted != admitted && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		counted = stallCounted(t, rc)
	}
	if counted != admitted || counted > 1000 {
		t.Fatalf("Redis counts %d; %d calls of %d were answered OK (limit 1000)", counted, admitted, calls.Load())
	}
}

// stallCounted sums the counters Redis holds for the stall domain (one, or two when the
// run straddles the hour).
func stallCounted(t *testing.T, rc rueidis.Client) int64 {
	t.Helper()
	ctx := context.Background()
	keys, err := rc.Do(ctx, rc.B().Keys().Pattern("*stall*").Build()).AsStrSlice()
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, k := range keys {
		v, err := rc.Do(ctx, rc.B().Get().Key(k).Build()).ToString()
		if err != nil {
			t.Fatal(err)
		}
		c, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			t.Fatalf("key %q holds %q", k, v)
		}
		n += c
	}
	return n
}
