package policy_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/sealtest"
	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/policy/jwks"
)

// TestDialectChoice: the dialect of a denial is the endpoint's when it sets one, else the
// app's once the app is known, else the server default.
func TestDialectChoice(t *testing.T) {
	lic, gen := policy.License, policy.Generic
	for _, tc := range []struct {
		name    string
		app     policy.Dialect
		ep      *policy.Dialect
		sdk     bool
		in      *policy.Input
		want    policy.Dialect
		wantSDK bool
	}{
		{"app_dialect", policy.Protekt, nil, false, get("/e", "x-attestation-token", "x"), policy.Protekt, false},
		{"endpoint_over_app", policy.Protekt, &lic, true, get("/e"), policy.License, true},
		{"endpoint_before_app_known", policy.Protekt, &gen, false, get("/e", "x-app-token", "guess"), policy.Generic, false},
		{"default_before_app_known", policy.Protekt, nil, false, get("/e", "x-app-token", "guess"), policy.Generic, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dev := fakeDevice{device: policy.DeviceVerdict{Code: policy.InvalidKey}}
			ep := &policy.Endpoint{Name: "e", Path: "/e", Dialect: tc.ep, SDKAuth: tc.sdk}
			r := newTestRules(t, policy.Options{DefaultDialect: policy.Generic}, &policy.App{Dialect: tc.app, Device: dev}, ep)
			d := r.Decide(context.Background(), t0, tc.in)
			if d.Dialect != tc.want || d.SDKAuth != tc.wantSDK {
				t.Fatalf("dialect %v sdk %v, want %v %v", d.Dialect, d.SDKAuth, tc.want, tc.wantSDK)
			}
		})
	}
}

// TestDeviceVerdictFolding: what the pipeline keeps of the device steps' verdicts.
func TestDeviceVerdictFolding(t *testing.T) {
	for _, tc := range []struct {
		name     string
		dev      fakeDevice
		want     policy.Code
		step     policy.Step
		provider string
		hit      bool
		msg      string
	}{
		{"network_refusal_default_step", fakeDevice{network: policy.DeviceVerdict{Code: policy.Blocked}}, policy.Blocked, policy.StepNetwork, "", false, ""},
		{"device_refusal_default_step", fakeDevice{device: policy.DeviceVerdict{Code: policy.AttestationRequired}}, policy.AttestationRequired, policy.StepAttest, "", false, ""},
		{"device_refusal_own_step", fakeDevice{device: policy.DeviceVerdict{Code: policy.LicenseExpired, Step: policy.StepLicense, Message: "m"}}, policy.LicenseExpired, policy.StepLicense, "", false, "m"},
		{"provider_and_hit_on_refusal", fakeDevice{device: policy.DeviceVerdict{Code: policy.AttestationExpired, Provider: "signed_token", CacheHit: true}}, policy.AttestationExpired, policy.StepAttest, "signed_token", true, ""},
		{"provider_and_hit_on_allow", fakeDevice{device: policy.DeviceVerdict{Provider: "approov", CacheHit: true, DeviceID: "d"}}, "", policy.StepDone, "approov", true, ""},
		{"nothing_on_allow", fakeDevice{}, "", policy.StepDone, "", false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newTestRules(t, policy.Options{}, &policy.App{Device: tc.dev}, &policy.Endpoint{Name: "e", Path: "/e"}).Decide(context.Background(), t0, get("/e"))
			wantCode(t, d, tc.want)
			if d.Step != tc.step || d.AttestationProvider != tc.provider || d.CacheHit != tc.hit || d.Message != tc.msg {
				t.Fatalf("step %s provider %q hit %v message %q; want %s %q %v %q", d.Step, d.AttestationProvider, d.CacheHit, d.Message, tc.step, tc.provider, tc.hit, tc.msg)
			}
		})
	}
}

// TestInjectedCredentialNotRemoved: when Gatehouse sets the header the client's credential
// came in (an upstream secret in authorization), it replaces it rather than removing it.
func TestInjectedCredentialNotRemoved(t *testing.T) {
	app := &policy.App{TokenHashes: []policy.Hash{}, APIKeyHashes: []policy.Hash{policy.HashCredential("key")}}
	ep := &policy.Endpoint{Name: "e", Path: "/e", Inject: []policy.Injection{{Header: "authorization", Prefix: "Bearer ", Secret: policy.NewSecret("s", "upstream", time.Time{})}}}
	in := get("/e", "authorization", "Bearer key")
	delete(in.Headers, "x-app-token")
	d := newTestRules(t, policy.Options{}, app, ep).Decide(context.Background(), t0, in)
	wantCode(t, d, "")
	if slices.Contains(d.Remove, "authorization") {
		t.Errorf("removed %v: the injected authorization would be dropped", d.Remove)
	}
	if v, _ := header(d.Upstream, "authorization"); v != "Bearer upstream" {
		t.Errorf("authorization %q", v)
	}
}

// TestEncryptedEmptySecret: the shortest valid ciphertext (nonce and tag, no plaintext)
// decrypts.
func TestEncryptedEmptySecret(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	sealed, err := sealtest.Seal("", key, []byte("nonce-012345"))
	if err != nil {
		t.Fatal(err)
	}
	ep := &policy.Endpoint{Name: "e", Path: "/e", Inject: []policy.Injection{{Header: "x-k", Prefix: "p:", Secret: policy.NewEncryptedSecret("s", sealed, key, time.Time{})}}}
	d := newTestRules(t, policy.Options{}, nil, ep).Decide(context.Background(), t0, get("/e"))
	wantCode(t, d, "")
	if v, ok := header(d.Upstream, "x-k"); !ok || v != "p:" {
		t.Errorf("x-k %q %v, want p:", v, ok)
	}
}

// TestUserVerifierOptionalChecks: a provider checks the issuer and audience it names; one
// that names none checks nothing only where it says any is acceptable (allow_any_issuer,
// allow_any_audience), and otherwise refuses every token.
func TestUserVerifierOptionalChecks(t *testing.T) {
	e := newUserEnv(t, 0, false, policy.UserAuth{}, policy.Options{})
	src := jwks.NewStatic(jwks.Key{ID: "k1", Key: e.key.Private.Public()}) // no alg: any listed
	for _, tc := range []struct {
		name           string
		issuer         string
		aud            []string
		anyIss, anyAud bool
		claims         []any
		want           policy.Code
		wantUser       string
	}{
		{"no_issuer_any_iss", "", []string{"api"}, true, false, []any{"iss", "https://anyone.test"}, "", "user-1"},
		{"no_issuer_not_allowed", "", []string{"api"}, false, false, []any{"iss", "https://anyone.test"}, policy.InvalidToken, ""},
		{"no_audience_any_aud", "https://id.test", nil, false, true, []any{"aud", "anything"}, "", "user-1"},
		{"no_audience_no_aud", "https://id.test", nil, false, true, []any{"aud", nil}, "", "user-1"},
		{"no_audience_not_allowed", "https://id.test", nil, false, false, []any{"aud", "anything"}, policy.InvalidToken, ""},
		{"no_subject_no_header", "https://id.test", []string{"api"}, false, false, []any{"sub", nil}, "", ""},
		{"audience_required", "https://id.test", []string{"api"}, false, false, []any{"aud", nil}, policy.InvalidToken, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ver := &policy.JWTVerifier{Name: "v", Issuer: tc.issuer, Audiences: tc.aud, AnyIssuer: tc.anyIss, AnyAudience: tc.anyAud, Algorithms: []string{"ES256"}, Keys: src}
			r := newTestRules(t, policy.Options{}, nil, &policy.Endpoint{Name: "e", Path: "/e", User: &policy.UserAuth{Verifier: ver}})
			d := r.Decide(context.Background(), t0.Add(-time.Minute), get("/e", "authorization", "Bearer "+e.token(t, tc.claims...)))
			wantCode(t, d, tc.want)
			v, ok := header(d.Upstream, "x-gatehouse-user")
			if v != tc.wantUser || ok != (tc.wantUser != "") {
				t.Errorf("x-gatehouse-user %q (set %v), want %q", v, ok, tc.wantUser)
			}
		})
	}
}

// TestUserVerdictCacheCost: a cached user verdict is charged its subject, 64 bytes per
// role and scope, 128 bytes of fixed size and the cache's 64 bytes of overhead; a refusal
// 64 bytes plus the overhead. Sizes typed by hand.
func TestUserVerdictCacheCost(t *testing.T) {
	e := newUserEnv(t, 0, true, policy.UserAuth{}, policy.Options{})
	wantCode(t, e.decide(t0.Add(-time.Minute), e.token(t, "roles", []string{"a", "b"}, "scope", "x y")), "")
	e.cache.Wait()
	if got := e.cache.Stats().Cost; got != 6+2*64+2*64+128+64 {
		t.Fatalf("cost %d, want 454", got)
	}
	wantCode(t, e.decide(t0.Add(-time.Minute), e.forged(t)), policy.InvalidToken)
	e.cache.Wait()
	if got := e.cache.Stats().Cost; got != 454+64+64 {
		t.Fatalf("cost %d after a refusal, want 582", got)
	}
}

// TestInputHeader: headers are read by their lower-case name.
func TestInputHeader(t *testing.T) {
	in := get("/e", "x-a", "1")
	if v, ok := in.Header("x-a"); !ok || v != "1" {
		t.Errorf("x-a = %q, %v", v, ok)
	}
	if _, ok := in.Header("X-A"); ok {
		t.Error("X-A found: names are lower-case")
	}
}
