package main

import (
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/gatehouse/gatehouse/config"
	"google.golang.org/grpc"
)

// countingAuthz answers OK and counts the requests per device header value.
type countingAuthz struct {
	authv3.UnimplementedAuthorizationServer
	mu   sync.Mutex
	seen map[string]int
}

func (a *countingAuthz) Check(_ context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	a.mu.Lock()
	a.seen[req.GetAttributes().GetRequest().GetHttp().GetHeaders()["x-device-id"]]++
	a.mu.Unlock()
	return &authv3.CheckResponse{}, nil
}

// TestWarmEveryDeviceOnce: --warm-devices sends every device's request exactly once, over
// all the workers and connections.
func TestWarmEveryDeviceOnce(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	a := &countingAuthz{seen: map[string]int{}}
	authv3.RegisterAuthorizationServer(srv, a)
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()
	ctx := context.Background()
	conns, err := dialTarget(ctx, lis.Addr().String(), 2)
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll(conns)

	const devices = 997 // not a multiple of the workers
	checks, _ := buildRequests(reqShape{mode: "authz", devices: devices, host: "h", path: "/p", deviceHeader: "x-device-id"})
	c, err := warm(ctx, loadSpec{conns: conns, concurrency: 7, checks: checks})
	if err != nil {
		t.Fatal(err)
	}
	if c.ok != devices || c.denied != 0 || c.errs != 0 {
		t.Fatalf("ok %d denied %d errs %d, want %d 0 0", c.ok, c.denied, c.errs, devices)
	}
	if len(a.seen) != devices {
		t.Fatalf("%d distinct devices seen, want %d", len(a.seen), devices)
	}
	for d, n := range a.seen {
		if n != 1 || !strings.HasPrefix(d, "device-") {
			t.Fatalf("device %q seen %d times, want once", d, n)
		}
	}
}

// TestDeviceThrottleFlags: --no-attest keeps the device-throttle request shape without
// tokens, and its config trusts the device header where the attested one requires a token.
func TestDeviceThrottleFlags(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		attest bool
	}{
		{[]string{"--device-throttle"}, true},
		{[]string{"--device-throttle", "--no-attest"}, false},
		{[]string{"--device-throttle", "--no-attest", "--warm-devices"}, false},
	} {
		c, err := parseRunFlags(tc.args, io.Discard)
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if c.attest != tc.attest || c.shape.path != "/v1/secure" || c.shape.exts["endpoint"] != "secure" {
			t.Errorf("%v: attest %v path %q endpoint %q; want %v /v1/secure secure", tc.args, c.attest, c.shape.path, c.shape.exts["endpoint"], tc.attest)
		}
	}
	if _, err := parseRunFlags([]string{"--no-attest"}, io.Discard); err == nil {
		t.Error("--no-attest accepted without --device-throttle")
	}
	for _, attest := range []bool{true, false} {
		f, err := config.Parse([]byte(deviceThrottleConfig("store:\n  type: memory\n", attest)))
		if err != nil {
			t.Fatal(err)
		}
		app, ep := f.Apps[0], f.Endpoints[0]
		if got := app.Attestation != nil && ep.Attestation == "require"; got != attest {
			t.Errorf("attest %v: attestation required %v", attest, got)
		}
		if got := app.Devices != nil && app.Devices.TrustDeviceHeader; got == attest {
			t.Errorf("attest %v: device header trusted %v", attest, got)
		}
		if len(app.Limits) != 2 || app.Limits[0].Key[0] != "device" {
			t.Errorf("attest %v: limits %+v, want the per-device throttle first", attest, app.Limits)
		}
	}
}
