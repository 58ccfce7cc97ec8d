package main

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// sharesConfig: attested devices with a token bucket of 12, 4 a second (one per 250 ms),
// on the Redis at addr with 3 share slots and a quarter of each bucket set aside: each
// slot's share is 1 unit (one per 3 s), Redis counts 9 (3 a second).
func sharesConfig(addr string) string {
	return fmt.Sprintf(`
store: {type: redis, redis: {addrs: ["%s"], timeout: 1s, shares: {slots: 3, fraction: 0.25, ttl: 1s}}}
apps:
  - name: main
    app_token_sha256: ["{{T:main}}"]
    endpoints: ["*"]
    attestation:
      providers:
`+demoTokenProviderYAML+`    limits:
      - {name: per_device, key: [device], algorithm: gcra, requests: 4, per: 1s, burst: 12}
endpoints:
  - {name: secure, path: /v1/secure, methods: [GET], attestation: require}
`, addr)
}

func nonHolder(servers, holders []*testServer) *testServer {
	for _, s := range servers {
		if !slices.Contains(holders, s) {
			return s
		}
	}
	return nil
}

// TestThrottleSharesE2E: four Gatehouse processes on one redis-server with three share
// slots. Three hold a slot and one does not; a slot holder admits a device's first
// request from its share without a round trip; and with every device's calls spread
// over the four, no device gets more than its bucket allows over the span of its calls:
// burst + span/interval. (The exact accounting, at a stopped clock, is
// redisstore.TestSharesAddUpToTheBucket and TestShareTakeover.)
func TestThrottleSharesE2E(t *testing.T) {
	const (
		burst     = 12
		interval  = 250 * time.Millisecond
		devices   = 12
		perClient = 10 // 4 replicas × 2 clients × 10 = 80 calls a device
	)
	addr, _ := redisServer(t)
	path := writeConfig(t, t.TempDir(), sharesConfig(addr))
	var out, errOut bytes.Buffer
	if err := demoToken([]string{"--count", fmt.Sprint(devices + 4), "--device", "tablet"}, &out, &errOut); err != nil {
		t.Fatalf("demo-token: %v %s", err, errOut.String())
	}
	var toks []string
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		_, tok, _ := strings.Cut(line, "\t")
		toks = append(toks, tok)
	}
	servers := make([]*testServer, 4)
	for i := range servers {
		servers[i] = startProcess(t, "--config", path)
		servers[i].waitReady(t)
	}
	slots := func(s *testServer) float64 {
		return metricValue(t, s.body(t, "/metrics"), "gatehouse_store_share_slot")
	}
	var holders []*testServer
	for deadline := time.Now().Add(60 * time.Second); len(holders) < 3; {
		if time.Now().After(deadline) {
			t.Fatalf("%d of 4 processes hold a slot after 60 s, want 3", len(holders))
		}
		time.Sleep(50 * time.Millisecond) // a poll, not a wait for a duration
		holders = holders[:0]
		seen := map[float64]bool{}
		for _, s := range servers {
			if k := slots(s); k >= 0 && !seen[k] {
				seen[k] = true
				holders = append(holders, s)
			}
		}
	}
	// A share starts empty a TTL (1 s) after its slot is claimed, and holds one unit 3 s later.
	time.Sleep(4*time.Second + 500*time.Millisecond)
	shareUnits := func(s *testServer) float64 {
		return metricValue(t, s.body(t, "/metrics"), "gatehouse_store_share_units_total")
	}
	for i, s := range append(holders, nonHolder(servers, holders)) {
		before := shareUnits(s)
		resp, err := s.check(t, request{path: "/v1/secure", headers: with(app("main"), "x-attestation-token", toks[devices+i])})
		if err != nil || resp.GetOkResponse() == nil {
			t.Fatalf("a fresh device: %s %v, want allowed", describe(resp), err)
		}
		want := 1.0 // from the share: no round trip
		if i == len(holders) {
			want = 0 // no slot: Redis
		}
		if n := shareUnits(s) - before; n != want {
			t.Errorf("process %d (holds a slot: %v): a fresh device took %v units from its share, want %v", i, want == 1, n, want)
		}
	}

	admitted := make([]atomic.Int64, devices)
	first, last := make([]atomic.Int64, devices), make([]atomic.Int64, devices)
	var wg sync.WaitGroup
	for c := range 8 {
		wg.Go(func() {
			s := servers[c%4]
			for k := range devices {
				d := (k + c*3) % devices
				h := with(app("main"), "x-attestation-token", toks[d])
				for range perClient {
					first[d].CompareAndSwap(0, time.Now().UnixNano())
					resp, err := s.check(t, request{path: "/v1/secure", headers: h})
					switch {
					case err != nil:
						t.Errorf("check: %v", err)
						return
					case resp.GetOkResponse() != nil:
						admitted[d].Add(1)
						last[d].Store(max(last[d].Load(), time.Now().UnixNano()))
					case bodyCode(t, resp.GetDeniedResponse().GetBody()) != "DEVICE_RATE_LIMITED":
						t.Errorf("unexpected denial %s", describe(resp))
						return
					}
				}
			}
		})
	}
	wg.Wait()
	for d := range admitted {
		span := time.Duration(last[d].Load() - first[d].Load())
		if n, most := admitted[d].Load(), burst+int64(span/interval); n > most || n < burst/2 {
			t.Errorf("device %d: %d admitted over %v; want at most burst + span/interval = %d (and at least half the burst)",
				d, n, span, most)
		}
	}
}
