package rls_test

import (
	"testing"
	"time"

	common "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/ratelimit"
	"github.com/gatehouse/gatehouse/ratelimit/rls"
)

// TestToldLimitHeaders: the rate-limit service's X-RateLimit-* headers speak of the limit
// the client is told about by the same rules as ext_authz: a limit in shadow mode decides
// nothing and is never told, even when it is the most constrained; among enforced limits
// the smallest remaining, a denial before any admission. Expected values by hand (the
// clock stands at 12:00:10, so the hour window resets at 13:00:00 = 1741957200).
func TestToldLimitHeaders(t *testing.T) {
	c, _, _ := serve(t, ratelimit.RLSConfig{Files: []string{}, AddHeaders: true, Domains: []ratelimit.DomainConfig{{
		Domain: "d", Descriptors: []ratelimit.DescriptorConfig{
			{Key: "a", RateLimit: &ratelimit.RateLimitConfig{Unit: "hour", RequestsPerUnit: 5}},
			{Key: "b", RateLimit: &ratelimit.RateLimitConfig{Unit: "hour", RequestsPerUnit: 3}},
			{Key: "s", ShadowMode: true, RateLimit: &ratelimit.RateLimitConfig{Unit: "hour", RequestsPerUnit: 1}},
		}}}}, nil)
	for i, tc := range []struct {
		descs []string
		want  map[string]string
	}{
		// a 1/5 (4 left), s 1/1 in shadow (0 left): a is told.
		{[]string{"a", "s"}, map[string]string{"X-RateLimit-Limit": "5", "X-RateLimit-Remaining": "4", "X-RateLimit-Reset": "1741957200"}},
		// a 2/5 (3 left), s 2/1 refused in shadow: still a.
		{[]string{"a", "s"}, map[string]string{"X-RateLimit-Limit": "5", "X-RateLimit-Remaining": "3", "X-RateLimit-Reset": "1741957200"}},
		// a 3/5 (2 left), b 1/3 (2 left): a tie, the first listed is told.
		{[]string{"a", "b"}, map[string]string{"X-RateLimit-Limit": "5", "X-RateLimit-Remaining": "2", "X-RateLimit-Reset": "1741957200"}},
		// b 2/3 (1 left), a 4/5 (1 left): the first listed again.
		{[]string{"b", "a"}, map[string]string{"X-RateLimit-Limit": "3", "X-RateLimit-Remaining": "1", "X-RateLimit-Reset": "1741957200"}},
	} {
		var ds []*common.RateLimitDescriptor
		for _, k := range tc.descs {
			ds = append(ds, desc(k, "x"))
		}
		res := call(t, c, "d", 1, ds...)
		got := map[string]string{}
		for _, h := range res.ResponseHeadersToAdd {
			got[h.Key] = h.Value
		}
		if len(got) != len(tc.want) {
			t.Fatalf("request %d: headers %v, want %v", i, got, tc.want)
		}
		for k, v := range tc.want {
			if got[k] != v {
				t.Fatalf("request %d: %s = %q, want %q (all: %v)", i, k, got[k], v, got)
			}
		}
	}
}

// TestToldRetryAfterRounding: Retry-After is rounded up in whole nanoseconds: a year-long
// window's wait one nanosecond past a whole second says one second more (rounding through
// a float64 of seconds loses that nanosecond). Expected values by hand.
func TestToldRetryAfterRounding(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	wait := 365*24*time.Hour + 1
	lim := &ratelimit.RLSCurrentLimit{RequestsPerUnit: 1, Unit: ratelimit.UnitYear}
	res := rls.ToProto(ratelimit.RLSResponse{OverLimit: true, AddHeaders: true,
		Statuses:  []ratelimit.RLSStatus{{Limit: lim, OverLimit: true, UntilReset: wait, RetryAfter: wait}},
		RateLimit: policy.LimitResult{Name: "y", Code: policy.RateLimited, Limit: 1, Reset: now.Add(wait), RetryAfter: wait}}, now)
	got := map[string]string{}
	for _, h := range res.ResponseHeadersToAdd {
		got[h.Key] = h.Value
	}
	if got["Retry-After"] != "31536001" || got["X-RateLimit-Reset"] != "1731536001" {
		t.Fatalf("headers %v, want Retry-After 31536001, X-RateLimit-Reset 1731536001", got)
	}
}
