package attest

import (
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy"
)

// TestCacheTTL: verified facts are kept until the token stops being acceptable (exp, or
// iat+max_age when earlier, plus leeway) and not a moment longer; a refused or already
// unacceptable token for FailureTTL. Durations are typed by hand.
func TestCacheTTL(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	const s = time.Second
	exp := t0.Add(5 * time.Minute)
	for _, tc := range []struct {
		name           string
		leeway, maxAge time.Duration
		f              facts
		at             time.Time
		want           time.Duration
	}{
		{"until_exp", 0, 0, facts{exp: exp}, t0, 5 * time.Minute},
		{"until_exp+leeway", 30 * s, 0, facts{exp: exp}, t0, 5*time.Minute + 30*s},
		{"1s_before_exp+leeway", 30 * s, 0, facts{exp: exp}, exp.Add(29 * s), s},
		{"at_exp+leeway", 30 * s, 0, facts{exp: exp}, exp.Add(30 * s), FailureTTL},
		{"1s_after_exp+leeway", 30 * s, 0, facts{exp: exp}, exp.Add(31 * s), FailureTTL},
		{"max_age_earlier", 30 * s, 2 * time.Minute, facts{exp: exp, iat: t0.Add(-time.Minute)}, t0, time.Minute + 30*s},
		{"max_age_later", 0, 10 * time.Minute, facts{exp: exp, iat: t0.Add(-time.Minute)}, t0, 5 * time.Minute},
		{"max_age_equal", 0, 6 * time.Minute, facts{exp: exp, iat: t0.Add(-time.Minute)}, t0, 5 * time.Minute},
		{"refused", 30 * s, 0, facts{exp: exp, code: policy.AttestationFailed}, t0, FailureTTL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := New(Config{Kind: SignedToken, Leeway: tc.leeway, MaxAge: tc.maxAge})
			if got := p.ttl(tc.at, &tc.f); got != tc.want {
				t.Fatalf("ttl %v, want %v", got, tc.want)
			}
		})
	}
}
