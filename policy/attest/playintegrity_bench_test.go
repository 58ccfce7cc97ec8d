package attest_test

import (
	"context"
	"testing"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/policy/attest"
	"github.com/gatehouse/gatehouse/policy/attest/playintegrity"
	"github.com/gatehouse/gatehouse/policy/attest/playintegrity/pitest"
	"github.com/gatehouse/gatehouse/policy/device"
)

// BenchmarkPlayIntegrityVerifyUncached: one full verification per operation: unwrap the
// content key (A256KW), decrypt (A256GCM), verify the ES256 signature, decode and judge.
func BenchmarkPlayIntegrityVerifyUncached(b *testing.B) {
	k := pitest.NewKeys(b)
	p := piProvider(b, k, 0, 0, 0)
	tok := pitest.Token(b, k, pitest.Good(piPackage, piBinding, now))
	in, ctx := piRequest(tok), context.Background()
	if o := p.Check(ctx, now, in, tok, nil); o.Code != "" || o.Err != nil {
		b.Fatalf("%+v", o)
	}
	b.SetBytes(int64(len(tok)))
	b.ReportAllocs()
	for b.Loop() {
		p.Check(ctx, now, in, tok, nil)
	}
}

// BenchmarkPlayIntegrityStepCached: the whole attestation step (device.Checker.Device)
// for a token already in the verdict cache: the cache lookup, the request binding (one
// SHA-256) and the clock, in parallel as requests arrive.
func BenchmarkPlayIntegrityStepCached(b *testing.B) {
	cache, err := policy.NewCache(1 << 24)
	if err != nil {
		b.Fatal(err)
	}
	defer cache.Close()
	k := pitest.NewKeys(b)
	p := piProvider(b, k, 0, 0, 0)
	tok := pitest.Token(b, k, pitest.Good(piPackage, piBinding, now))
	ch := device.New(device.Config{App: "a", Providers: []*attest.Provider{p}, Cache: cache})
	ep := &policy.Endpoint{Name: "e", Attestation: policy.AttestRequire}
	in, ctx := piRequest(tok), context.Background()
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
}

// BenchmarkPlayIntegrityStepCachedDamper: BenchmarkPlayIntegrityStepCached with the
// replay damper every compiled play_integrity provider has. One token is replayed, so
// each operation is a cache hit, the binding, the clock and the damper's lookup (a
// refusal: the work of a first acceptance but its insert).
func BenchmarkPlayIntegrityStepCachedDamper(b *testing.B) {
	cache, err := policy.NewCache(1 << 24)
	if err != nil {
		b.Fatal(err)
	}
	defer cache.Close()
	k := pitest.NewKeys(b)
	p := attest.New(attest.Config{Kind: attest.PlayIntegrity, App: "a", CacheID: "pi-" + b.Name(), BindingHeader: "x-request-nonce",
		Replay:        memoryReplay(),
		PlayIntegrity: &attest.PlayIntegrityConfig{Keys: k.Verifier(), Policy: playintegrity.Policy{PackageName: piPackage, MinLevel: playintegrity.Device}}})
	tok := pitest.Token(b, k, pitest.Good(piPackage, piBinding, now))
	ch := device.New(device.Config{App: "a", Providers: []*attest.Provider{p}, Cache: cache})
	ep := &policy.Endpoint{Name: "e", Attestation: policy.AttestRequire}
	in, ctx := piRequest(tok), context.Background()
	if v := ch.Device(ctx, now, in, ep); v.Code != "" {
		b.Fatalf("first use refused: %+v", v)
	}
	cache.Wait()
	if v := ch.Device(ctx, now, in, ep); !v.CacheHit || v.Code != policy.AttestationFailed {
		b.Fatalf("not a cached replay refusal: %+v", v)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			ch.Device(ctx, now, in, ep)
		}
	})
}
