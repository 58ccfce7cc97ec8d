package ratelimit

import (
	"errors"
	"testing"
)

// TestParseDomainMessages: a rate-limit service file's problems name their key path and
// line in the file's own words, never a Go type (hand-typed expectations).
func TestParseDomainMessages(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"unknown key", "domain: d\ndescriptors:\n  - key: a\n    bogus: 1\n",
			[]string{"descriptors[0].bogus: unknown key (line 4)"}},
		{"string for a count", "domain: d\ndescriptors:\n  - key: a\n    rate_limit: {unit: second, requests_per_unit: ten}\n",
			[]string{"descriptors[0].rate_limit.requests_per_unit: expected a non-negative integer, got a string (line 4)"}},
		{"count above uint32", "domain: d\ndescriptors:\n  - key: a\n    rate_limit: {unit: second, requests_per_unit: 4294967296}\n",
			[]string{"descriptors[0].rate_limit.requests_per_unit: expected an integer from 0 to 4294967295 (line 4)"}},
		{"mapping for a list", "domain: d\ndescriptors: {key: a}\n",
			[]string{"descriptors: expected a list of mappings, got a mapping (line 2)"}},
		{"two problems", "domain: [d]\ndescriptors:\n  - key: a\n    shadow_mode: sometimes\n",
			[]string{"domain[0]: a list item must be a map (line 1)", "domain: expected a string, got a list (line 1)", "descriptors[0].shadow_mode: expected a boolean (true or false), got a string (line 4)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseDomain([]byte(tc.yaml))
			var got []string
			for _, e := range each(err) {
				if e != nil {
					got = append(got, e.Error())
				}
			}
			if len(got) != len(tc.want) {
				t.Fatalf("errors %q, want %q", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("error %d: %q, want %q", i, got[i], tc.want[i])
				}
			}
		})
	}
	if _, err := ParseDomain([]byte("domain: d\ndescriptors: [{key: a, rate_limit: {unit: second, requests_per_unit: 4294967295}}]\n")); err != nil {
		t.Fatalf("the largest count refused: %v", errors.Unwrap(err))
	}
}
