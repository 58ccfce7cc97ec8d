package policy_test

import (
	"context"
	"net/netip"
	"testing"

	"github.com/gatehouse/gatehouse/policy"
)

// TestForwardClient: an allowed request to an endpoint whose response phase counts by
// the client address (ForwardClient) carries it as lockouts count it (an IPv6 client by
// its /64), after trusted_hops; other endpoints and denials carry none.
func TestForwardClient(t *testing.T) {
	for _, tc := range []struct {
		name    string
		forward bool
		source  string
		xff     string
		want    string
	}{
		{"ipv4", true, "192.0.2.1", "", "192.0.2.1"},
		{"ipv6 by its /64", true, "2001:db8:1:2:3:4:5:6", "", "2001:db8:1:2::/64"},
		{"after one trusted hop", true, "10.0.0.1", "203.0.113.5", "203.0.113.5"},
		{"not a login endpoint", false, "192.0.2.1", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newTestRules(t, policy.Options{TrustedHops: 1}, &policy.App{}, &policy.Endpoint{Name: "e", Path: "/e", ForwardClient: tc.forward})
			in := get("/e")
			in.Source = netip.MustParseAddr(tc.source)
			if tc.xff != "" {
				in.Headers["x-forwarded-for"] = tc.xff
			}
			d := r.Decide(context.Background(), t0, in)
			wantCode(t, d, "")
			if d.Client != tc.want {
				t.Fatalf("client %q, want %q", d.Client, tc.want)
			}
		})
	}
	r := newTestRules(t, policy.Options{}, &policy.App{}, &policy.Endpoint{Name: "e", Path: "/e", ForwardClient: true})
	d := r.Decide(context.Background(), t0, get("/other"))
	if d.Outcome == policy.Allow || d.Client != "" {
		t.Fatalf("denial carries client %q", d.Client)
	}
}
