package attest_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/policy/attest/attesttest"
)

// decideTwice decides in twice, letting the cache apply the first verdict in between.
func (e *env) decideTwice(in *policy.Input) (first, second policy.Decision) {
	first = e.decide(in)
	e.cache.Wait()
	return first, e.decide(in)
}

func TestCacheVerifiedToken(t *testing.T) {
	e := newEnv(t)
	tok := attesttest.Sign(t, e.rs, e.signedClaims("signed"), nil)
	first, second := e.decideTwice(request("signed", "/v1/secure", "x-attestation-token", tok))
	attesttest.Want(t, first, "")
	attesttest.Want(t, second, "")
	if first.CacheHit || !second.CacheHit {
		t.Fatalf("cache hits %v, %v; want false, true", first.CacheHit, second.CacheHit)
	}
	if second.DeviceID != "device-1" || second.AttestationProvider != "signed_token" {
		t.Fatalf("cached decision: device %q provider %q", second.DeviceID, second.AttestationProvider)
	}
	if !contains(second.Remove, "x-attestation-token") {
		t.Fatalf("remove %v lacks the attestation header", second.Remove)
	}
}

func TestCacheRefusedTokenBriefly(t *testing.T) {
	e := newEnv(t)
	tok := attesttest.Sign(t, e.impostor, e.signedClaims("signed"), nil)
	first, second := e.decideTwice(request("signed", "/v1/secure", "x-attestation-token", tok))
	attesttest.Want(t, first, policy.AttestationFailed)
	attesttest.Want(t, second, policy.AttestationFailed)
	if !second.CacheHit {
		t.Fatal("a refused token should be cached")
	}
}

// TestCacheNeverCrossesApps: a token verified and cached for one app is refused for
// another, even where both trust the same keys and issuer.
func TestCacheNeverCrossesApps(t *testing.T) {
	e := newEnv(t)
	tok := attesttest.Sign(t, e.es, e.signedClaims("signed"), nil)
	attesttest.Want(t, e.decide(request("signed", "/v1/secure", "x-attestation-token", tok)), "")
	e.cache.Wait()
	d := e.decide(request("multi", "/v1/secure", "x-attestation-token", tok))
	attesttest.Want(t, d, policy.AttestationFailed)
	if d.CacheHit {
		t.Fatal("the other app's verdict was used")
	}
}

// TestCacheRechecksClockAndBinding: what depends on the request or the clock is checked
// on every request, cached or not.
func TestCacheRechecksClockAndBinding(t *testing.T) {
	e := newEnv(t)
	tok := attesttest.Sign(t, e.es, e.signedClaims("signed"), nil)
	in := request("signed", "/v1/secure", "x-attestation-token", tok)
	attesttest.Want(t, e.decide(in), "")
	e.cache.Wait()
	d := e.rules.Decide(t.Context(), now.Add(6*time.Minute), in)
	attesttest.Want(t, d, policy.AttestationExpired)
	if !d.CacheHit {
		t.Fatal("expected the expiry check on a cache hit")
	}

	ap := attesttest.SignHS256(t, e.secret, e.approovClaims(), nil)
	attesttest.Want(t, e.decide(request("approov", "/v1/secure", "approov-token", ap, "authorization", approovBearer)), "")
	e.cache.Wait()
	d = e.decide(request("approov", "/v1/secure", "approov-token", ap, "authorization", "Bearer stolen-elsewhere"))
	attesttest.Want(t, d, policy.AttestationFailed)
	if !d.CacheHit {
		t.Fatal("expected the binding check on a cache hit")
	}
}

// TestFirebaseReplay: a jti is accepted once until its exp, whether the second use hits
// the cache or not, and of concurrent uses exactly one passes.
func TestFirebaseReplay(t *testing.T) {
	e := newEnv(t)
	tok := attesttest.Sign(t, e.fb1, e.firebaseClaims(), nil)
	first, second := e.decideTwice(request("firebase", "/v1/secure", "x-firebase-appcheck", tok))
	attesttest.Want(t, first, "")
	attesttest.Want(t, second, policy.AttestationFailed)

	// Same jti, new signature (a different cache key): still a replay.
	c := e.firebaseClaims()
	attesttest.Want(t, e.decide(request("firebase", "/v1/secure", "x-firebase-appcheck", attesttest.Sign(t, e.fb1, c, nil))), "")
	attesttest.Want(t, e.decide(request("firebase", "/v1/secure", "x-firebase-appcheck", attesttest.Sign(t, e.fb1, attesttest.With(c, "iat", now.Unix()), nil))), policy.AttestationFailed)

	// Without replay protection (app multi) a token may be reused.
	multi := attesttest.Sign(t, e.fb1, e.firebaseClaims(), nil)
	for range 2 {
		attesttest.Want(t, e.decide(request("multi", "/v1/secure", "x-firebase-appcheck", multi)), "")
	}

	race := attesttest.Sign(t, e.fb1, e.firebaseClaims(), nil)
	var allowed atomic.Int32
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if d := e.decide(request("firebase", "/v1/secure", "x-firebase-appcheck", race)); d.Allowed() {
				allowed.Add(1)
			}
		})
	}
	wg.Wait()
	if allowed.Load() != 1 {
		t.Fatalf("%d concurrent uses of one token allowed, want 1", allowed.Load())
	}
}

// TestFirebaseKeyRotation: a token signed with a key published after the set was
// fetched is accepted after one refresh triggered by its unknown kid, from a JWKS served
// over TLS.
func TestFirebaseKeyRotation(t *testing.T) {
	e := newEnv(t)
	attesttest.Want(t, e.decide(request("firebase", "/v1/secure", "x-firebase-appcheck", attesttest.Sign(t, e.fb1, e.firebaseClaims(), nil))), "")
	attesttest.Want(t, e.decide(request("firebase", "/v1/secure", "x-firebase-appcheck", attesttest.Sign(t, e.fb2, e.firebaseClaims(), nil))), policy.InvalidAttestation)

	rotated := attesttest.JWKS(e.fb1, e.fb2)
	e.fbJWKS.Store(&rotated)
	before := e.fbFetches.Load()
	// Refreshes are at most one per min_refresh (200ms of wall clock in the key source):
	// ask with fresh tokens until one is accepted. The deadline only catches a source
	// that never refreshes.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		d := e.decide(request("firebase", "/v1/secure", "x-firebase-appcheck", attesttest.Sign(t, e.fb2, e.firebaseClaims(), nil)))
		if d.Allowed() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the rotated key was never accepted: %s", d.Code)
		}
	}
	if e.fbFetches.Load() <= before {
		t.Fatal("the unknown kid did not trigger a fetch")
	}
}

// TestSingleFlightRefresh: a burst of tokens with an unknown kid costs one fetch, not one
// per request. The first on-demand fetch needs no wait (the start's fetch is not paced);
// min_refresh is an hour so that a burst slowed by a loaded machine still allows one.
func TestSingleFlightRefresh(t *testing.T) {
	e := newEnvWith(t, "1h")
	attesttest.Want(t, e.decide(request("firebase", "/v1/secure", "x-firebase-appcheck", attesttest.Sign(t, e.fb1, e.firebaseClaims(), nil))), "")
	toks := make([]string, 32)
	for i := range toks {
		toks[i] = attesttest.Sign(t, e.fb2, e.firebaseClaims(), nil)
	}
	before := e.fbFetches.Load()
	var wg sync.WaitGroup
	for _, tok := range toks {
		wg.Go(func() {
			if d := e.decide(request("firebase", "/v1/secure", "x-firebase-appcheck", tok)); d.Code != policy.InvalidAttestation {
				t.Errorf("code %q, want INVALID_ATTESTATION", d.Code)
			}
		})
	}
	wg.Wait()
	if n := e.fbFetches.Load() - before; n != 1 {
		t.Fatalf("%d fetches for 32 unknown-kid tokens", n)
	}
}
