package extauthz

import (
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy"
)

// TestToldRetryAfter: a request a limit refused always gets one Retry-After, at least 1
// second, as the rate-limit service sends it, even when the limiter did not know the
// wait (an over-limit mark answered first); another step's wait (a lockout) is rendered
// as before. Expected values by hand.
func TestToldRetryAfter(t *testing.T) {
	reset := time.Unix(1609459200, 0)
	for _, tc := range []struct {
		name string
		d    policy.Decision
		want []string // every retry-after value, in order
	}{
		{"limit denial, unknown wait", policy.Decision{Outcome: policy.Deny, Code: policy.DeviceRateLimited,
			RateLimit: policy.LimitResult{Code: policy.DeviceRateLimited, Limit: 2, Reset: reset, Name: "device"}}, []string{"1"}},
		{"limit denial, a year and 1ns", policy.Decision{Outcome: policy.Deny, Code: policy.QuotaExceeded, RetryAfter: 365*24*time.Hour + 1,
			RateLimit: policy.LimitResult{Code: policy.QuotaExceeded, Limit: 2, Reset: reset, RetryAfter: 365*24*time.Hour + 1, Name: "year"}}, []string{"31536001"}},
		{"limit denial, 59.5s", policy.Decision{Outcome: policy.Deny, Code: policy.RateLimited, RetryAfter: 59500 * time.Millisecond,
			RateLimit: policy.LimitResult{Code: policy.RateLimited, Limit: 100, Reset: reset, RetryAfter: 59500 * time.Millisecond, Name: "app"}}, []string{"60"}},
		{"lockout", policy.Decision{Outcome: policy.Deny, Code: policy.RateLimited, RetryAfter: 90 * time.Second}, []string{"90"}},
		{"allowed", policy.Decision{Outcome: policy.Allow, RateLimit: policy.LimitResult{Limit: 2, Remaining: 1, Reset: reset, Name: "device"}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := ToResponse(&tc.d, "id")
			hs := resp.GetOkResponse().GetResponseHeadersToAdd()
			if den := resp.GetDeniedResponse(); den != nil {
				hs = den.GetHeaders()
			}
			var got []string
			for _, h := range hs {
				if h.GetHeader().GetKey() == "retry-after" {
					got = append(got, h.GetHeader().GetValue())
				}
			}
			if len(got) != len(tc.want) || len(got) > 0 && got[0] != tc.want[0] {
				t.Fatalf("retry-after %q, want %q", got, tc.want)
			}
		})
	}
}
