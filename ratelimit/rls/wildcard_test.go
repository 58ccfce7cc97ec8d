package rls_test

import (
	"testing"

	"github.com/gatehouse/gatehouse/ratelimit"
)

func pathLimit(value string, rpu uint32) ratelimit.DescriptorConfig {
	return ratelimit.DescriptorConfig{Key: "path", Value: value, RateLimit: &ratelimit.RateLimitConfig{Unit: "hour", RequestsPerUnit: rpu}}
}

// TestWildcards: a * anywhere in a value matches any run of characters, / and nothing
// included (as envoyproxy/ratelimit's trailing *, a prefix match, does); a value the
// config names exactly wins, then the first wildcard listed that matches, then the key
// alone. Which limit applies is told by its requests_per_unit.
func TestWildcards(t *testing.T) {
	keyOnly := ratelimit.DescriptorConfig{Key: "path", RateLimit: &ratelimit.RateLimitConfig{Unit: "hour", RequestsPerUnit: 4}}
	c, _, _ := serve(t, ratelimit.RLSConfig{Files: []string{}, Domains: []ratelimit.DomainConfig{
		{Domain: "inner_first", Descriptors: []ratelimit.DescriptorConfig{
			pathLimit("/v1/*/users", 1), pathLimit("/v1/*", 2), pathLimit("/v1/admin", 3), keyOnly, pathLimit("*/x/*/y*", 5)}},
		{Domain: "prefix_first", Descriptors: []ratelimit.DescriptorConfig{
			pathLimit("/v1/*", 2), pathLimit("/v1/*/users", 1)}},
	}}, nil)
	for _, tc := range []struct {
		domain, value string
		rpu           uint32
	}{
		{"inner_first", "/v1/admin", 3},        // exact first, though wildcards match too
		{"inner_first", "/v1/x/users", 1},      // the first wildcard listed
		{"inner_first", "/v1/a/b/users", 1},    // * spans /
		{"inner_first", "/v1//users", 1},       // * matches nothing
		{"inner_first", "/v1/*/users", 1},      // a literal * is a character like any
		{"inner_first", "/v1/x/users/more", 2}, // the end must match: the next wildcard
		{"inner_first", "/v1/x/user", 2},       //
		{"inner_first", "/v1/", 2},             // a trailing * matches nothing too
		{"inner_first", "/v1", 4},              // no wildcard: the key alone
		{"inner_first", "/v2/x/users", 4},      //
		{"inner_first", "a/x/b/y", 5},          // several *
		{"inner_first", "/x//y/tail", 5},       //
		{"inner_first", "/x/y", 4},             // each literal part once, in order
		{"prefix_first", "/v1/x/users", 2},     // overlapping: the first listed wins
		{"prefix_first", "/v2/x/users", 0},     // nothing matches: no limit
	} {
		res := call(t, c, tc.domain, 0, desc("path", tc.value))
		remaining := uint32(0)
		if tc.rpu > 0 {
			remaining = tc.rpu - 1
		}
		check(t, tc.domain+" "+tc.value, res.Statuses[0], ok, remaining, tc.rpu)
	}
}
