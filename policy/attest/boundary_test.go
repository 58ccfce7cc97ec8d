package attest_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/policy/attest"
	"github.com/gatehouse/gatehouse/policy/attest/attesttest"
	"github.com/gatehouse/gatehouse/policy/jwks"
)

// boundaryProvider is a signed-token provider over one ES256 key, with leeway and maxAge.
func boundaryProvider(t *testing.T, leeway, maxAge time.Duration) (*attest.Provider, *attesttest.Key) {
	t.Helper()
	k := attesttest.NewKey(t, "ES256", "k1")
	return attest.New(attest.Config{Kind: attest.SignedToken, App: "a", CacheID: "boundary-" + t.Name(),
		Algorithms: []string{"ES256"}, Leeway: leeway, MaxAge: maxAge,
		Keys: jwks.NewStatic(jwks.Key{ID: "k1", Alg: "ES256", Key: k.Private.Public()})}), k
}

// TestAttestationTimeBoundaries: exp, nbf, iat and max_age at the exact instant and one
// second either side, with and without leeway. exp is now+5m, nbf and iat now-1m unless a
// row says otherwise; the outcomes are typed by hand.
func TestAttestationTimeBoundaries(t *testing.T) {
	const s = time.Second
	exp := now.Add(5 * time.Minute)
	iat := now.Add(-time.Minute)
	for _, tc := range []struct {
		name           string
		leeway, maxAge time.Duration
		at             time.Time
		want           policy.Code
	}{
		{"exp/no_leeway/1s_before", 0, 0, exp.Add(-s), ""},
		{"exp/no_leeway/at_exp", 0, 0, exp, policy.AttestationExpired},
		{"exp/no_leeway/1s_after", 0, 0, exp.Add(s), policy.AttestationExpired},
		{"exp/leeway/1s_before_exp+leeway", 30 * s, 0, exp.Add(29 * s), ""},
		{"exp/leeway/at_exp+leeway", 30 * s, 0, exp.Add(30 * s), policy.AttestationExpired},
		{"exp/leeway/1s_after_exp+leeway", 30 * s, 0, exp.Add(31 * s), policy.AttestationExpired},
		{"nbf_iat/no_leeway/1s_before", 0, 0, iat.Add(-s), policy.AttestationFailed},
		{"nbf_iat/no_leeway/at", 0, 0, iat, ""},
		{"nbf_iat/no_leeway/1s_after", 0, 0, iat.Add(s), ""},
		{"nbf_iat/leeway/1s_before_iat-leeway", 30 * s, 0, iat.Add(-31 * s), policy.AttestationFailed},
		{"nbf_iat/leeway/at_iat-leeway", 30 * s, 0, iat.Add(-30 * s), ""},
		{"max_age/no_leeway/1s_before", 0, 2 * time.Minute, iat.Add(2*time.Minute - s), ""},
		{"max_age/no_leeway/at", 0, 2 * time.Minute, iat.Add(2 * time.Minute), policy.AttestationExpired},
		{"max_age/no_leeway/1s_after", 0, 2 * time.Minute, iat.Add(2*time.Minute + s), policy.AttestationExpired},
		{"max_age/leeway/1s_before_age+leeway", 30 * s, 2 * time.Minute, iat.Add(2*time.Minute + 29*s), ""},
		{"max_age/leeway/at_age+leeway", 30 * s, 2 * time.Minute, iat.Add(2*time.Minute + 30*s), policy.AttestationExpired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, k := boundaryProvider(t, tc.leeway, tc.maxAge)
			tok := attesttest.Sign(t, k, attesttest.Claims{"exp": exp.Unix(), "iat": iat.Unix(), "nbf": iat.Unix()}, nil)
			o := p.Check(context.Background(), tc.at, request("a", "/"), tok, nil)
			if o.Err != nil || o.Code != tc.want {
				t.Fatalf("code %q (err %v), want %q", o.Code, o.Err, tc.want)
			}
		})
	}
	t.Run("nbf_alone", func(t *testing.T) {
		p, k := boundaryProvider(t, 0, 0)
		tok := attesttest.Sign(t, k, attesttest.Claims{"exp": exp.Unix(), "nbf": iat.Unix()}, nil)
		for at, want := range map[time.Time]policy.Code{iat.Add(-s): policy.AttestationFailed, iat: ""} {
			if o := p.Check(context.Background(), at, request("a", "/"), tok, nil); o.Code != want {
				t.Errorf("at iat%+v: %q, want %q", at.Sub(iat), o.Code, want)
			}
		}
	})
}

// TestCachedAttestationNeverOutlivesToken: a verified token's cached facts are judged
// against the clock on every use: a hit one second before exp+leeway (or iat+max_age+leeway)
// passes, a hit at that instant is refused.
func TestCachedAttestationNeverOutlivesToken(t *testing.T) {
	const s = time.Second
	for _, tc := range []struct {
		name           string
		leeway, maxAge time.Duration
		end            time.Time // the instant the token stops being acceptable
	}{
		{"exp", 0, 0, now.Add(5 * time.Minute)},
		{"exp+leeway", 30 * s, 0, now.Add(5*time.Minute + 30*s)},
		{"max_age+leeway", 30 * s, 2 * time.Minute, now.Add(-time.Minute + 2*time.Minute + 30*s)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cache, err := policy.NewCache(1 << 20)
			if err != nil {
				t.Fatal(err)
			}
			defer cache.Close()
			p, k := boundaryProvider(t, tc.leeway, tc.maxAge)
			tok := attesttest.Sign(t, k, attesttest.Claims{"exp": now.Add(5 * time.Minute).Unix(), "iat": now.Add(-time.Minute).Unix()}, nil)
			in := request("a", "/")
			if o := p.Check(context.Background(), now, in, tok, cache); o.Code != "" || o.CacheHit {
				t.Fatalf("first use: %q hit %v", o.Code, o.CacheHit)
			}
			cache.Wait()
			if o := p.Check(context.Background(), tc.end.Add(-s), in, tok, cache); o.Code != "" || !o.CacheHit {
				t.Fatalf("1s before the end: %q hit %v, want an allowed cache hit", o.Code, o.CacheHit)
			}
			for _, at := range []time.Time{tc.end, tc.end.Add(s)} {
				if o := p.Check(context.Background(), at, in, tok, cache); o.Code != policy.AttestationExpired {
					t.Fatalf("at end%+v: %q (hit %v), want ATTESTATION_EXPIRED", at.Sub(tc.end), o.Code, o.CacheHit)
				}
			}
		})
	}
}

// TestAttestationCacheCost: cached facts are charged the device id, the jti and the
// message they carry, 160 bytes of fixed size and the cache's 64 bytes of overhead. Sizes
// typed by hand.
func TestAttestationCacheCost(t *testing.T) {
	k := attesttest.NewKey(t, "ES256", "k1")
	p := attest.New(attest.Config{Kind: attest.SignedToken, App: "a", CacheID: "cost", Algorithms: []string{"ES256"},
		Keys:   jwks.NewStatic(jwks.Key{ID: "k1", Alg: "ES256", Key: k.Private.Public()}),
		Claims: attest.ClaimNames{DeviceID: "device_id"}, Replay: memoryReplay(), MaxTokenBytes: 1000})
	cache, err := policy.NewCache(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	tok := attesttest.Sign(t, k, attesttest.Claims{"exp": now.Add(time.Minute).Unix(), "device_id": "device-1", "jti": "j-1"}, nil)
	if o := p.Check(context.Background(), now, request("a", "/"), tok, cache); o.Code != "" || o.DeviceID != "device-1" {
		t.Fatalf("valid token: %q %q", o.Code, o.DeviceID)
	}
	cache.Wait()
	if got := cache.Stats().Cost; got != 8+3+160+64 {
		t.Fatalf("cost %d, want 235", got)
	}
	big := tok + strings.Repeat("x", 1000) // refused as too large, with a message
	if o := p.Check(context.Background(), now, request("a", "/"), big, cache); o.Code != policy.InvalidAttestation {
		t.Fatalf("oversized token: %q", o.Code)
	}
	cache.Wait()
	if got := cache.Stats().Cost; got != 235+uint64(len("The attestation token is too large"))+160+64 {
		t.Fatalf("cost %d, want 493", got)
	}
}

// TestTokenSizeAndKeyAlg: a token of exactly MaxTokenBytes is verified, one byte less of
// room refuses it; a key published for another algorithm is never used.
func TestTokenSizeAndKeyAlg(t *testing.T) {
	k := attesttest.NewKey(t, "ES256", "k1")
	tok := attesttest.Sign(t, k, attesttest.Claims{"exp": now.Add(time.Minute).Unix()}, nil)
	check := func(max int, alg string) policy.Code {
		p := attest.New(attest.Config{Kind: attest.SignedToken, App: "a", CacheID: "size", Algorithms: []string{"ES256"}, MaxTokenBytes: max,
			Keys: jwks.NewStatic(jwks.Key{ID: "k1", Alg: alg, Key: k.Private.Public()})})
		return p.Check(context.Background(), now, request("a", "/"), tok, nil).Code
	}
	if c := check(len(tok), "ES256"); c != "" {
		t.Errorf("token of exactly MaxTokenBytes: %q", c)
	}
	if c := check(len(tok)-1, "ES256"); c != policy.InvalidAttestation {
		t.Errorf("token one byte over: %q", c)
	}
	if c := check(len(tok), ""); c != "" {
		t.Errorf("key without alg: %q", c)
	}
	if c := check(len(tok), "ES384"); c != policy.InvalidAttestation {
		t.Errorf("key published for ES384: %q", c)
	}
}
