package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy/attest/appattest"
	"github.com/gatehouse/gatehouse/policy/attest/appattest/appattesttest"
	"github.com/gatehouse/gatehouse/policy/challenge"
	"github.com/gatehouse/gatehouse/ratelimit/redisstore"
	"github.com/gatehouse/gatehouse/ratelimit/state"
)

const e2eAppID = "TEAM123456.com.example.shop"

// appAttestConfig is an app whose /v1/orders requires an App Attest assertion, on the
// Redis at addr, trusting the root in the PEM file root (Apple's when empty).
func appAttestConfig(addr, root string) string {
	rootLine := ""
	if root != "" {
		rootLine = ", root_ca_file: " + root
	}
	return fmt.Sprintf(`
store: {type: redis, redis: {addrs: ["%s"], timeout: 1s, key_prefix: "aa:"}}
apps:
  - name: shop
    app_token_sha256: ["{{T:shop}}"]
    endpoints: ["*"]
    attestation:
      providers:
        - type: app_attest
          app_attest: {app_id: %s%s}
endpoints:
  - {name: orders, path: /v1/orders, attestation: require}
`, addr, e2eAppID, rootLine)
}

// testRoot returns a test CA and the path of a PEM file holding its root, for
// root_ca_file.
func testRoot(t *testing.T) (*appattesttest.CA, string) {
	t.Helper()
	ca := appattesttest.NewCA(time.Now().AddDate(-1, 0, 0))
	file := filepath.Join(t.TempDir(), "root.pem")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Root.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return ca, file
}

// enrolOnRedis enrols dev for app shop directly in the Redis the servers share (the
// enrolment endpoint is another feature), with a chain of ca, under the trust of a
// server configured with ca's root.
func enrolOnRedis(t *testing.T, addr string, ca *appattesttest.CA, dev *appattesttest.Device) *appattest.Keys {
	t.Helper()
	ctx := context.Background()
	store, err := redisstore.Open(ctx, state.RedisConfig{Addrs: []string{addr}, KeyPrefix: "aa:", Timeout: time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	now := time.Now()
	chal, _ := challenge.New(store, time.Minute, nil)
	keys, err := appattest.NewKeys(store, chal, "shop", appattest.Params{AppID: e2eAppID, Roots: ca.Pool}, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c, err := keys.Challenge(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	cdh := sha256.Sum256([]byte(c))
	if _, err := keys.Enrol(ctx, now, dev.KeyID, ca.Attest(dev, appattesttest.Attestation{AppID: e2eAppID, ClientDataHash: cdh[:]}, now), c); err != nil {
		t.Fatal(err)
	}
	return keys
}

// assertedOrder is a request to /v1/orders?id=7 carrying dev's assertion with counter n,
// signed over SHA-256("GET\n/v1/orders?id=7\n" + binding), as the README documents.
func assertedOrder(dev *appattesttest.Device, n uint32, binding string) request {
	cdh := sha256.Sum256([]byte("GET\n/v1/orders?id=7\n" + binding))
	return request{path: "/v1/orders?id=7", headers: with(app("shop"),
		"x-app-attest-key-id", base64.StdEncoding.EncodeToString(dev.KeyID),
		"x-app-attest-assertion", base64.StdEncoding.EncodeToString(dev.Assert(e2eAppID, n, cdh[:])),
		"x-app-attest-binding", binding)}
}

// TestAppAttestCounterAcrossReplicas: two Gatehouse processes share one redis-server.
// Each assertion counter, sent to both at once (two calls to each), is accepted exactly
// once; the accepted call carries the app-scoped device id upstream.
func TestAppAttestCounterAcrossReplicas(t *testing.T) {
	addr, _ := redisServer(t)
	ca, root := testRoot(t)
	path := writeConfig(t, t.TempDir(), appAttestConfig(addr, root))
	dev := appattesttest.NewDevice()
	keys := enrolOnRedis(t, addr, ca, dev)
	servers := []*testServer{startProcess(t, "--config", path), startProcess(t, "--config", path)}
	for _, s := range servers {
		s.waitReady(t)
	}
	for n := uint32(1); n <= 8; n++ {
		r := assertedOrder(dev, n, fmt.Sprint("nonce-", n))
		var mu sync.Mutex
		var ok, refused int
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range 4 {
			s := servers[i%2]
			wg.Go(func() {
				<-start
				resp, err := s.check(t, r)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err != nil:
					t.Errorf("check: %v", err)
				case resp.GetOkResponse() != nil:
					ok++
					if id, _ := headerValue(resp.GetOkResponse().GetHeaders(), "x-gatehouse-device"); id != keys.DeviceID(dev.KeyID) {
						t.Errorf("device id upstream %q", id)
					}
				case bodyCode(t, resp.GetDeniedResponse().GetBody()) == "ATTESTATION_FAILED":
					refused++
				default:
					t.Errorf("unexpected %s", describe(resp))
				}
			})
		}
		close(start)
		wg.Wait()
		if ok != 1 || refused != 3 {
			t.Fatalf("counter %d: %d accepted, %d refused; want 1 and 3", n, ok, refused)
		}
	}
	// After 8, a lower counter is refused on either replica, and 9 is accepted.
	for _, tc := range []struct {
		s    *testServer
		r    request
		want string
	}{
		{servers[0], assertedOrder(dev, 7, "x"), "ATTESTATION_FAILED"},
		{servers[1], assertedOrder(dev, 8, "x"), "ATTESTATION_FAILED"},
		{servers[1], assertedOrder(appattesttest.NewDevice(), 9, "x"), "INVALID_ATTESTATION"},
		{servers[0], request{path: "/v1/orders?id=7", headers: app("shop")}, "ATTESTATION_REQUIRED"},
		{servers[1], assertedOrder(dev, 9, "x"), ""},
	} {
		resp, err := tc.s.check(t, tc.r)
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		if d := resp.GetDeniedResponse(); d != nil {
			got = bodyCode(t, d.GetBody())
		}
		if got != tc.want {
			t.Fatalf("got %s, want %q", describe(resp), tc.want)
		}
	}
}

// TestAppAttestBoundToRequest: an assertion signed for one request target is refused for
// another (the query is part of it), and one signed for no binding value is refused when
// the client sends one.
func TestAppAttestBoundToRequest(t *testing.T) {
	addr, _ := redisServer(t)
	ca, root := testRoot(t)
	path := writeConfig(t, t.TempDir(), appAttestConfig(addr, root))
	dev := appattesttest.NewDevice()
	enrolOnRedis(t, addr, ca, dev)
	s := startServer(t, "--config", path)
	s.waitReady(t)
	other := assertedOrder(dev, 1, "n")
	other.path = "/v1/orders?id=8"
	unbound := assertedOrder(dev, 2, "")
	unbound.headers["x-app-attest-binding"] = "late"
	for _, r := range []request{other, unbound} {
		resp, err := s.check(t, r)
		if err != nil {
			t.Fatal(err)
		}
		if d := resp.GetDeniedResponse(); d == nil || bodyCode(t, d.GetBody()) != "ATTESTATION_FAILED" || d.GetStatus().GetCode() != 403 {
			t.Fatalf("got %s, want 403 ATTESTATION_FAILED", describe(resp))
		}
	}
}
