package rls_test

import (
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/ratelimit"
)

// countingDomain: one descriptor limited to 6 an hour, another to 10.
func countingDomain(name, counting string) ratelimit.DomainConfig {
	return ratelimit.DomainConfig{Domain: name, Counting: counting, Descriptors: []ratelimit.DescriptorConfig{
		{Key: "a", RateLimit: &ratelimit.RateLimitConfig{Unit: "hour", RequestsPerUnit: 6}},
		{Key: "b", RateLimit: &ratelimit.RateLimitConfig{Unit: "hour", RequestsPerUnit: 10}},
	}}
}

// TestCountingEveryHit: by default, as envoyproxy/ratelimit, every matched descriptor is
// counted, and the hits of a refused request stay counted: the next call sees them.
// Expected values are worked out by hand from the reference's INCRBY per descriptor.
func TestCountingEveryHit(t *testing.T) {
	for _, counting := range []string{"", "every_hit"} {
		c, _, _ := serve(t, ratelimit.RLSConfig{Files: []string{},
			Domains: []ratelimit.DomainConfig{countingDomain("d", counting)}}, nil)
		res := call(t, c, "d", 2, desc("a", "x"), desc("b", "y")) // a 2/6, b 2/10
		check(t, "first", res.Statuses[0], ok, 4, 6)
		check(t, "first", res.Statuses[1], ok, 8, 10)
		res = call(t, c, "d", 5, desc("a", "x"), desc("b", "y")) // a 7/6: refused; b 7/10 counted
		if res.OverallCode != over {
			t.Fatalf("%q: second: %v, want OVER_LIMIT", counting, res.OverallCode)
		}
		check(t, "second", res.Statuses[0], over, 0, 6)
		check(t, "second", res.Statuses[1], ok, 3, 10)
		res = call(t, c, "d", 1, desc("a", "x")) // 8/6: the refused 5 still count
		check(t, "third", res.Statuses[0], over, 0, 6)
		res = call(t, c, "d", 3, desc("b", "y")) // 10/10
		check(t, "fourth", res.Statuses[0], ok, 0, 10)
	}
}

// TestCountingAtomic: counting: atomic keeps all or nothing: a refused request consumes
// nothing of any descriptor.
func TestCountingAtomic(t *testing.T) {
	c, _, _ := serve(t, ratelimit.RLSConfig{Files: []string{},
		Domains: []ratelimit.DomainConfig{countingDomain("d", "atomic")}}, nil)
	res := call(t, c, "d", 2, desc("a", "x"), desc("b", "y")) // a 2/6, b 2/10
	check(t, "first", res.Statuses[0], ok, 4, 6)
	check(t, "first", res.Statuses[1], ok, 8, 10)
	res = call(t, c, "d", 5, desc("a", "x"), desc("b", "y")) // a would be 7/6: nothing counted
	if res.OverallCode != over {
		t.Fatalf("second: %v, want OVER_LIMIT", res.OverallCode)
	}
	check(t, "second", res.Statuses[0], over, 0, 6)
	res = call(t, c, "d", 4, desc("a", "x")) // 6/6
	check(t, "third", res.Statuses[0], ok, 0, 6)
	res = call(t, c, "d", 8, desc("b", "y")) // 10/10
	check(t, "fourth", res.Statuses[0], ok, 0, 10)
}

// TestCountingUnknown: any other value is refused at load, with its path.
func TestCountingUnknown(t *testing.T) {
	_, err := ratelimit.Compile(ratelimit.CompileInput{RLS: ratelimit.RLSConfig{
		Domains: []ratelimit.DomainConfig{countingDomain("d", "some")}}}, nil)
	if err == nil || !strings.Contains(err.Error(), "rate_limit_service.domains[0].counting") {
		t.Fatalf("err %v", err)
	}
}
