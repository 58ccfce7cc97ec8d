package policy_test

import (
	"context"
	"net/netip"
	"testing"

	"github.com/gatehouse/gatehouse/policy"
)

// TestIPv6ClientsCountByTheirSlash64: a subscriber gets a whole IPv6 /64 and can pick any
// address in it, so lockouts and IP limits count an IPv6 client by its /64; rotating the
// interface id must not escape them. IPv4 (and IPv4-mapped) clients count by address. The
// keys are hand-typed.
func TestIPv6ClientsCountByTheirSlash64(t *testing.T) {
	cases := []struct{ source, key string }{
		{"192.0.2.7", "192.0.2.7"},
		{"::ffff:192.0.2.7", "192.0.2.7"},
		{"2001:db8:1:2::1", "2001:db8:1:2::/64"},
		{"2001:db8:1:2:ffff:ffff:ffff:fffe", "2001:db8:1:2::/64"},
		{"2001:db8:1:3::1", "2001:db8:1:3::/64"},
		{"fe80::1", "fe80::/64"},
	}
	for _, c := range cases {
		lo := &fakeLockout{}
		lim := &fakeLimiter{}
		r := newTestRules(t, policy.Options{Lockout: lo, Limiter: lim}, nil, &policy.Endpoint{Name: "e", Path: "/e"})
		in := get("/e")
		in.Source = netip.MustParseAddr(c.source)
		wantCode(t, r.Decide(context.Background(), t0, in), "")
		if len(lim.got) != 1 || lim.got[0].IP != c.key {
			t.Errorf("%s: limit key %+v, want IP %q", c.source, lim.got, c.key)
		}
		in.Headers["x-app-token"] = "guess"
		wantCode(t, r.Decide(context.Background(), t0, in), policy.AppNotFound)
		if f := lo.failures(); len(f) != 1 || f[0] != "ip:"+c.key {
			t.Errorf("%s: lockout keys %q, want ip:%s", c.source, f, c.key)
		}
	}
}
