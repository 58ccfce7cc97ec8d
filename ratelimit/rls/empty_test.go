package rls_test

import (
	"context"
	"testing"
	"time"

	common "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gatehouse/gatehouse/ratelimit"
)

// TestEmptyRequest: as envoyproxy/ratelimit (its service's checkServiceErr), an empty
// domain or an empty descriptor list is a gRPC error, code UNKNOWN (a plain Go error
// there), with its message; the domain is checked first. Known domains and unknown ones
// alike: nothing is counted.
func TestEmptyRequest(t *testing.T) {
	c, _, _ := serve(t, ratelimit.RLSConfig{}, nil)
	one := []*common.RateLimitDescriptor{desc("generic_key", "slowpath")}
	for _, tc := range []struct {
		name string
		req  *rlsv3.RateLimitRequest
		msg  string
	}{
		{"empty domain", &rlsv3.RateLimitRequest{Descriptors: one}, "rate limit domain must not be empty"},
		{"empty domain, no descriptors", &rlsv3.RateLimitRequest{}, "rate limit domain must not be empty"},
		{"no descriptors", &rlsv3.RateLimitRequest{Domain: "basic"}, "rate limit descriptor list must not be empty"},
		{"empty descriptor list", &rlsv3.RateLimitRequest{Domain: "basic", Descriptors: []*common.RateLimitDescriptor{}},
			"rate limit descriptor list must not be empty"},
		{"no descriptors, unknown domain", &rlsv3.RateLimitRequest{Domain: "nowhere"}, "rate limit descriptor list must not be empty"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		res, err := c.ShouldRateLimit(ctx, tc.req)
		cancel()
		if s, _ := status.FromError(err); s.Code() != codes.Unknown || s.Message() != tc.msg || res != nil {
			t.Errorf("%s: %v %v, want code Unknown, %q", tc.name, res, err, tc.msg)
		}
	}
	// One descriptor without entries is not an empty list: answered, no limit.
	res := call(t, c, "basic", 0, &common.RateLimitDescriptor{})
	check(t, "no entries", res.Statuses[0], ok, 0, 0)
	// Nothing was counted by the refused calls.
	check(t, "counted", call(t, c, "basic", 0, one...).Statuses[0], ok, 19, 20)
}
