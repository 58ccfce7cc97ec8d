package attest_test

import (
	"context"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/policy/attest"
	"github.com/gatehouse/gatehouse/policy/attest/attesttest"
	"github.com/gatehouse/gatehouse/policy/device"
	"github.com/gatehouse/gatehouse/policy/jwks"
)

// benchProvider builds a provider of kind over key (or secret) without config.
func benchProvider(kind attest.Kind, key *attesttest.Key, secret []byte) *attest.Provider {
	c := attest.Config{Kind: kind, App: "bench", CacheID: "bench", Leeway: 30 * time.Second,
		Claims: attest.ClaimNames{DeviceID: "device_id", Compromised: "compromised", Emulator: "emulator", Debugger: "debugger", Tampered: "tampered"}}
	switch kind {
	case attest.SignedToken:
		c.Issuer, c.Audiences, c.Algorithms = signedIssuer, []string{"bench"}, []string{"ES256", "RS256", "EdDSA"}
	case attest.FirebaseAppCheck:
		c.Issuer, c.Audiences, c.Algorithms, c.Typ, c.AppIDs = "https://firebaseappcheck.googleapis.com/"+fbProject, []string{"projects/" + fbProject}, []string{"RS256"}, "JWT", []string{fbApp}
	case attest.Approov:
		c.Algorithms, c.Secret, c.BindingHeader = []string{"HS256"}, secret, "authorization"
		c.Claims = attest.ClaimNames{DeviceID: "did"}
	}
	if key != nil {
		pub, _ := jwks.Parse(attesttest.JWKS(key))
		c.Keys = jwks.NewStatic(pub[key.ID])
	}
	return attest.New(c)
}

type benchCase struct {
	name string
	p    *attest.Provider
	in   *policy.Input
	tok  string
}

func benchCases(b *testing.B) []benchCase {
	claims := attesttest.Claims{"iss": signedIssuer, "aud": "bench", "iat": now.Add(-time.Minute).Unix(), "exp": now.Add(time.Hour).Unix(), "device_id": "device-1"}
	fb := attesttest.Claims{"iss": "https://firebaseappcheck.googleapis.com/" + fbProject, "aud": []string{"projects/" + fbProject}, "sub": fbApp,
		"iat": now.Add(-time.Minute).Unix(), "exp": now.Add(time.Hour).Unix(), "jti": "j"}
	secret := []byte("0123456789abcdef0123456789abcdef")
	var out []benchCase
	for _, alg := range []string{"ES256", "RS256", "EdDSA"} {
		k := attesttest.NewKey(b, alg, alg)
		out = append(out, benchCase{"signed_token_" + alg, benchProvider(attest.SignedToken, k, nil), request("", "/"), attesttest.Sign(b, k, claims, nil)})
	}
	fk := attesttest.NewKey(b, "RS256", "fb")
	out = append(out, benchCase{"firebase_RS256", benchProvider(attest.FirebaseAppCheck, fk, nil), request("", "/"), attesttest.Sign(b, fk, fb, nil)})
	ap := attesttest.Claims{"exp": now.Add(time.Hour).Unix(), "did": "d", "pay": attesttest.Pay(approovBearer)}
	out = append(out, benchCase{"approov_HS256", benchProvider(attest.Approov, nil, secret), request("", "/", "authorization", approovBearer), attesttest.SignHS256(b, secret, ap, nil)})
	return out
}

// BenchmarkVerifyUncached: one full verification per operation (no cache).
func BenchmarkVerifyUncached(b *testing.B) {
	for _, bc := range benchCases(b) {
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			if o := bc.p.Check(ctx, now, bc.in, bc.tok, nil); o.Code != "" || o.Err != nil {
				b.Fatalf("%+v", o)
			}
			b.ReportAllocs()
			for b.Loop() {
				bc.p.Check(ctx, now, bc.in, bc.tok, nil)
			}
		})
	}
}

// BenchmarkAttestationStepCached: the whole attestation step (device.Checker.Device) for
// a token already in the verdict cache.
func BenchmarkAttestationStepCached(b *testing.B) {
	cache, err := policy.NewCache(1 << 24)
	if err != nil {
		b.Fatal(err)
	}
	defer cache.Close()
	ep := &policy.Endpoint{Name: "e", Attestation: policy.AttestRequire}
	for _, bc := range benchCases(b) {
		b.Run(bc.name, func(b *testing.B) {
			ch := device.New(device.Config{App: "bench", Providers: []*attest.Provider{bc.p}, Cache: cache})
			in := &policy.Input{Headers: map[string]string{bc.p.Header(): bc.tok}}
			for k, v := range bc.in.Headers {
				in.Headers[k] = v
			}
			ctx := context.Background()
			ch.Device(ctx, now, in, ep)
			cache.Wait()
			if v := ch.Device(ctx, now, in, ep); !v.CacheHit || v.Code != "" {
				b.Fatalf("not a cached pass: %+v", v)
			}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					ch.Device(ctx, now, in, ep)
				}
			})
		})
	}
}
