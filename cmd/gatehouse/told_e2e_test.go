package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	commonrl "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
)

// TestEndToEndToldLimit: over real gRPC, the rate-limit service's X-RateLimit-* headers
// speak of the enforced limit, not of a limit in shadow mode that refused: a client told
// "0 remaining" by a limit that decides nothing would back off for no reason. Expected
// values by hand: a 2 of 10 an hour, s 2 of 1 (shadow).
func TestEndToEndToldLimit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yaml")
	cfg := `
rate_limit_service:
  add_headers: true
  domains:
    - domain: d
      descriptors:
        - {key: a, rate_limit: {unit: hour, requests_per_unit: 10}}
        - {key: s, shadow_mode: true, rate_limit: {unit: hour, requests_per_unit: 1}}
`
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, "--config", path)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := rlsv3.NewRateLimitServiceClient(srv.conn)
	req := &rlsv3.RateLimitRequest{Domain: "d", Descriptors: []*commonrl.RateLimitDescriptor{
		{Entries: []*commonrl.RateLimitDescriptor_Entry{{Key: "a", Value: "x"}}},
		{Entries: []*commonrl.RateLimitDescriptor_Entry{{Key: "s", Value: "x"}}},
	}}
	var res *rlsv3.RateLimitResponse
	for range 2 {
		var err error
		if res, err = c.ShouldRateLimit(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	if res.OverallCode != rlsv3.RateLimitResponse_OK {
		t.Fatalf("overall %v, want OK (the refusing limit is in shadow mode)", res.OverallCode)
	}
	got := map[string]string{}
	for _, h := range res.ResponseHeadersToAdd {
		got[h.Key] = h.Value
	}
	if got["X-RateLimit-Limit"] != "10" || got["X-RateLimit-Remaining"] != "8" || got["Retry-After"] != "" {
		t.Fatalf("headers %v, want the enforced limit: X-RateLimit-Limit 10, Remaining 8, no Retry-After", got)
	}
}
