package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	commonrl "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const limitsConfig = `
store:
  type: memory
  memory: {file: state.json, flush_interval: 1h}
lockout: {max_failures: 3, window: 1m, lock_for: 10m, key: [ip]}
organizations:
  - name: org-1
    limits: [{name: org_month, requests: 4, period: month, time_zone: Europe/Berlin}]
apps:
  - {name: main, app_token_sha256: ["{{T:main}}"], endpoints: ["*"]}
  - {name: pk, dialect: protekt, app_token_sha256: ["{{T:pk}}"], endpoints: ["*"]}
  - {name: lic, dialect: license, app_token_sha256: ["{{T:lic}}"], endpoints: ["*"]}
  - {name: gen, dialect: generic, app_token_sha256: ["{{T:gen}}"], endpoints: ["*"]}
  - name: quota
    app_token_sha256: ["{{T:quota}}"]
    endpoints: ["*"]
    limits: [{name: monthly, key: [app], requests: 2, period: month, time_zone: America/New_York}]
  - {name: orgapp, organization: org-1, app_token_sha256: ["{{T:orgapp}}"], endpoints: ["*"]}
endpoints:
  - name: limited
    path: /v1/limited
    limits: [{name: per_app, key: [app], requests: 3, per: 1h}] # an hour: a test's few requests almost never straddle a window's end
  - name: costly
    path: /v1/costly
    cost: 10
    limits: [{name: budget, key: [app], requests: 25, per: 1h}]
  - {name: open, path: /v1/open}
rate_limit_service:
  add_headers: true
  domains:
    - domain: demo
      descriptors:
        - key: device
          rate_limit: {unit: hour, requests_per_unit: 10} # an hour: eleven calls almost never straddle a window's end
`

// writeConfig writes cfg as dir/config.yaml, with every {{T:name}} replaced by
// sha256("tok-name"), the digest of the app token the tests send for app name.
func writeConfig(t *testing.T, dir, cfg string) string {
	for strings.Contains(cfg, "{{T:") {
		i := strings.Index(cfg, "{{T:")
		j := strings.Index(cfg[i:], "}}") + i
		cfg = cfg[:i] + sha("tok-"+cfg[i+4:j]) + cfg[j+2:]
	}
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestEndToEndLimits(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, "--config", writeConfig(t, dir, limitsConfig))
	srv.waitReady(t)

	t.Run("fourth request is rate limited with headers", func(t *testing.T) {
		before := time.Now()
		for i := 1; i <= 4; i++ {
			resp, err := srv.check(t, request{path: "/v1/limited", headers: app("main")})
			after := time.Now()
			if err != nil {
				t.Fatal(err)
			}
			if i <= 3 {
				ok := resp.GetOkResponse()
				if ok == nil {
					t.Fatalf("request %d denied: %s", i, describe(resp))
				}
				if rem, _ := headerValue(ok.GetResponseHeadersToAdd(), "x-ratelimit-remaining"); rem != strconv.Itoa(3-i) {
					t.Errorf("request %d: remaining %q, want %d", i, rem, 3-i)
				}
				continue
			}
			den := resp.GetDeniedResponse()
			if den == nil || den.GetStatus().GetCode() != 429 || bodyCode(t, den.GetBody()) != "RATE_LIMITED" {
				t.Fatalf("4th: %s", describe(resp))
			}
			hs := den.GetHeaders()
			limit, _ := headerValue(hs, "x-ratelimit-limit")
			rem, _ := headerValue(hs, "x-ratelimit-remaining")
			reset, _ := headerValue(hs, "x-ratelimit-reset")
			retry, _ := headerValue(hs, "retry-after")
			epoch, err := strconv.ParseInt(reset, 10, 64)
			// The reset ends the window of the 4th request, which was decided between
			// before and after: bounds that hold however slow the machine is.
			if limit != "3" || rem != "0" || err != nil || epoch <= before.Unix() || epoch > after.Unix()+3600 {
				t.Errorf("headers limit=%q remaining=%q reset=%q", limit, rem, reset)
			}
			if n, err := strconv.Atoi(retry); err != nil || n < 1 || n > 3600 {
				t.Errorf("Retry-After %q", retry)
			}
		}
	})
	t.Run("dialect spellings", func(t *testing.T) {
		for _, tc := range []struct{ app, code string }{{"pk", "service_unavailable"}, {"lic", "rate_limited"}, {"gen", "TOOLIMITED-429"}} {
			var last string
			for i := 0; i < 4; i++ {
				resp, _ := srv.check(t, request{path: "/v1/limited", headers: app(tc.app)})
				if den := resp.GetDeniedResponse(); den != nil {
					last = bodyCode(t, den.GetBody())
					if den.GetStatus().GetCode() != 429 {
						t.Errorf("%s: status %d", tc.app, den.GetStatus().GetCode())
					}
				}
			}
			if last != tc.code {
				t.Errorf("%s: %q, want %q", tc.app, last, tc.code)
			}
		}
	})
	t.Run("cost per request", func(t *testing.T) {
		for i, want := range []bool{true, true, false} { // 10 + 10 of 25; the third would make 30
			resp, _ := srv.check(t, request{path: "/v1/costly", headers: app("main")})
			if (resp.GetOkResponse() != nil) != want {
				t.Fatalf("call %d: %s", i+1, describe(resp))
			}
		}
	})
	t.Run("monthly quota", func(t *testing.T) {
		for i := 0; i < 2; i++ {
			if resp, _ := srv.check(t, request{path: "/v1/open", headers: app("quota")}); resp.GetOkResponse() == nil {
				t.Fatalf("call %d: %s", i, describe(resp))
			}
		}
		resp, _ := srv.check(t, request{path: "/v1/open", headers: app("quota")})
		if got := bodyCode(t, resp.GetDeniedResponse().GetBody()); got != "QUOTA_EXCEEDED" {
			t.Fatalf("got %s", describe(resp))
		}
		reset, _ := headerValue(resp.GetDeniedResponse().GetHeaders(), "x-ratelimit-reset")
		at, _ := strconv.ParseInt(reset, 10, 64)
		ny, _ := time.LoadLocation("America/New_York")
		now := time.Now().In(ny)
		next := time.Date(now.Year(), now.Month()+1, 1, 0, 0, 0, 0, ny)
		if at != next.Unix() {
			t.Errorf("reset %s, want the start of next month in New York %s", time.Unix(at, 0), next)
		}
	})
	t.Run("organisation quota", func(t *testing.T) {
		var last string
		for i := 0; i < 5; i++ {
			resp, _ := srv.check(t, request{path: "/v1/open", headers: app("orgapp")})
			if den := resp.GetDeniedResponse(); den != nil {
				last = bodyCode(t, den.GetBody())
			}
		}
		if last != "ORG_LIMIT_REACHED" {
			t.Errorf("got %q", last)
		}
	})
	t.Run("brute force lockout", func(t *testing.T) {
		bad := request{path: "/v1/open", headers: map[string]string{"x-app-token": "guess"}, source: "10.66.0.1"}
		for i := 0; i < 3; i++ {
			resp, _ := srv.check(t, bad)
			if got := bodyCode(t, resp.GetDeniedResponse().GetBody()); got != "APP_NOT_FOUND" {
				t.Fatalf("guess %d: %s", i, got)
			}
		}
		// Locked now, even with the right token, from that address only.
		resp, _ := srv.check(t, request{path: "/v1/open", headers: app("pk"), source: "10.66.0.1"})
		den := resp.GetDeniedResponse()
		if den == nil || bodyCode(t, den.GetBody()) != "account_locked" || den.GetStatus().GetCode() != 423 {
			t.Fatalf("locked: %s", describe(resp))
		}
		if ra, ok := headerValue(den.GetHeaders(), "retry-after"); !ok || ra == "" {
			t.Error("lockout without Retry-After")
		}
		if resp, _ := srv.check(t, request{path: "/v1/open", headers: app("pk"), source: "10.66.0.2"}); resp.GetOkResponse() == nil {
			t.Fatalf("another address locked too: %s", describe(resp))
		}
	})
	t.Run("IPv6 lockout counts the /64, not the address", func(t *testing.T) {
		// Each guess from another address of one /64: rotating the interface id does not
		// escape the lockout; another /64 is not locked.
		for i, src := range []string{"2001:db8:66:1::1", "2001:db8:66:1::2", "2001:db8:66:1:ffff::3"} {
			resp, _ := srv.check(t, request{path: "/v1/open", headers: map[string]string{"x-app-token": "guess"}, source: src})
			if got := bodyCode(t, resp.GetDeniedResponse().GetBody()); got != "APP_NOT_FOUND" {
				t.Fatalf("guess %d: %s", i, got)
			}
		}
		resp, _ := srv.check(t, request{path: "/v1/open", headers: app("pk"), source: "2001:db8:66:1:abcd::9"})
		if den := resp.GetDeniedResponse(); den == nil || bodyCode(t, den.GetBody()) != "account_locked" {
			t.Fatalf("another address of the /64: %s", describe(resp))
		}
		if resp, _ := srv.check(t, request{path: "/v1/open", headers: app("pk"), source: "2001:db8:66:2::1"}); resp.GetOkResponse() == nil {
			t.Fatalf("another /64 locked too: %s", describe(resp))
		}
	})
	t.Run("rate-limit service on the same port", func(t *testing.T) {
		c := rlsv3.NewRateLimitServiceClient(srv.conn)
		req := &rlsv3.RateLimitRequest{Domain: "demo", Descriptors: []*commonrl.RateLimitDescriptor{{Entries: []*commonrl.RateLimitDescriptor_Entry{{Key: "device", Value: "dev-1"}}}}}
		for i := 1; i <= 11; i++ {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			resp, err := c.ShouldRateLimit(ctx, req)
			cancel()
			if err != nil {
				t.Fatal(err)
			}
			want := rlsv3.RateLimitResponse_OK
			if i == 11 {
				want = rlsv3.RateLimitResponse_OVER_LIMIT
			}
			if resp.GetOverallCode() != want {
				t.Fatalf("call %d: %v", i, resp.GetOverallCode())
			}
			st := resp.GetStatuses()[0]
			if st.GetCurrentLimit().GetRequestsPerUnit() != 10 || st.GetLimitRemaining() != uint32(max(10-i, 0)) {
				t.Errorf("call %d: status %v", i, st)
			}
			if i == 11 && !strings.Contains(string(resp.GetRawBody()), `"RATE_LIMITED"`) {
				t.Errorf("OVER_LIMIT body %q", resp.GetRawBody())
			}
		}
	})
}

// TestQuotaSurvivesRestart: the memory store writes quotas to its file on shutdown and
// reads them back, so a restart does not reset a monthly quota.
func TestQuotaSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, limitsConfig)
	srv := startServer(t, "--config", cfg)
	srv.waitReady(t)
	for i := 0; i < 2; i++ {
		if resp, _ := srv.check(t, request{path: "/v1/open", headers: app("quota")}); resp.GetOkResponse() == nil {
			t.Fatalf("call %d refused", i)
		}
	}
	srv.stop(t)
	if _, err := os.Stat(filepath.Join(dir, "state.json")); err != nil {
		t.Fatalf("no state file after shutdown: %v", err)
	}
	srv = startServer(t, "--config", cfg)
	srv.waitReady(t)
	resp, _ := srv.check(t, request{path: "/v1/open", headers: app("quota")})
	if got := bodyCode(t, resp.GetDeniedResponse().GetBody()); got != "QUOTA_EXCEEDED" {
		t.Fatalf("quota reset by a restart: %s", describe(resp))
	}
}

// redisServer starts a real redis-server on a free loopback port for one test.
func redisServer(t *testing.T) (addr string, kill func()) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr = l.Addr().String()
	l.Close()
	return addr, redisOn(t, addr)
}

// redisOn starts redis-server on addr and returns its kill function.
func redisOn(t *testing.T, addr string) (kill func()) {
	path, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal("redis-server is not installed: run the tests with `make test`, whose deps-test step installs it")
	}
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(path, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	cmd.Dir = t.TempDir()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	kill = func() { once.Do(func() { cmd.Process.Kill(); cmd.Wait() }) }
	t.Cleanup(kill)
	for i := 0; i < 6000; i++ { // polls until it answers; a loaded machine may need many seconds
		if c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond); err == nil {
			c.Close()
			return kill
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("redis-server did not start")
	return nil
}

// TestReplicasShareRedis: three Gatehouse processes on one Redis, under concurrent load,
// admit exactly the configured number of requests in a fixed window. (The store timeout is
// generous here: a call that times out after its script ran would count without being
// admitted, and this test is about exactness, not timeouts.) Then Redis dies:
// fail closed answers 503 SERVICE_UNAVAILABLE quickly, fail open allows.
func TestReplicasShareRedis(t *testing.T) {
	addr, kill := redisServer(t)
	cfg := fmt.Sprintf(`
store: {type: redis, redis: {addrs: ["%s"], timeout: 1s}}
apps:
  - {name: main, app_token_sha256: ["{{T:main}}"], endpoints: ["*"]}
  - {name: opener, fail_mode: open, app_token_sha256: ["{{T:opener}}"], endpoints: ["*"]}
endpoints:
  - name: burst
    path: /v1/burst
    limits: [{name: window, key: [app], requests: 100, per: 1h}]
  - name: fresh
    path: /v1/fresh
    limits: [{name: window, key: [app], requests: 100, per: 1h}]
`, addr)
	path := writeConfig(t, t.TempDir(), cfg)
	var servers []*testServer
	for i := 0; i < 3; i++ {
		s := startProcess(t, "--config", path)
		s.waitReady(t)
		servers = append(servers, s)
	}
	var allowed, denied atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 12; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			s := servers[g%3]
			for i := 0; i < 25; i++ { // 300 requests in all
				resp, err := s.check(t, request{path: "/v1/burst", headers: app("main")})
				switch {
				case err != nil:
					t.Errorf("check: %v", err)
				case resp.GetOkResponse() != nil:
					allowed.Add(1)
				case bodyCode(t, resp.GetDeniedResponse().GetBody()) == "RATE_LIMITED":
					denied.Add(1)
				default:
					t.Errorf("unexpected denial %s", describe(resp))
				}
			}
		}(g)
	}
	wg.Wait()
	if allowed.Load() != 100 || denied.Load() != 200 {
		t.Fatalf("allowed %d, denied %d; want exactly 100 and 200", allowed.Load(), denied.Load())
	}

	kill()
	// A key already over its limit is still refused from the over-limit cache.
	resp, err := servers[0].check(t, request{path: "/v1/burst", headers: app("main")})
	if err != nil || bodyCode(t, resp.GetDeniedResponse().GetBody()) != "RATE_LIMITED" {
		t.Fatalf("over-limit key with Redis down: %v %s", err, describe(resp))
	}
	resp, err = servers[0].check(t, request{path: "/v1/fresh", headers: app("main")})
	if err != nil || resp.GetDeniedResponse().GetStatus().GetCode() != 503 || bodyCode(t, resp.GetDeniedResponse().GetBody()) != "SERVICE_UNAVAILABLE" {
		t.Fatalf("fail closed with Redis down: %v %s", err, describe(resp))
	}
	resp, err = servers[1].check(t, request{path: "/v1/fresh", headers: app("opener")})
	if err != nil || resp.GetOkResponse() == nil {
		t.Fatalf("fail open with Redis down: %v %s", err, describe(resp))
	}
	if v, _ := headerValue(resp.GetOkResponse().GetHeaders(), "x-gatehouse-fail-open"); v != "true" {
		t.Errorf("allowed because Redis is down, without x-gatehouse-fail-open: %q", v)
	}
	// Each call above was answered (a denial or fail-open allow), not left to the
	// client's deadline: that is what "fails fast" means here, whatever the machine's load.

	// Redis comes back (empty): counting resumes. The deadline only catches a replica that
	// never recovers.
	redisOn(t, addr)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := servers[0].check(t, request{path: "/v1/fresh", headers: app("main")}) // the replica that saw Redis fail
		if err == nil && resp.GetOkResponse() != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never recovered after Redis came back: %v %s", err, describe(resp))
		}
		time.Sleep(10 * time.Millisecond)
	}
	_ = status.Code
	_ = codes.OK
}
