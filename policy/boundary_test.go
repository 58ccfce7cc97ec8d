package policy_test

import (
	"context"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/sealtest"
	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/policy/attest/attesttest"
	"github.com/gatehouse/gatehouse/policy/jwks"
)

// Every instant below is typed by hand relative to t0: the exact instant, and one unit
// (a second, or a nanosecond where the comparison is on time.Time) either side.

// TestMaintenanceUntilBoundary: a window with an end answers MAINTENANCE strictly before
// Until, with Retry-After the time left, and lets requests through from Until on.
func TestMaintenanceUntilBoundary(t *testing.T) {
	win := func() *policy.MaintenanceWindow {
		return &policy.MaintenanceWindow{Enabled: true, Until: t0, Message: "back soon"}
	}
	for _, tc := range []struct {
		name       string
		app, ep    *policy.MaintenanceWindow
		at         time.Time
		want       policy.Code
		step       policy.Step
		retryAfter time.Duration
	}{
		{"app/1s_before", win(), nil, t0.Add(-time.Second), policy.Maintenance, policy.StepApp, time.Second},
		{"app/1ns_before", win(), nil, t0.Add(-1), policy.Maintenance, policy.StepApp, 1},
		{"app/at_until", win(), nil, t0, "", "", 0},
		{"app/1s_after", win(), nil, t0.Add(time.Second), "", "", 0},
		{"app/no_end", &policy.MaintenanceWindow{Enabled: true, Message: "back soon"}, nil, t0.Add(time.Hour), policy.Maintenance, policy.StepApp, 0},
		{"app/disabled_window", &policy.MaintenanceWindow{Until: t0.Add(time.Hour)}, nil, t0, "", "", 0},
		{"endpoint/1s_before", nil, win(), t0.Add(-time.Second), policy.Maintenance, policy.StepEndpoint, time.Second},
		{"endpoint/1ns_before", nil, win(), t0.Add(-1), policy.Maintenance, policy.StepEndpoint, 1},
		{"endpoint/at_until", nil, win(), t0, "", "", 0},
		{"endpoint/1s_after", nil, win(), t0.Add(time.Second), "", "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newTestRules(t, policy.Options{}, &policy.App{Maintenance: tc.app},
				&policy.Endpoint{Name: "e", Path: "/e", Maintenance: tc.ep})
			d := r.Decide(context.Background(), tc.at, get("/e"))
			wantCode(t, d, tc.want)
			if tc.want == "" {
				return
			}
			if d.Step != tc.step || d.RetryAfter != tc.retryAfter || d.Message != "back soon" {
				t.Errorf("step %s retry-after %v message %q; want %s %v %q", d.Step, d.RetryAfter, d.Message, tc.step, tc.retryAfter, "back soon")
			}
		})
	}
}

// TestSecretExpiryBoundary: an injected secret is used strictly before its expiry, and
// refused (SECRET_EXPIRED) from the expiry instant on.
func TestSecretExpiryBoundary(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	sealed, err := sealtest.Seal("sealed-value", key, []byte("nonce-012345"))
	if err != nil {
		t.Fatal(err)
	}
	otherKey := []byte("fedcba9876543210fedcba9876543210")
	for _, tc := range []struct {
		name   string
		secret *policy.Secret
		at     time.Time
		want   policy.Code
		value  string // the injected header value when allowed
	}{
		{"1s_before_expiry", policy.NewSecret("s", "v", t0), t0.Add(-time.Second), "", "Bearer v"},
		{"1ns_before_expiry", policy.NewSecret("s", "v", t0), t0.Add(-1), "", "Bearer v"},
		{"at_expiry", policy.NewSecret("s", "v", t0), t0, policy.SecretExpired, ""},
		{"1s_after_expiry", policy.NewSecret("s", "v", t0), t0.Add(time.Second), policy.SecretExpired, ""},
		{"never_expires", policy.NewSecret("s", "v", time.Time{}), t0.Add(100 * 365 * 24 * time.Hour), "", "Bearer v"},
		{"missing", &policy.Secret{Name: "s", Missing: true}, t0, policy.SecretNotFound, ""},
		{"nil", nil, t0, policy.SecretNotFound, ""},
		{"encrypted", policy.NewEncryptedSecret("s", sealed, key, t0), t0.Add(-time.Second), "", "Bearer sealed-value"},
		{"encrypted_expired", policy.NewEncryptedSecret("s", sealed, key, t0), t0, policy.SecretExpired, ""},
		{"encrypted_wrong_key", policy.NewEncryptedSecret("s", sealed, otherKey, time.Time{}), t0, policy.SecretDecryptionFailed, ""},
		{"encrypted_bad_base64", policy.NewEncryptedSecret("s", "%%%", key, time.Time{}), t0, policy.SecretDecryptionFailed, ""},
		{"encrypted_too_short", policy.NewEncryptedSecret("s", "AAAA", key, time.Time{}), t0, policy.SecretDecryptionFailed, ""},
		{"encrypted_bad_key_size", policy.NewEncryptedSecret("s", sealed, key[:5], time.Time{}), t0, policy.SecretDecryptionFailed, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ep := &policy.Endpoint{Name: "e", Path: "/e",
				Inject: []policy.Injection{{Header: "authorization", Prefix: "Bearer ", Secret: tc.secret}}}
			d := newTestRules(t, policy.Options{}, nil, ep).Decide(context.Background(), tc.at, get("/e"))
			wantCode(t, d, tc.want)
			if tc.want != "" {
				if d.Step != policy.StepSecrets {
					t.Errorf("step %s, want secrets", d.Step)
				}
				if _, ok := header(d.Upstream, "authorization"); ok {
					t.Error("a refused secret was still injected")
				}
				return
			}
			if v, _ := header(d.Upstream, "authorization"); v != tc.value {
				t.Errorf("injected %q, want %q", v, tc.value)
			}
		})
	}
	t.Run("bad_nonce", func(t *testing.T) {
		if _, err := sealtest.Seal("v", key, []byte("short")); err == nil {
			t.Error("a short nonce was accepted")
		}
		if _, err := sealtest.Seal("v", key[:3], []byte("nonce-012345")); err == nil {
			t.Error("a bad key size was accepted")
		}
	})
}

// userEnv is a rule set with one endpoint that requires a user JWT from a provider
// trusting one ES256 key.
type userEnv struct {
	key   *attesttest.Key
	rules *policy.Rules
	cache *policy.Cache
}

// newUserEnv compiles the rule set; o's Cache is set when cached.
func newUserEnv(t *testing.T, leeway time.Duration, cached bool, u policy.UserAuth, o policy.Options) *userEnv {
	t.Helper()
	k := attesttest.NewKey(t, "ES256", "k1")
	src := jwks.NewStatic(jwks.Key{ID: "k1", Alg: "ES256", Key: k.Private.Public()})
	u.Verifier = &policy.JWTVerifier{Name: "idp", Issuer: "https://id.test", Audiences: []string{"api"},
		Algorithms: []string{"ES256"}, Leeway: leeway, Keys: src,
		Claims: policy.ClaimNames{Roles: "roles", Scopes: "scope", EmailVerified: "email_verified", Org: "org_id", OrgRole: "org_role"}}
	e := &userEnv{key: k}
	if cached {
		c, err := policy.NewCache(1 << 20)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		e.cache, o.Cache = c, c
	}
	e.rules = newTestRules(t, o, &policy.App{Org: "org-1"}, &policy.Endpoint{Name: "e", Path: "/e", User: &u})
	return e
}

// token signs claims over the defaults: issuer, audience, subject, and exp at t0.
func (e *userEnv) token(t *testing.T, kv ...any) string {
	base := attesttest.Claims{"iss": "https://id.test", "aud": "api", "sub": "user-1", "exp": t0.Unix()}
	return attesttest.Sign(t, e.key, attesttest.With(base, kv...), nil)
}

// forged is a well-formed token signed by a key the provider does not trust.
func (e *userEnv) forged(t *testing.T) string {
	other := attesttest.NewKey(t, "ES256", "k1")
	return attesttest.Sign(t, other, attesttest.Claims{"iss": "https://id.test", "aud": "api", "sub": "user-1", "exp": t0.Unix()}, nil)
}

func (e *userEnv) decide(at time.Time, tok string) policy.Decision {
	return e.rules.Decide(context.Background(), at, get("/e", "authorization", "Bearer "+tok))
}

// TestUserJWTTimeBoundaries: exp and nbf at the exact instant and one second either side,
// with no leeway and with 30 s of leeway.
func TestUserJWTTimeBoundaries(t *testing.T) {
	const s = time.Second
	for _, tc := range []struct {
		name   string
		leeway time.Duration
		claims []any
		at     time.Time
		want   policy.Code
	}{
		{"exp/no_leeway/1s_before", 0, nil, t0.Add(-s), ""},
		{"exp/no_leeway/at_exp", 0, nil, t0, policy.TokenExpired},
		{"exp/no_leeway/1s_after", 0, nil, t0.Add(s), policy.TokenExpired},
		{"exp/leeway/1s_before_exp+leeway", 30 * s, nil, t0.Add(29 * s), ""},
		{"exp/leeway/at_exp+leeway", 30 * s, nil, t0.Add(30 * s), policy.TokenExpired},
		{"exp/leeway/1s_after_exp+leeway", 30 * s, nil, t0.Add(31 * s), policy.TokenExpired},
		{"exp/missing", 0, []any{"exp", nil}, t0.Add(-time.Hour), policy.InvalidToken},
		{"nbf/no_leeway/1s_before", 0, []any{"nbf", t0.Add(-time.Minute).Unix()}, t0.Add(-time.Minute - s), policy.InvalidToken},
		{"nbf/no_leeway/at_nbf", 0, []any{"nbf", t0.Add(-time.Minute).Unix()}, t0.Add(-time.Minute), ""},
		{"nbf/no_leeway/1s_after", 0, []any{"nbf", t0.Add(-time.Minute).Unix()}, t0.Add(-time.Minute + s), ""},
		{"nbf/leeway/1s_before_nbf-leeway", 30 * s, []any{"nbf", t0.Add(-time.Minute).Unix()}, t0.Add(-time.Minute - 31*s), policy.InvalidToken},
		{"nbf/leeway/at_nbf-leeway", 30 * s, []any{"nbf", t0.Add(-time.Minute).Unix()}, t0.Add(-time.Minute - 30*s), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newUserEnv(t, tc.leeway, false, policy.UserAuth{}, policy.Options{})
			d := e.decide(tc.at, e.token(t, tc.claims...))
			wantCode(t, d, tc.want)
			if tc.want != "" && d.Step != policy.StepIdentity {
				t.Errorf("step %s, want identity", d.Step)
			}
		})
	}
}

// TestCachedUserVerdictNeverOutlivesToken: a token verified once is served from the cache
// until exp+leeway, and refused from that instant on, cached or not.
func TestCachedUserVerdictNeverOutlivesToken(t *testing.T) {
	for _, leeway := range []time.Duration{0, 30 * time.Second} {
		t.Run(leeway.String(), func(t *testing.T) {
			e := newUserEnv(t, leeway, true, policy.UserAuth{}, policy.Options{})
			tok := e.token(t)
			first := e.decide(t0.Add(-time.Hour), tok)
			wantCode(t, first, "")
			if first.CacheHit {
				t.Fatal("first use was a cache hit")
			}
			e.cache.Wait()
			hit := e.decide(t0.Add(leeway-time.Second), tok)
			wantCode(t, hit, "")
			if !hit.CacheHit {
				t.Fatal("1s before exp+leeway: want the cached verdict")
			}
			wantCode(t, e.decide(t0.Add(leeway), tok), policy.TokenExpired)
			wantCode(t, e.decide(t0.Add(leeway+time.Second), tok), policy.TokenExpired)
		})
	}
}

// TestCachedUserRefusal: a refused token is cached as a refusal (the second use is a hit),
// and never turns into an allow.
func TestCachedUserRefusal(t *testing.T) {
	e := newUserEnv(t, 0, true, policy.UserAuth{}, policy.Options{})
	forged := e.forged(t)
	wantCode(t, e.decide(t0.Add(-time.Hour), forged), policy.InvalidToken)
	e.cache.Wait()
	d := e.decide(t0.Add(-time.Hour), forged)
	wantCode(t, d, policy.InvalidToken)
	if !d.CacheHit {
		t.Error("the refusal was not cached")
	}
}

// TestCachedUserVerdictNeverOutlivesRules: a verdict cached by one rule set is never served
// by the next, even when both carry the same config version: a reload that dropped the
// key a token was signed with refuses that token at once.
func TestCachedUserVerdictNeverOutlivesRules(t *testing.T) {
	e := newUserEnv(t, 0, true, policy.UserAuth{}, policy.Options{Version: "v1"})
	tok := e.token(t)
	wantCode(t, e.decide(t0.Add(-time.Hour), tok), "")
	e.cache.Wait()
	if d := e.decide(t0.Add(-time.Hour), tok); !d.CacheHit {
		t.Fatal("the verdict was not cached: the test proves nothing")
	}
	other := attesttest.NewKey(t, "ES256", "k2")
	u := policy.UserAuth{Verifier: &policy.JWTVerifier{Name: "idp", Issuer: "https://id.test", Audiences: []string{"api"},
		Algorithms: []string{"ES256"}, Keys: jwks.NewStatic(jwks.Key{ID: "k2", Alg: "ES256", Key: other.Private.Public()})}}
	next := newTestRules(t, policy.Options{Version: "v1", Cache: e.cache}, &policy.App{Org: "org-1"}, &policy.Endpoint{Name: "e", Path: "/e", User: &u})
	d := next.Decide(context.Background(), t0.Add(-time.Hour), get("/e", "authorization", "Bearer "+tok))
	if d.CacheHit {
		t.Error("the new rule set served the old rule set's cached verdict")
	}
	wantCode(t, d, policy.InvalidToken)
}
