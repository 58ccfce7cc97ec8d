package policy_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"net/netip"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/policy/jwks"
	"github.com/golang-jwt/jwt/v5"
)

// benchRules is an app with an app token and an endpoint that requires a user JWT.
func benchRules(b *testing.B, cached bool) (*policy.Rules, string) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	src := jwks.NewStatic(jwks.Key{ID: "k1", Alg: "ES256", Key: &key.PublicKey})
	v := &policy.JWTVerifier{Name: "users", Issuer: "https://id.test", Audiences: []string{"api"}, Algorithms: []string{"ES256"},
		Leeway: 30 * time.Second, Keys: src, Claims: policy.ClaimNames{Roles: "roles", Scopes: "scope", EmailVerified: "email_verified", Org: "org_id", OrgRole: "org_role"}}
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"iss": "https://id.test", "aud": "api", "sub": "u1",
		"exp": time.Now().Add(time.Hour).Unix(), "roles": []string{"reader"}})
	tok.Header["kid"] = "k1"
	signed, err := tok.SignedString(key)
	if err != nil {
		b.Fatal(err)
	}
	var cache *policy.Cache
	if cached {
		if cache, err = policy.NewCache(32 << 20); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(cache.Close)
	}
	app := &policy.App{Name: "shop", TokenHashes: []policy.Hash{policy.HashCredential("app-token")}, AllEndpoints: true}
	ep := &policy.Endpoint{Name: "profile", Path: "/v1/profile", Methods: []string{"GET"}, User: &policy.UserAuth{Verifier: v, Roles: []string{"reader"}}}
	r, err := policy.NewRules(policy.Options{Version: "v1", Cache: cache}, []*policy.App{app}, []*policy.Endpoint{ep})
	if err != nil {
		b.Fatal(err)
	}
	return r, signed
}

// BenchmarkCheck is the in-process pipeline for a typical request: app token, endpoint
// by path, and a user JWT already in the verdict cache.
func BenchmarkCheck(b *testing.B) {
	r, tok := benchRules(b, true)
	in := &policy.Input{Method: "GET", Path: "/v1/profile", RawPath: "/v1/profile?x=1", Source: netip.MustParseAddr("10.0.0.1"),
		Headers: map[string]string{":method": "GET", ":path": "/v1/profile?x=1", ":authority": "api.example.com", "user-agent": "app/1.0",
			"x-app-token": "app-token", "authorization": "Bearer " + tok, "x-request-id": "abc", "accept": "*/*"}}
	ctx := context.Background()
	now := time.Now()
	if d := r.Decide(ctx, now, in); !d.Allowed() {
		b.Fatalf("denied: %s", d.Code)
	}
	// Ristretto applies writes asynchronously: decide until the verdict comes from the
	// cache. The deadline only catches a verdict that is never cached.
	for deadline := time.Now().Add(10 * time.Second); !r.Decide(ctx, now, in).CacheHit; {
		if time.Now().After(deadline) {
			b.Fatal("verdict not cached")
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			d := r.Decide(ctx, now, in)
			if !d.Allowed() {
				b.Fatal("denied")
			}
		}
	})
}

// BenchmarkCheckUncachedJWT verifies the ES256 user JWT on every call (no cache).
func BenchmarkCheckUncachedJWT(b *testing.B) {
	r, tok := benchRules(b, false)
	in := &policy.Input{Method: "GET", Path: "/v1/profile", Headers: map[string]string{"x-app-token": "app-token", "authorization": "Bearer " + tok}}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if d := r.Decide(context.Background(), time.Now(), in); !d.Allowed() || d.CacheHit {
			b.Fatal("denied or cached")
		}
	}
}
