package attest_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/policy/attest"
	"github.com/gatehouse/gatehouse/policy/attest/attesttest"
	"github.com/gatehouse/gatehouse/policy/attest/playintegrity"
	"github.com/gatehouse/gatehouse/policy/attest/playintegrity/pitest"
)

const piPackage = "com.example.shop"

// piProvider is a play_integrity provider over k, binding requests to x-request-nonce.
func piProvider(t testing.TB, k *pitest.Keys, leeway, maxAge time.Duration, maxBytes int) *attest.Provider {
	return attest.New(attest.Config{Kind: attest.PlayIntegrity, App: "a", CacheID: "pi-" + t.Name(), Leeway: leeway, MaxAge: maxAge,
		MaxTokenBytes: maxBytes, BindingHeader: "x-request-nonce",
		PlayIntegrity: &attest.PlayIntegrityConfig{Keys: k.Verifier(),
			Policy: playintegrity.Policy{PackageName: piPackage, MinLevel: playintegrity.Device}}})
}

// piRequest is GET /v1/orders?id=7 carrying tok and the nonce n-123, the binding the
// tokens of these tests are made for.
func piRequest(tok string, kv ...string) *policy.Input {
	in := attesttest.Request("a", "/v1/orders", "192.0.2.10", append([]string{"x-play-integrity", tok, "x-request-nonce", "n-123"}, kv...)...)
	in.RawPath = "/v1/orders?id=7"
	return in
}

var piBinding = pitest.Binding("GET", "/v1/orders?id=7", "n-123")

// TestPlayIntegrityFreshness: timestampMillis + max_age + leeway is the first instant a
// token is expired; timestampMillis - leeway the first it is valid. Each at the exact
// millisecond and one either side; outcomes typed by hand.
func TestPlayIntegrityFreshness(t *testing.T) {
	const ms = time.Millisecond
	issued := now.Add(-time.Minute)
	for _, tc := range []struct {
		name           string
		leeway, maxAge time.Duration
		at             time.Time
		want           policy.Code
	}{
		{"default_window/1ms_before", 0, 0, issued.Add(5*time.Minute - ms), ""},
		{"default_window/at", 0, 0, issued.Add(5 * time.Minute), policy.AttestationExpired},
		{"default_window/1ms_after", 0, 0, issued.Add(5*time.Minute + ms), policy.AttestationExpired},
		{"window+leeway/1ms_before", 30 * time.Second, 2 * time.Minute, issued.Add(150*time.Second - ms), ""},
		{"window+leeway/at", 30 * time.Second, 2 * time.Minute, issued.Add(150 * time.Second), policy.AttestationExpired},
		{"window+leeway/1ms_after", 30 * time.Second, 2 * time.Minute, issued.Add(150*time.Second + ms), policy.AttestationExpired},
		{"future/no_leeway/1ms_before_issue", 0, 0, issued.Add(-ms), policy.AttestationFailed},
		{"future/no_leeway/at_issue", 0, 0, issued, ""},
		{"future/no_leeway/1ms_after_issue", 0, 0, issued.Add(ms), ""},
		{"future/leeway/1ms_before_issue-leeway", 30 * time.Second, 0, issued.Add(-30*time.Second - ms), policy.AttestationFailed},
		{"future/leeway/at_issue-leeway", 30 * time.Second, 0, issued.Add(-30 * time.Second), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := pitest.NewKeys(t)
			p := piProvider(t, k, tc.leeway, tc.maxAge, 0)
			tok := pitest.Token(t, k, pitest.Good(piPackage, piBinding, issued))
			o := p.Check(context.Background(), tc.at, piRequest(tok), tok, nil)
			if o.Err != nil || o.Code != tc.want {
				t.Fatalf("code %q (err %v), want %q", o.Code, o.Err, tc.want)
			}
		})
	}
}

// TestPlayIntegrityProvider: the provider's own rows of the failure mapping, over real
// tokens: package, binding (standard and classic), size, missing timestamp, and the
// order (binding before the clock before the verdicts).
func TestPlayIntegrityProvider(t *testing.T) {
	k, other := pitest.NewKeys(t), pitest.NewKeys(t)
	good := func() pitest.Payload { return pitest.Good(piPackage, piBinding, now) }
	tok := pitest.Token(t, k, good())
	classic := pitest.Token(t, k, good().Set("requestDetails", "requestHash", nil).Set("requestDetails", "nonce", piBinding))
	req := func(tok string, kv ...string) *policy.Input { return piRequest(tok, kv...) }
	post := piRequest(tok)
	post.Method = "POST"
	otherQuery := piRequest(tok)
	otherQuery.RawPath = "/v1/orders?id=8"
	noNonce := piRequest(tok)
	delete(noNonce.Headers, "x-request-nonce")
	for _, tc := range []struct {
		name string
		in   *policy.Input
		want policy.Code
	}{
		{"standard request bound", req(tok), ""},
		{"classic request bound", req(classic), ""},
		{"another method", post, policy.AttestationFailed},
		{"another query", otherQuery, policy.AttestationFailed},
		{"another nonce header", req(tok, "x-request-nonce", "n-124"), policy.AttestationFailed},
		{"nonce header missing", noNonce, policy.AttestationFailed},
		{"nonce header repeated", req(tok, "x-request-nonce", "n-123,n-123"), policy.AttestationFailed},
		{"token without binding", req(pitest.Token(t, k, good().Set("requestDetails", "requestHash", nil))), policy.AttestationFailed},
		{"classic nonce of another request", req(pitest.Token(t, k, good().Set("requestDetails", "requestHash", nil).Set("requestDetails", "nonce", pitest.Binding("GET", "/v1/orders?id=7", "n-999")))), policy.AttestationFailed},
		{"another package", req(pitest.Token(t, k, pitest.Good("com.example.other", piBinding, now))), policy.AttestationFailed},
		{"another app's keys", req(pitest.Token(t, other, good())), policy.AttestationFailed},
		{"timestamp missing", req(pitest.Token(t, k, good().Set("requestDetails", "timestampMillis", nil))), policy.InvalidAttestation},
		{"unbound beats expired", req(pitest.Token(t, k, pitest.Good(piPackage, "x", now.Add(-time.Hour)))), policy.AttestationFailed},
		{"expired beats emulator", req(pitest.Token(t, k, pitest.Good(piPackage, piBinding, now.Add(-time.Hour)).Set("deviceIntegrity", "deviceRecognitionVerdict", []string{"MEETS_VIRTUAL_INTEGRITY"}))), policy.AttestationExpired},
		{"emulator", req(pitest.Token(t, k, good().Set("deviceIntegrity", "deviceRecognitionVerdict", []string{"MEETS_VIRTUAL_INTEGRITY"}))), policy.EmulatorDetected},
		{"not a JWE", req("eyJhbGciOiJFUzI1NiJ9.e30.sig"), policy.InvalidAttestation},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := piProvider(t, k, 0, 0, 0)
			o := p.Check(context.Background(), now, tc.in, tc.in.Headers["x-play-integrity"], nil)
			if o.Err != nil || o.Code != tc.want {
				t.Fatalf("code %q (%s, err %v), want %q", o.Code, o.Message, o.Err, tc.want)
			}
			if o.DeviceID != "" {
				t.Errorf("device id %q: Play Integrity names no device", o.DeviceID)
			}
		})
	}
}

// TestPlayIntegritySize: max_token_bytes applies before any parsing: a token of exactly
// the limit is read, one byte over is INVALID_ATTESTATION.
func TestPlayIntegritySize(t *testing.T) {
	k := pitest.NewKeys(t)
	tok := pitest.Token(t, k, pitest.Good(piPackage, piBinding, now))
	for max, want := range map[int]policy.Code{len(tok): "", len(tok) - 1: policy.InvalidAttestation, len(tok) + 1: ""} {
		p := piProvider(t, k, 0, 0, max)
		if o := p.Check(context.Background(), now, piRequest(tok), tok, nil); o.Code != want {
			t.Errorf("limit %d for a token of %d bytes: %q, want %q", max, len(tok), o.Code, want)
		}
	}
	huge := pitest.Token(t, k, pitest.Good(piPackage, piBinding, now).Set("padding", "x", string(make([]byte, 70000))))
	if o := piProvider(t, k, 0, 0, 0).Check(context.Background(), now, piRequest(huge), huge, nil); o.Code != policy.InvalidAttestation {
		t.Errorf("a %d-byte token under the default limit: %q", len(huge), o.Code)
	}
}

// TestPlayIntegrityCache: a verified token is cached; the binding and the clock are
// checked again on a hit, so a cached token neither binds another request nor outlives
// its window.
func TestPlayIntegrityCache(t *testing.T) {
	cache, err := policy.NewCache(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	k := pitest.NewKeys(t)
	p := piProvider(t, k, 0, 0, 0)
	tok := pitest.Token(t, k, pitest.Good(piPackage, piBinding, now))
	ctx := context.Background()
	if o := p.Check(ctx, now, piRequest(tok), tok, cache); o.Code != "" || o.CacheHit {
		t.Fatalf("first use: %+v", o)
	}
	cache.Wait()
	if o := p.Check(ctx, now, piRequest(tok), tok, cache); o.Code != "" || !o.CacheHit {
		t.Fatalf("second use: %+v", o)
	}
	if o := p.Check(ctx, now, piRequest(tok, "x-request-nonce", "n-124"), tok, cache); o.Code != policy.AttestationFailed || !o.CacheHit {
		t.Errorf("cached token on another request: %+v", o)
	}
	if o := p.Check(ctx, now.Add(5*time.Minute), piRequest(tok), tok, cache); o.Code != policy.AttestationExpired {
		t.Errorf("cached token past its window: %+v", o)
	}
	bad := pitest.Token(t, k, pitest.Good(piPackage, piBinding, now).Set("appIntegrity", "appRecognitionVerdict", "UNRECOGNIZED_VERSION"))
	for i := range 2 {
		if o := p.Check(ctx, now, piRequest(bad), bad, cache); o.Code != policy.AppTampered || o.CacheHit != (i == 1) {
			t.Errorf("refused token, use %d: %+v", i, o)
		}
		cache.Wait()
	}
}

// TestPlayIntegrityTimestampSpelling: timestampMillis as Google writes it (a string) and
// as a number mean the same instant.
func TestPlayIntegrityTimestampSpelling(t *testing.T) {
	k := pitest.NewKeys(t)
	p := piProvider(t, k, 0, time.Minute, 0)
	for _, v := range []any{strconv.FormatInt(now.UnixMilli(), 10), now.UnixMilli()} {
		tok := pitest.Token(t, k, pitest.Good(piPackage, piBinding, now).Set("requestDetails", "timestampMillis", v))
		if o := p.Check(context.Background(), now.Add(time.Minute-time.Millisecond), piRequest(tok), tok, nil); o.Code != "" {
			t.Errorf("%T: %q", v, o.Code)
		}
		if o := p.Check(context.Background(), now.Add(time.Minute), piRequest(tok), tok, nil); o.Code != policy.AttestationExpired {
			t.Errorf("%T at the window: %q", v, o.Code)
		}
	}
}

// TestPlayIntegrityReplay: with a replay damper, each token is accepted once, cached or
// not; other tokens are not affected by it, and a use refused before the damper (another
// request's binding) does not spend the token.
func TestPlayIntegrityReplay(t *testing.T) {
	cache, err := policy.NewCache(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	k := pitest.NewKeys(t)
	p := attest.New(attest.Config{Kind: attest.PlayIntegrity, App: "a", CacheID: "pi-" + t.Name(), BindingHeader: "x-request-nonce",
		Replay:        memoryReplay(),
		PlayIntegrity: &attest.PlayIntegrityConfig{Keys: k.Verifier(), Policy: playintegrity.Policy{PackageName: piPackage, MinLevel: playintegrity.Device}}})
	a := pitest.Token(t, k, pitest.Good(piPackage, piBinding, now))
	b := pitest.Token(t, k, pitest.Good(piPackage, piBinding, now.Add(-time.Millisecond)))
	ctx := context.Background()
	for _, step := range []struct {
		name  string
		tok   string
		nonce string
		want  policy.Code
	}{
		{"a on another request", a, "n-124", policy.AttestationFailed},
		{"a", a, "n-123", ""},
		{"a again", a, "n-123", policy.AttestationFailed},
		{"b", b, "n-123", ""},
		{"a once more", a, "n-123", policy.AttestationFailed},
		{"b again", b, "n-123", policy.AttestationFailed},
	} {
		o := p.Check(ctx, now, piRequest(step.tok, "x-request-nonce", step.nonce), step.tok, cache)
		if o.Err != nil || o.Code != step.want {
			t.Fatalf("%s: code %q (%s, err %v), want %q", step.name, o.Code, o.Message, o.Err, step.want)
		}
		cache.Wait()
	}
}
