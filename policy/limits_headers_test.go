package policy

import (
	"testing"
	"time"
)

// TestRateLimitHeaders: the headers of the limit a client is told about, at the edges of
// their rounding. The first case is the documented example; the others are typed by
// hand (Reset: the first whole second at which the limit has reset; Retry-After: whole
// seconds rounded up, at least 1).
func TestRateLimitHeaders(t *testing.T) {
	at := func(s, ns int64) time.Time { return time.Unix(s, ns) }
	for _, tc := range []struct {
		name string
		r    LimitResult
		want RateLimitHeaders
	}{
		{"documented example", LimitResult{Name: "m", Code: QuotaExceeded, Limit: 100, Remaining: 0, Reset: at(1609459200, 0), RetryAfter: 60 * time.Second},
			RateLimitHeaders{"100", "0", "1609459200", "60"}},
		{"reset 1ns past a second", LimitResult{Name: "m", Limit: 10, Remaining: 3, Reset: at(1609459200, 1)},
			RateLimitHeaders{"10", "3", "1609459201", ""}},
		{"reset 1ns before a second", LimitResult{Name: "m", Limit: 10, Remaining: 3, Reset: at(1609459199, 999_999_999)},
			RateLimitHeaders{"10", "3", "1609459200", ""}},
		{"no reset: credits", LimitResult{Name: "c", Code: NoCredits, Limit: 5, RetryAfter: time.Minute},
			RateLimitHeaders{"5", "0", "", "60"}},
		{"negative remaining", LimitResult{Name: "m", Limit: 10, Remaining: -2, Reset: at(1, 0)},
			RateLimitHeaders{"10", "0", "1", ""}},
		{"retry exactly 60s", LimitResult{Name: "m", Code: RateLimited, Limit: 1, Reset: at(2, 0), RetryAfter: 60 * time.Second},
			RateLimitHeaders{"1", "0", "2", "60"}},
		{"retry 60s and 1ns", LimitResult{Name: "m", Code: RateLimited, Limit: 1, Reset: at(2, 0), RetryAfter: 60*time.Second + 1},
			RateLimitHeaders{"1", "0", "2", "61"}},
		{"retry 59.999999999s", LimitResult{Name: "m", Code: RateLimited, Limit: 1, Reset: at(2, 0), RetryAfter: 60*time.Second - 1},
			RateLimitHeaders{"1", "0", "2", "60"}},
		{"retry a year and 1ns", LimitResult{Name: "y", Code: QuotaExceeded, Limit: 1, Reset: at(2, 0), RetryAfter: 365*24*time.Hour + 1},
			RateLimitHeaders{"1", "0", "2", "31536001"}},
		{"retry 1ns: at least 1", LimitResult{Name: "m", Code: RateLimited, Limit: 1, Reset: at(2, 0), RetryAfter: 1},
			RateLimitHeaders{"1", "0", "2", "1"}},
		{"retry unknown (0) on a denial: 1", LimitResult{Name: "m", Code: DeviceRateLimited, Limit: 1, Reset: at(2, 0)},
			RateLimitHeaders{"1", "0", "2", "1"}},
		{"admitted: no Retry-After", LimitResult{Name: "m", Limit: 1, Remaining: 1, Reset: at(2, 0), RetryAfter: time.Minute},
			RateLimitHeaders{"1", "1", "2", ""}},
		{"no limit applied", LimitResult{Limit: 10, Reset: at(2, 0)}, RateLimitHeaders{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.r.Headers(); got != tc.want {
				t.Errorf("%+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestRateLimitHeaderNumbers: the counts at the edges of the ones spelled in advance
// (4095 and 4096), and resets that share a remembered spelling (8 seconds apart), each
// told correctly whatever came before. Expected values typed by hand.
func TestRateLimitHeaderNumbers(t *testing.T) {
	for _, tc := range []struct {
		r    LimitResult
		want RateLimitHeaders
	}{
		{LimitResult{Name: "m", Limit: 4095, Remaining: 4094, Reset: time.Unix(1609459200, 0)}, RateLimitHeaders{"4095", "4094", "1609459200", ""}},
		{LimitResult{Name: "m", Limit: 4096, Remaining: 4095, Reset: time.Unix(1609459208, 0)}, RateLimitHeaders{"4096", "4095", "1609459208", ""}},
		{LimitResult{Name: "m", Limit: 4097, Remaining: 4096, Reset: time.Unix(1609459200, 0)}, RateLimitHeaders{"4097", "4096", "1609459200", ""}},
		{LimitResult{Name: "m", Limit: 0, Remaining: 0, Reset: time.Unix(1609459216, 0)}, RateLimitHeaders{"0", "0", "1609459216", ""}},
		{LimitResult{Name: "m", Limit: 1_000_000_000_000, Remaining: 999_999_999_999, Reset: time.Unix(1609459208, 0)},
			RateLimitHeaders{"1000000000000", "999999999999", "1609459208", ""}},
		{LimitResult{Name: "m", Limit: 100, Remaining: 99, Reset: time.Unix(-8, 0)}, RateLimitHeaders{"100", "99", "-8", ""}},
		{LimitResult{Name: "m", Limit: 100, Remaining: 99, Reset: time.Unix(0, 1)}, RateLimitHeaders{"100", "99", "1", ""}},
	} {
		if got := tc.r.Headers(); got != tc.want {
			t.Errorf("%+v: %+v, want %+v", tc.r, got, tc.want)
		}
	}
}

// TestRateLimitHeadersAllocs: an admitted request's headers, for a limit and remainder
// below 4096 and a reset told before in the same second, cost no allocation.
func TestRateLimitHeadersAllocs(t *testing.T) {
	r := LimitResult{Name: "per_device", Limit: 100, Remaining: 99, Reset: time.Unix(1609459200, 5e8)}
	r.Headers()
	if n := testing.AllocsPerRun(100, func() { r.Headers() }); n != 0 {
		t.Errorf("%.0f allocations, want 0", n)
	}
}
