package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	commonrl "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// limiterConfig: an app for Check with a limit in the same memory store as the rate-limit
// service, and an RLS domain "deep" whose key k matches at every one of 16 levels, so a
// maximal request (64 descriptors of 16 entries) counts 64 limits.
func limiterConfig() string {
	deep := "{key: k, rate_limit: {unit: hour, requests_per_unit: 1000000}}"
	for i := 1; i < 16; i++ {
		deep = "{key: k, rate_limit: {unit: hour, requests_per_unit: 1000000}, descriptors: [" + deep + "]}"
	}
	return `
apps:
  - {name: main, app_token_sha256: ["` + sha("tok-main") + `"], endpoints: ["*"]}
endpoints:
  - name: open
    path: /v1/open
    limits: [{name: per_app, key: [app], requests: 1000000000, per: 1m}]
rate_limit_service:
  domains:
    - domain: deep
      descriptors: [` + deep + `]
    - domain: labels
      descriptors:
        - {key: user, detailed_metric: true, rate_limit: {unit: hour, requests_per_unit: 1}} # an hour: no window end mid-test
`
}

func writeLimiterConfig(tb testing.TB) string {
	path := filepath.Join(tb.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(limiterConfig()), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

// maximalRLS is a request at every default bound: 64 descriptors of 16 entries, 64516
// bytes of domain, keys and values (the bound is 65536); round makes its keys new.
func maximalRLS(round int, descriptors, entries int) *rlsv3.RateLimitRequest {
	req := &rlsv3.RateLimitRequest{Domain: "deep"}
	for i := 0; i < descriptors; i++ {
		d := &commonrl.RateLimitDescriptor{}
		for j := 0; j < entries; j++ {
			v := fmt.Sprintf("%08d-%02d-%02d-", round, i, j)
			d.Entries = append(d.Entries, &commonrl.RateLimitDescriptor_Entry{Key: "k", Value: v + strings.Repeat("v", 62-len(v))})
		}
		req.Descriptors = append(req.Descriptors, d)
	}
	return req
}

// TestEndToEndRLSBounds: over the real server, a maximal request is answered and one past
// a bound is refused with INVALID_ARGUMENT; a Check on another connection still answers.
func TestEndToEndRLSBounds(t *testing.T) {
	srv := startServer(t, "--config", writeLimiterConfig(t))
	srv.waitReady(t)
	c := rlsv3.NewRateLimitServiceClient(srv.conn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := c.ShouldRateLimit(ctx, maximalRLS(0, 64, 16))
	if err != nil || len(res.GetStatuses()) != 64 || res.GetStatuses()[63].GetCurrentLimit() == nil {
		t.Fatalf("maximal request: %v %v", err, res.GetStatuses())
	}
	for name, req := range map[string]*rlsv3.RateLimitRequest{
		"65 descriptors": maximalRLS(1, 65, 1),
		"17 entries":     maximalRLS(1, 1, 17),
		"65537 bytes": {Domain: "deep", Descriptors: []*commonrl.RateLimitDescriptor{{Entries: []*commonrl.RateLimitDescriptor_Entry{
			{Key: "k", Value: strings.Repeat("v", 65537-len("deep")-len("k"))}}}}},
	} {
		if _, err := c.ShouldRateLimit(ctx, req); status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s: %v, want InvalidArgument", name, err)
		}
	}
	if resp, err := srv.check(t, request{path: "/v1/open", headers: app("main")}); err != nil || resp.GetOkResponse() == nil {
		t.Fatalf("check after refused requests: %v %s", err, describe(resp))
	}
}

// TestEndToEndRLSCountersArePrivate: over the real server, a descriptor list that the
// old key encoding folded into another one's counter counts apart.
func TestEndToEndRLSCountersArePrivate(t *testing.T) {
	srv := startServer(t, "--config", writeLimiterConfig(t))
	c := rlsv3.NewRateLimitServiceClient(srv.conn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	list := func(values ...string) *rlsv3.RateLimitRequest {
		d := &commonrl.RateLimitDescriptor{}
		for _, v := range values {
			d.Entries = append(d.Entries, &commonrl.RateLimitDescriptor_Entry{Key: "k", Value: v})
		}
		return &rlsv3.RateLimitRequest{Domain: "deep", Descriptors: []*commonrl.RateLimitDescriptor{d}}
	}
	victim := list("a", "a", "a", "a", "a", "x", "y")
	attacker := list("a", "a", "a", "a", "a", "x\x001:ky")
	spend := &rlsv3.RateLimitRequest{Domain: victim.Domain, Descriptors: victim.Descriptors, HitsAddend: 999_999}
	if _, err := c.ShouldRateLimit(ctx, spend); err != nil {
		t.Fatal(err)
	}
	res, err := c.ShouldRateLimit(ctx, attacker)
	if err != nil || res.GetOverallCode() != rlsv3.RateLimitResponse_OK || res.GetStatuses()[0].GetLimitRemaining() != 999_999 {
		t.Fatalf("attacker's list: %v %v, want OK with its own 999999 left", err, res)
	}
	if res, _ := c.ShouldRateLimit(ctx, victim); res.GetStatuses()[0].GetLimitRemaining() != 0 {
		t.Fatalf("victim's list: %v, want 0 left", res)
	}
}

// TestEndToEndDetailedMetricLabels: distinct client values over a detailed_metric limit
// leave one series on /metrics.
func TestEndToEndDetailedMetricLabels(t *testing.T) {
	srv := startServer(t, "--config", writeLimiterConfig(t))
	c := rlsv3.NewRateLimitServiceClient(srv.conn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := 0; i < 200; i++ {
		req := &rlsv3.RateLimitRequest{Domain: "labels", HitsAddend: 2, Descriptors: []*commonrl.RateLimitDescriptor{{
			Entries: []*commonrl.RateLimitDescriptor_Entry{{Key: "user", Value: "client-" + strconv.Itoa(i)}}}}}
		if res, err := c.ShouldRateLimit(ctx, req); err != nil || res.GetOverallCode() != rlsv3.RateLimitResponse_OVER_LIMIT {
			t.Fatalf("request %d: %v %v", i, err, res.GetOverallCode())
		}
	}
	var series []string
	for _, line := range strings.Split(srv.body(t, "/metrics"), "\n") {
		if strings.HasPrefix(line, "gatehouse_ratelimit_over_limit_total{") {
			series = append(series, line[:strings.LastIndexByte(line, ' ')])
		}
	}
	want := []string{`gatehouse_ratelimit_over_limit_total{limit="labels.user_other",surface="rls"}`}
	if !slices.Equal(series, want) {
		t.Fatalf("series %q, want %q", series, want)
	}
}

// BenchmarkCheckBesideMaximalRLS measures Check latency on one connection while another
// connection sends maximal ShouldRateLimit requests (64 descriptors of 16 entries, all
// counted, 512 different requests in turn, so mostly new keys) as fast as they are
// answered; "idle" is the same without them. Compare p50-µs and p99-µs of the two: the
// difference is the extra latency.
//
//	go test -run '^$' -bench BenchmarkCheckBesideMaximalRLS -benchtime 5000x ./cmd/gatehouse/
func BenchmarkCheckBesideMaximalRLS(b *testing.B) {
	srv := startServer(b, "--config", writeLimiterConfig(b))
	for _, load := range []int{0, 1} {
		name := "idle"
		if load > 0 {
			name = "maximal-rls"
		}
		b.Run(name, func(b *testing.B) {
			stop := hammerRLS(b, srv.grpcAddr, load)
			defer stop()
			var mu sync.Mutex
			var lat []time.Duration
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				var mine []time.Duration
				for pb.Next() {
					start := time.Now()
					resp, err := srv.check(b, request{path: "/v1/open", headers: app("main")})
					mine = append(mine, time.Since(start))
					if err != nil || resp.GetOkResponse() == nil {
						b.Errorf("check: %v %s", err, describe(resp))
						return
					}
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			})
			b.StopTimer()
			slices.Sort(lat)
			q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) }
			b.ReportMetric(q(0.5), "p50-µs")
			b.ReportMetric(q(0.99), "p99-µs")
		})
	}
}

// hammerRLS sends maximal requests on n connections of their own until stopped.
func hammerRLS(b *testing.B, addr string, n int) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var round atomic.Int64
	reqs := make([]*rlsv3.RateLimitRequest, 0, 512) // built beforehand: the load is the server's work
	for i := 0; n > 0 && i < cap(reqs); i++ {
		reqs = append(reqs, maximalRLS(i, 64, 16))
	}
	for range n {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			b.Fatal(err)
		}
		c := rlsv3.NewRateLimitServiceClient(conn)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer conn.Close()
			for ctx.Err() == nil {
				_, err := c.ShouldRateLimit(ctx, reqs[int(round.Add(1))%len(reqs)])
				if err != nil && ctx.Err() == nil {
					b.Errorf("maximal request: %v", err)
					return
				}
			}
		}()
	}
	return func() { cancel(); wg.Wait() }
}

// BenchmarkMaximalRLS is the cost of one maximal ShouldRateLimit over gRPC, new keys each
// time (the load BenchmarkCheckBesideMaximalRLS puts beside Check).
func BenchmarkMaximalRLS(b *testing.B) {
	srv := startServer(b, "--config", writeLimiterConfig(b))
	c := rlsv3.NewRateLimitServiceClient(srv.conn)
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := c.ShouldRateLimit(ctx, maximalRLS(i, 64, 16)); err != nil {
			b.Fatal(err)
		}
	}
}
