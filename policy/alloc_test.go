package policy_test

import (
	"context"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy"
)

// fixedLimiter admits every request with the same result and keeps nothing.
type fixedLimiter struct{ res policy.LimitResult }

func (l fixedLimiter) Limit(context.Context, time.Time, policy.LimitRequest) (policy.LimitResult, error) {
	return l.res, nil
}

// TestDecideAttestedDeviceAllocs: deciding an attested device's allowed request with a
// limit costs exactly 3 allocations: the upstream headers (app, endpoint, device) in one
// list, the headers to remove (the attestation token and the app token) in one list, and
// the client address as the limits key it.
func TestDecideAttestedDeviceAllocs(t *testing.T) {
	dev := fakeDevice{device: policy.DeviceVerdict{DeviceID: "device-7", Attested: true, Provider: "signed_token",
		CacheHit: true, Remove: []string{"x-attestation-token", "x-license-key"}}}
	lim := fixedLimiter{policy.LimitResult{Limit: 50, Remaining: 99, Reset: t0.Add(time.Second), Name: "per_device"}}
	r := newTestRules(t, policy.Options{Limiter: lim}, &policy.App{Device: dev},
		&policy.Endpoint{Name: "secure", Path: "/v1/secure", Methods: []string{"GET"}})
	in := get("/v1/secure", "x-attestation-token", "t", "x-device-id", "device-7")
	ctx := context.Background()
	d := r.Decide(ctx, t0, in)
	wantCode(t, d, "")
	if len(d.Upstream) != 3 || len(d.Remove) != 2 || d.Remove[0] != "x-attestation-token" || d.Remove[1] != "x-app-token" {
		t.Fatalf("upstream %v, remove %v", d.Upstream, d.Remove)
	}
	if n := testing.AllocsPerRun(100, func() { r.Decide(ctx, t0, in) }); n != 3 {
		t.Errorf("%.0f allocations, want 3", n)
	}
}
