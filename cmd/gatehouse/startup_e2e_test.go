package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	commonrl "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"github.com/gatehouse/gatehouse/config"
	"github.com/redis/rueidis"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// TestServeNeedsConfigOrDemo: serve without --config refuses to start and says how to
// run the demo; --demo with --config is refused too. Neither opens a port.
func TestServeNeedsConfigOrDemo(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want []string // in stderr
	}{
		{"neither", nil, []string{"--config is required", "gatehouse serve --demo", "make run", "never run in production"}},
		{"both", []string{"--demo", "--config", "config.yaml"}, []string{"--demo and --config exclude each other"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := append(append([]string{}, serveArgs...), c.args...)
			// Bounded: a server that starts anyway stops when ctx ends, and fails below.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err := run(ctx, args, strings.NewReader(""), &stdout, &stderr)
			var ee exitError
			if !errors.As(err, &ee) || ee != 2 {
				t.Fatalf("serve %v: %v, want exit status 2", c.args, err)
			}
			for _, w := range c.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr.String())
				}
			}
			if strings.Contains(stdout.String(), "listening") {
				t.Errorf("a port opened:\n%s", stdout.String())
			}
		})
	}
}

// TestServeDemoWarnsOfPublicKey: --demo runs the embedded demo and says at WARN that it
// trusts a public key.
func TestServeDemoWarnsOfPublicKey(t *testing.T) {
	srv := startServer(t, "--demo")
	srv.waitReady(t)
	found := false
	for _, line := range strings.Split(srv.out.String(), "\n") {
		if strings.Contains(line, `"level":"WARN"`) && strings.Contains(line, "public demo key") &&
			strings.Contains(line, "not safe for production") {
			found = true
		}
	}
	if !found {
		t.Fatalf("no WARN line about the public demo key:\n%s", srv.out)
	}
}

// TestDrainDelayDefault: without --drain-delay, SIGTERM gives a NOT_SERVING window of
// 5s during which calls are still answered.
func TestDrainDelayDefault(t *testing.T) {
	f, err := parseServeFlags([]string{"--config", "config.yaml"}, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if f.drainDelay != 5*time.Second {
		t.Fatalf("default --drain-delay %v, want 5s", f.drainDelay)
	}
	// serveArgs sets --drain-delay 0; a later flag wins, so this is the default again.
	srv := startServer(t, "--demo", "--drain-delay", "5s")
	srv.waitReady(t)
	hc := healthpb.NewHealthClient(srv.conn)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	stream, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{Service: "gatehouse"})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := stream.Recv(); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("initial health %v %v", r, err)
	}
	srv.cancel()
	if r, err := stream.Recv(); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("health on SIGTERM %v %v", r, err)
	}
	resp, err := srv.check(t, request{path: "/v1/hello", headers: map[string]string{"x-app-token": "demo-app-token"}})
	if err != nil || resp.GetOkResponse() == nil {
		t.Fatalf("a call in the NOT_SERVING window: %v %s", err, describe(resp))
	}
	if err := <-srv.done; err != nil {
		t.Fatal(err)
	}
	srv.cancel = nil
	srv.conn.Close()
}

// storeConfig is the demo configuration with a Redis store at addr.
func storeConfig(addr, timeout string) []byte {
	return []byte(fmt.Sprintf("store: {type: redis, redis: {addrs: [%q], timeout: %s}}\n%s", addr, timeout, config.Demo))
}

// demoRLSCall asks the demo's RLS domain about device dev.
func demoRLSCall(srv *testServer, dev string) (*rlsv3.RateLimitResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return rlsv3.NewRateLimitServiceClient(srv.conn).ShouldRateLimit(ctx, &rlsv3.RateLimitRequest{Domain: "demo",
		Descriptors: []*commonrl.RateLimitDescriptor{{Entries: []*commonrl.RateLimitDescriptor_Entry{{Key: "device", Value: dev}}}}})
}

// redisValues returns every key of the Redis at addr with its value.
func redisValues(t *testing.T, addr string) map[string]string {
	t.Helper()
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr}, ForceSingleClient: true, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	keys, err := c.Do(ctx, c.B().Keys().Pattern("*").Build()).AsStrSlice()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, k := range keys {
		out[k], _ = c.Do(ctx, c.B().Get().Key(k).Build()).ToString()
	}
	return out
}

// TestStoreFromFirstGoodConfig: a server started on a bad file opens the store of the
// first file that loads, here Redis: the counts land in Redis, not in a memory store
// picked before any file was good.
func TestStoreFromFirstGoodConfig(t *testing.T) {
	addr, _ := redisServer(t)
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte("apps: [{name: broken}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := startAdmin(t, false, "--config", path)
	waitUntil(t, "the rejection to be logged", func() bool { return len(srv.out.records("no valid configuration yet: not ready")) > 0 })
	if err := os.WriteFile(path, storeConfig(addr, "1s"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "ready after the fix", func() bool { return srv.get(t, "/readyz") == http.StatusOK })
	srv.awaitGRPC(t)
	for i := range 3 {
		if resp, err := demoRLSCall(srv, "dev-first"); err != nil || resp.GetOverallCode() != rlsv3.RateLimitResponse_OK {
			t.Fatalf("call %d: %v %v", i, resp, err)
		}
	}
	var counted []string
	for k, v := range redisValues(t, addr) {
		if strings.Contains(k, "dev-first") && v == "3" {
			counted = append(counted, k)
		}
	}
	if len(counted) != 1 {
		t.Fatalf("Redis holds %v; want one key of dev-first counted 3 times", redisValues(t, addr))
	}
	if recs := srv.out.records("counter store open"); len(recs) != 1 || recs[0]["type"] != "redis" {
		t.Fatalf("store opened: %v, want once, redis", recs)
	}
	if recs := srv.out.records("the store section changed: the running store stays until a restart"); len(recs) != 0 {
		t.Fatalf("the first good configuration was reported as a store change")
	}
}

// TestReadinessFollowsRedis: with Redis unreachable, the server is live but not ready
// (/readyz and gRPC health), calls get their fail mode; when Redis comes it is ready,
// when Redis dies it is not ready again, and it never stops being live.
func TestReadinessFollowsRedis(t *testing.T) {
	addr := freeAddr(t)
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, storeConfig(addr, "100ms"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, "--config", path)
	health := func() healthpb.HealthCheckResponse_ServingStatus {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r, _ := healthpb.NewHealthClient(srv.conn).Check(ctx, &healthpb.HealthCheckRequest{Service: "gatehouse"})
		return r.GetStatus()
	}
	notReady := func(state string) {
		t.Helper()
		code, body := srv.readyz(t)
		if code != http.StatusServiceUnavailable || !strings.Contains(body, "counter store") {
			t.Fatalf("%s: /readyz %d %q, want 503 naming the counter store", state, code, body)
		}
		if h := health(); h != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Fatalf("%s: gRPC health %v", state, h)
		}
		if code := srv.get(t, "/healthz"); code != http.StatusOK {
			t.Fatalf("%s: /healthz %d", state, code)
		}
	}
	notReady("Redis never reached")
	if _, err := demoRLSCall(srv, "dev-1"); err == nil {
		t.Fatal("an RLS call answered without its store")
	}

	kill := redisOn(t, addr)
	waitUntil(t, "ready once Redis answers", func() bool { return srv.get(t, "/readyz") == http.StatusOK })
	if h := health(); h != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("gRPC health %v with Redis up", h)
	}
	if resp, err := demoRLSCall(srv, "dev-1"); err != nil || resp.GetOverallCode() != rlsv3.RateLimitResponse_OK {
		t.Fatalf("RLS with Redis up: %v %v", resp, err)
	}

	kill()
	waitUntil(t, "not ready once Redis dies", func() bool { return srv.get(t, "/readyz") == http.StatusServiceUnavailable })
	notReady("Redis died")
	redisOn(t, addr)
	waitUntil(t, "ready again once Redis is back", func() bool { return srv.get(t, "/readyz") == http.StatusOK })
}

// slowConnProxy forwards TCP to target but holds each new connection for setup first:
// making a connection takes far longer than a store call may, a round trip on one made
// does not.
func slowConnProxy(t *testing.T, target string, setup time.Duration) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				<-time.After(setup) // the slow connection set-up being simulated
				up, err := net.Dial("tcp", target)
				if err != nil {
					c.Close()
					return
				}
				mu.Lock()
				conns = append(conns, c, up)
				mu.Unlock()
				go func() { io.Copy(up, c); up.Close() }()
				io.Copy(c, up)
				c.Close()
			}()
		}
	}()
	return l.Addr().String()
}

// TestFirstCallsAfterStartFindConnections: connections to Redis take 300ms to make and
// a store call may take 100ms: every one of the first RLS calls after the server is
// ready succeeds, because every connection was made before it opened its port.
func TestFirstCallsAfterStartFindConnections(t *testing.T) {
	addr, _ := redisServer(t)
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, storeConfig(slowConnProxy(t, addr, 300*time.Millisecond), "100ms"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, "--config", path)
	srv.waitReady(t)
	for i := range 50 {
		if resp, err := demoRLSCall(srv, fmt.Sprint("dev-", i)); err != nil || resp.GetOverallCode() != rlsv3.RateLimitResponse_OK {
			t.Fatalf("call %d after start: %v %v", i, resp, err)
		}
	}
}
