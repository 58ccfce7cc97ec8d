package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	commonrl "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// dropInConfig: two rate-limit service domains with the same limits, one counting every
// hit (the default, as envoyproxy/ratelimit), one all or nothing.
const dropInConfig = `
rate_limit_service:
  domains:
    - domain: every
      descriptors:
        - {key: a, rate_limit: {unit: hour, requests_per_unit: 2}} # an hour: no window end mid-test
        - {key: b, rate_limit: {unit: hour, requests_per_unit: 10}}
    - domain: atomic
      counting: atomic
      descriptors:
        - {key: a, rate_limit: {unit: hour, requests_per_unit: 2}}
        - {key: b, rate_limit: {unit: hour, requests_per_unit: 10}}
    - domain: paths
      descriptors:
        - {key: path, value: "/v1/*/users", rate_limit: {unit: hour, requests_per_unit: 1}}
        - {key: path, value: "/v1/*", rate_limit: {unit: hour, requests_per_unit: 2}}
        - {key: path, rate_limit: {unit: hour, requests_per_unit: 3}, metadata: {owner: team-a}}
`

func startDropIn(t *testing.T) (rlsv3.RateLimitServiceClient, context.Context) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(dropInConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, "--config", path)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return rlsv3.NewRateLimitServiceClient(srv.conn), ctx
}

func entry(k, v string) *commonrl.RateLimitDescriptor {
	return &commonrl.RateLimitDescriptor{Entries: []*commonrl.RateLimitDescriptor_Entry{{Key: k, Value: v}}}
}

// TestEndToEndDropInEmptyRequest: an empty domain or descriptor list is refused with
// UNKNOWN and envoyproxy/ratelimit's message.
func TestEndToEndDropInEmptyRequest(t *testing.T) {
	c, ctx := startDropIn(t)
	for req, msg := range map[*rlsv3.RateLimitRequest]string{
		{Descriptors: []*commonrl.RateLimitDescriptor{entry("a", "x")}}: "rate limit domain must not be empty",
		{Domain: "every"}: "rate limit descriptor list must not be empty",
	} {
		_, err := c.ShouldRateLimit(ctx, req)
		if s, _ := status.FromError(err); s.Code() != codes.Unknown || s.Message() != msg {
			t.Errorf("%v: %v, want Unknown %q", req, err, msg)
		}
	}
}

// TestEndToEndDropInCounting: in the default domain, the descriptor beside a refused one
// is counted; in the atomic one, it is not. Expected remainders are worked out by hand.
func TestEndToEndDropInCounting(t *testing.T) {
	c, ctx := startDropIn(t)
	// b after four calls: 4 of 10 counted, or 3 (the refused call's not).
	for domain, wantB := range map[string]uint32{"every": 6, "atomic": 7} {
		var res *rlsv3.RateLimitResponse
		var err error
		for i := 0; i < 3; i++ { // a: 1, 2, then 3 of 2: refused
			req := &rlsv3.RateLimitRequest{Domain: domain, Descriptors: []*commonrl.RateLimitDescriptor{entry("a", "x"), entry("b", "y")}}
			if res, err = c.ShouldRateLimit(ctx, req); err != nil {
				t.Fatal(err)
			}
		}
		if res.GetOverallCode() != rlsv3.RateLimitResponse_OVER_LIMIT {
			t.Fatalf("%s: third call %v", domain, res.GetOverallCode())
		}
		req := &rlsv3.RateLimitRequest{Domain: domain, Descriptors: []*commonrl.RateLimitDescriptor{entry("b", "y")}}
		if res, err = c.ShouldRateLimit(ctx, req); err != nil || res.GetStatuses()[0].GetLimitRemaining() != wantB {
			t.Fatalf("%s: b after the refusal: %v %v, want %d left", domain, err, res, wantB)
		}
	}
}

// TestEndToEndDropInWildcards: a * inside a value matches across /, the first wildcard
// listed winning; a descriptor's metadata block loads.
func TestEndToEndDropInWildcards(t *testing.T) {
	c, ctx := startDropIn(t)
	for value, rpu := range map[string]uint32{"/v1/a/b/users": 1, "/v1/a/users/x": 2, "/v2": 3} {
		res, err := c.ShouldRateLimit(ctx, &rlsv3.RateLimitRequest{Domain: "paths", Descriptors: []*commonrl.RateLimitDescriptor{entry("path", value)}})
		if err != nil || res.GetStatuses()[0].GetCurrentLimit().GetRequestsPerUnit() != rpu {
			t.Errorf("%s: %v %v, want the limit of %d", value, err, res, rpu)
		}
	}
}
