package rls_test

import (
	"context"
	"strings"
	"testing"
	"time"

	common "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gatehouse/gatehouse/ratelimit"
)

// TestRequestBounds: a request with more descriptors, entries or bytes than the bounds
// (defaults: 64 descriptors, 16 entries each, 65536 bytes of domain, keys and values) is
// refused with INVALID_ARGUMENT, whatever its domain; one at the bound is answered. The
// message names no value of the request.
func TestRequestBounds(t *testing.T) {
	c, _, _ := serve(t, ratelimit.RLSConfig{}, nil)
	many := func(descriptors, entries int, value string) []*common.RateLimitDescriptor {
		ds := make([]*common.RateLimitDescriptor, descriptors)
		for i := range ds {
			ds[i] = &common.RateLimitDescriptor{}
			for j := 0; j < entries; j++ {
				ds[i].Entries = append(ds[i].Entries, &common.RateLimitDescriptor_Entry{Key: "secret-key", Value: value})
			}
		}
		return ds
	}
	// "corner" is 6 bytes, "k" 1: a value of 65529 bytes makes 65536 in all.
	sized := func(n int) []*common.RateLimitDescriptor {
		return []*common.RateLimitDescriptor{desc("k", strings.Repeat("v", n))}
	}
	tests := []struct {
		name   string
		domain string
		ds     []*common.RateLimitDescriptor
		refuse bool
	}{
		{"64 descriptors", "corner", many(64, 1, "x"), false},
		{"65 descriptors", "corner", many(65, 1, "x"), true},
		{"65 descriptors, unknown domain", "nowhere", many(65, 1, "x"), true},
		{"16 entries", "corner", many(1, 16, "x"), false},
		{"17 entries", "corner", many(1, 17, "x"), true},
		{"64 descriptors of 16 entries", "corner", many(64, 16, "x"), false},
		{"65535 bytes", "corner", sized(65528), false},
		{"65536 bytes", "corner", sized(65529), false},
		{"65537 bytes", "corner", sized(65530), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			res, err := c.ShouldRateLimit(ctx, &rlsv3.RateLimitRequest{Domain: tt.domain, Descriptors: tt.ds})
			if !tt.refuse {
				if err != nil || len(res.Statuses) != len(tt.ds) {
					t.Fatalf("answered %v with %d statuses, want %d statuses", err, len(res.GetStatuses()), len(tt.ds))
				}
				return
			}
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("got %v, want InvalidArgument", err)
			}
			if msg := status.Convert(err).Message(); strings.Contains(msg, "secret-key") || strings.Contains(msg, "vvv") || strings.Contains(msg, tt.domain) {
				t.Fatalf("message echoes the request: %q", msg)
			}
		})
	}
}

// TestConfiguredRequestBounds: the bounds follow rate_limit_service.max_*; negative
// values are configuration errors.
func TestConfiguredRequestBounds(t *testing.T) {
	c, _, _ := serve(t, ratelimit.RLSConfig{MaxDescriptors: 2, MaxEntries: 3, MaxBytes: 20}, nil)
	ctx := context.Background()
	for _, tt := range []struct {
		name   string
		ds     []*common.RateLimitDescriptor
		refuse bool
	}{
		{"2 descriptors", []*common.RateLimitDescriptor{desc("a", "1"), desc("b", "2")}, false},
		{"3 descriptors", []*common.RateLimitDescriptor{desc("a", "1"), desc("b", "2"), desc("c", "3")}, true},
		{"3 entries", []*common.RateLimitDescriptor{desc("a", "1", "b", "2", "c", "3")}, false},
		{"4 entries", []*common.RateLimitDescriptor{desc("a", "1", "b", "2", "c", "3", "d", "4")}, true},
		{"20 bytes", []*common.RateLimitDescriptor{desc("k", "1234567890123")}, false},
		{"21 bytes", []*common.RateLimitDescriptor{desc("k", "12345678901234")}, true},
	} {
		_, err := c.ShouldRateLimit(ctx, &rlsv3.RateLimitRequest{Domain: "corner", Descriptors: tt.ds})
		if got := status.Code(err) == codes.InvalidArgument; got != tt.refuse || (!tt.refuse && err != nil) {
			t.Errorf("%s: %v, refused want %v", tt.name, err, tt.refuse)
		}
	}
	_, err := ratelimit.Compile(ratelimit.CompileInput{RLS: ratelimit.RLSConfig{MaxDescriptors: -1, MaxEntries: -1, MaxBytes: -1}}, nil)
	for _, want := range []string{
		"rate_limit_service.max_descriptors: must be ≥ 0 (0: the default, 64)",
		"rate_limit_service.max_entries: must be ≥ 0 (0: the default, 16)",
		"rate_limit_service.max_bytes: must be ≥ 0 (0: the default, 65536)",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in %v", want, err)
		}
	}
}
