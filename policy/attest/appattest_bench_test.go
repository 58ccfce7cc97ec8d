package attest_test

import (
	"context"
	"testing"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/policy/attest/appattest/appattesttest"
	"github.com/gatehouse/gatehouse/ratelimit/memstore"
	"github.com/gatehouse/gatehouse/ratelimit/state"
)

// BenchmarkAppAttestAssertion: one request's assertion through the provider on the
// memory store, uncached (a new counter each time: CBOR, one ECDSA P-256 verification,
// a Get and a compare-and-set), and cached (the same assertion replayed: the cache
// remembers its signature verified, the store's counter refuses it, no ECDSA).
func BenchmarkAppAttestAssertion(b *testing.B) {
	ctx := context.Background()
	b.Run("uncached", func(b *testing.B) {
		dev := appattesttest.NewDevice()
		p, _ := appAttestProvider(b, memstore.New(state.MemoryConfig{}, nil), dev)
		ins := make([]*policy.Input, b.N)
		for i := range ins {
			ins[i] = aaInput(dev, uint32(i+1), aaSigned)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if o := p.Check(ctx, aaT0, ins[i], ins[i].Headers["x-app-attest-assertion"], nil); o.Code != "" {
				b.Fatal(o.Code)
			}
		}
	})
	b.Run("cached", func(b *testing.B) {
		dev := appattesttest.NewDevice()
		p, _ := appAttestProvider(b, memstore.New(state.MemoryConfig{}, nil), dev)
		cache, _ := policy.NewCache(1 << 20)
		defer cache.Close()
		in := aaInput(dev, 1, aaSigned)
		tok := in.Headers["x-app-attest-assertion"]
		p.Check(ctx, aaT0, in, tok, cache)
		cache.Wait()
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if o := p.Check(ctx, aaT0, in, tok, cache); !o.CacheHit || o.Code != policy.AttestationFailed {
				b.Fatalf("%+v", o)
			}
		}
	})
}
