package rls

import (
	"testing"
	"time"

	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/ratelimit"
)

func TestToProto(t *testing.T) {
	now := time.Unix(1_700_000_000, 500_000_000)
	minute := &ratelimit.RLSCurrentLimit{RequestsPerUnit: 10, Unit: ratelimit.UnitMinute}
	hour := &ratelimit.RLSCurrentLimit{RequestsPerUnit: 100, Unit: ratelimit.UnitHour, Multiplier: 2, Name: "h"}
	tests := []struct {
		name    string
		res     ratelimit.RLSResponse
		code    rlsv3.RateLimitResponse_Code
		headers map[string]string
	}{
		{"no limits", ratelimit.RLSResponse{Statuses: []ratelimit.RLSStatus{{}}, AddHeaders: true},
			rlsv3.RateLimitResponse_OK, map[string]string{}},
		{"the told limit, reset rounded up", ratelimit.RLSResponse{AddHeaders: true, RateLimit: policy.LimitResult{
			Name: "m", Limit: 10, Remaining: 3, Reset: now.Add(20 * time.Second)}, Statuses: []ratelimit.RLSStatus{
			{Limit: hour, Remaining: 50, UntilReset: time.Hour},
			{Limit: minute, Remaining: 3, UntilReset: 20 * time.Second},
			{Remaining: 4294967295}, // unlimited
		}}, rlsv3.RateLimitResponse_OK, map[string]string{
			"X-RateLimit-Limit": "10", "X-RateLimit-Remaining": "3", "X-RateLimit-Reset": "1700000021",
		}},
		{"over: Retry-After", ratelimit.RLSResponse{OverLimit: true, AddHeaders: true, RateLimit: policy.LimitResult{
			Name: "h", Code: policy.RateLimited, Limit: 100, Reset: now.Add(time.Hour), RetryAfter: time.Hour}, Statuses: []ratelimit.RLSStatus{
			{Limit: minute, OverLimit: true, UntilReset: 20 * time.Second, RetryAfter: 20 * time.Second},
			{Limit: hour, OverLimit: true, UntilReset: time.Hour, RetryAfter: time.Hour},
		}}, rlsv3.RateLimitResponse_OVER_LIMIT, map[string]string{
			"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1700003601",
			"Retry-After": "3600", "content-type": "application/json",
		}},
		{"over without headers", ratelimit.RLSResponse{OverLimit: true, RateLimit: policy.LimitResult{
			Name: "m", Code: policy.RateLimited, Limit: 10, RetryAfter: 10 * time.Millisecond}, Statuses: []ratelimit.RLSStatus{
			{Limit: minute, OverLimit: true, RetryAfter: 10 * time.Millisecond},
		}}, rlsv3.RateLimitResponse_OVER_LIMIT, map[string]string{"content-type": "application/json"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := ToProto(tt.res, now)
			if out.OverallCode != tt.code {
				t.Fatalf("code %v", out.OverallCode)
			}
			got := map[string]string{}
			for _, h := range out.ResponseHeadersToAdd {
				got[h.Key] = h.Value
			}
			if len(got) != len(tt.headers) {
				t.Fatalf("headers %v, want %v", got, tt.headers)
			}
			for k, v := range tt.headers {
				if got[k] != v {
					t.Fatalf("%s = %q, want %q (all: %v)", k, got[k], v, got)
				}
			}
			if (out.RawBody != nil) != tt.res.OverLimit {
				t.Fatalf("body %q", out.RawBody)
			}
			for i, st := range tt.res.Statuses {
				ps := out.Statuses[i]
				if (ps.CurrentLimit == nil) != (st.Limit == nil) || ps.LimitRemaining != st.Remaining {
					t.Fatalf("status %d: %v", i, ps)
				}
				if st.Limit != nil && st.Limit.Multiplier > 1 && ps.CurrentLimit.UnitMultiplier.GetValue() != st.Limit.Multiplier {
					t.Fatalf("multiplier %v", ps.CurrentLimit)
				}
			}
		})
	}
}
