package policy_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/policy/jwks"
	"github.com/golang-jwt/jwt/v5"
)

// userFixture is an app whose endpoint requires a user JWT of one verifier, with the
// provider's signing key.
type userFixture struct {
	key *ecdsa.PrivateKey
	now time.Time
}

func newUserFixture(t testing.TB) *userFixture {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &userFixture{key: key, now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

// rules builds the pipeline around a verifier whose Keys, Algorithms and Claims are
// filled in here.
func (f *userFixture) rules(t testing.TB, v policy.JWTVerifier) *policy.Rules {
	return f.rulesFor(t, v, policy.UserAuth{})
}

// rulesFor is rules with the endpoint's requirement u (its Verifier is set here).
func (f *userFixture) rulesFor(t testing.TB, v policy.JWTVerifier, u policy.UserAuth) *policy.Rules {
	v.Name = "users"
	v.Algorithms = []string{"ES256"}
	v.Keys = jwks.NewStatic(jwks.Key{ID: "k1", Alg: "ES256", Key: &f.key.PublicKey})
	v.Claims = policy.ClaimNames{Roles: "roles", Scopes: "scope", EmailVerified: "email_verified", Org: "org_id", OrgRole: "org_role"}
	app := &policy.App{Name: "shop", TokenHashes: []policy.Hash{policy.HashCredential("app-token")}, AllEndpoints: true}
	u.Verifier = &v
	ep := &policy.Endpoint{Name: "profile", Path: "/v1/profile", User: &u}
	r, err := policy.NewRules(policy.Options{Version: "v1"}, []*policy.App{app}, []*policy.Endpoint{ep})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// sign makes a token with claims plus an expiry an hour after the fixture's now.
func (f *userFixture) sign(t testing.TB, claims jwt.MapClaims) string {
	c := jwt.MapClaims{"sub": "u1", "exp": f.now.Add(time.Hour).Unix()}
	for k, v := range claims {
		c[k] = v
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, c)
	tok.Header["kid"] = "k1"
	s, err := tok.SignedString(f.key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (f *userFixture) decide(r *policy.Rules, tok string) policy.Decision {
	in := &policy.Input{Method: "GET", Path: "/v1/profile", Headers: map[string]string{"x-app-token": "app-token", "authorization": "Bearer " + tok}}
	return r.Decide(context.Background(), f.now, in)
}

// TestUserIssuerAndAudience: a provider accepts a token only from its issuer and for one
// of its audiences; a provider that names neither, and does not say that any is
// acceptable, accepts no token at all.
func TestUserIssuerAndAudience(t *testing.T) {
	f := newUserFixture(t)
	strict := policy.JWTVerifier{Issuer: "https://id.test", Audiences: []string{"api", "web"}}
	anyAud := policy.JWTVerifier{Issuer: "https://id.test", AnyAudience: true}
	anyIss := policy.JWTVerifier{AnyIssuer: true, Audiences: []string{"api"}}
	anyBoth := policy.JWTVerifier{AnyIssuer: true, AnyAudience: true}
	good := jwt.MapClaims{"iss": "https://id.test", "aud": "api"}
	cases := []struct {
		name   string
		v      policy.JWTVerifier
		claims jwt.MapClaims
		want   policy.Code // "" allowed
	}{
		{"strict: issuer and audience match", strict, good, ""},
		{"strict: second audience", strict, jwt.MapClaims{"iss": "https://id.test", "aud": []string{"other", "web"}}, ""},
		{"strict: other issuer", strict, jwt.MapClaims{"iss": "https://evil.test", "aud": "api"}, policy.InvalidToken},
		{"strict: issuer with a trailing slash", strict, jwt.MapClaims{"iss": "https://id.test/", "aud": "api"}, policy.InvalidToken},
		{"strict: no issuer", strict, jwt.MapClaims{"aud": "api"}, policy.InvalidToken},
		{"strict: other audience", strict, jwt.MapClaims{"iss": "https://id.test", "aud": "admin"}, policy.InvalidToken},
		{"strict: no audience", strict, jwt.MapClaims{"iss": "https://id.test"}, policy.InvalidToken},
		{"any audience: no audience", anyAud, jwt.MapClaims{"iss": "https://id.test"}, ""},
		{"any audience: other issuer", anyAud, jwt.MapClaims{"iss": "https://evil.test"}, policy.InvalidToken},
		{"any issuer: other issuer", anyIss, jwt.MapClaims{"iss": "https://evil.test", "aud": "api"}, ""},
		{"any issuer: other audience", anyIss, jwt.MapClaims{"iss": "https://evil.test", "aud": "admin"}, policy.InvalidToken},
		{"any of both", anyBoth, jwt.MapClaims{}, ""},
		{"neither named nor allowed: good token", policy.JWTVerifier{}, good, policy.InvalidToken},
		{"neither named nor allowed: bare token", policy.JWTVerifier{}, jwt.MapClaims{}, policy.InvalidToken},
		{"issuer only, audience not allowed", policy.JWTVerifier{Issuer: "https://id.test"}, good, policy.InvalidToken},
		{"audience only, issuer not allowed", policy.JWTVerifier{Audiences: []string{"api"}}, good, policy.InvalidToken},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := f.decide(f.rules(t, c.v), f.sign(t, c.claims))
			if d.Code != c.want {
				t.Fatalf("code %q, want %q", d.Code, c.want)
			}
		})
	}
}
