package session_test

import (
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/policy/session"
)

func benchManager(b *testing.B, key session.Key) *session.Manager {
	cache, err := policy.NewCache(64 << 20)
	if err != nil {
		b.Fatal(err)
	}
	m, err := session.New(session.Settings{Keys: keySet(b, key.ID, key), Records: records(), Cache: cache})
	if err != nil {
		b.Fatal(err)
	}
	return m
}

// BenchmarkExchange is the cost of one exchange once the proof is verified: a session
// record, a signed session token and a stored refresh token (memory store).
func BenchmarkExchange(b *testing.B) {
	for _, k := range []struct {
		name string
		key  func(testing.TB, string) session.Key
	}{{"ES256", ecKey}, {"EdDSA", edKey}} {
		b.Run(k.name, func(b *testing.B) {
			m := benchManager(b, k.key(b, "k1"))
			g := session.Grant{App: "a", DeviceID: "dev-1", Provider: "firebase_app_check", Verdicts: []string{"attested"}}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.Start(ctx, t0, g); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkVerifySession is what a request carrying a session token pays: uncached (a
// signature verification and the store looks) and cached (the verdict cache).
func BenchmarkVerifySession(b *testing.B) {
	for _, k := range []struct {
		name string
		key  func(testing.TB, string) session.Key
	}{{"ES256", ecKey}, {"EdDSA", edKey}} {
		b.Run(k.name+"/cached", func(b *testing.B) {
			m := benchManager(b, k.key(b, "k1"))
			tk := start(b, m, "a", "dev-1", "")
			now := t0.Add(time.Second)
			m.VerifySession(ctx, now, "a", tk.Session)
			waitCache(m, now, tk.Session)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if o := m.VerifySession(ctx, now, "a", tk.Session); o.Code != "" || !o.CacheHit {
						b.Fatal(o)
					}
				}
			})
		})
		b.Run(k.name+"/uncached", func(b *testing.B) {
			m := manager(b, keySet(b, "k1", k.key(b, "k1")), records())
			tk := start(b, m, "a", "dev-1", "")
			b.ReportAllocs()
			for b.Loop() {
				if o := m.VerifySession(ctx, t0, "a", tk.Session); o.Code != "" {
					b.Fatal(o)
				}
			}
		})
	}
}

// waitCache verifies until the cache holds the token's verdict (ristretto admits entries
// asynchronously and may drop the first Set).
func waitCache(m *session.Manager, now time.Time, tok string) {
	for range 1000 {
		if m.VerifySession(ctx, now, "a", tok).CacheHit {
			return
		}
	}
}
