package ratelimit

import (
	"context"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/ratelimit/internal/redistest"
)

// TestLockoutReset: a success (Reset) forgets a key's failures, in both windows a
// sliding window reads, so that max_failures more are needed to lock it; other keys keep
// theirs. Reset neither lifts a lock already set nor needs the key to exist.
func TestLockoutReset(t *testing.T) {
	const w = time.Minute
	edge := t0.Add(5 * w) // an aligned window edge
	in := CompileInput{Lockout: LockoutConfig{MaxFailures: 3, Window: w, LockFor: 10 * time.Minute, Key: []string{"ip", "account"}}}
	stores := []struct {
		name string
		open func(t *testing.T) Store
	}{
		{"memory", func(t *testing.T) Store { return memStore(t, MemoryConfig{}, nil) }},
		{"redis", func(t *testing.T) Store {
			return openTestRedis(t, RedisConfig{Addrs: []string{redistest.Start(t).Addr()}}, nil)
		}},
	}
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			ctx := context.Background()
			e := mustCompile(t, in, st.open(t))
			acct, ip := "account:aa", "ip:192.0.2.1"
			fail := func(at time.Time) {
				t.Helper()
				if err := e.Fail(ctx, at, acct, ip); err != nil {
					t.Fatal(err)
				}
			}
			if err := e.Reset(ctx, edge.Add(-2*time.Second), "account:never-failed"); err != nil {
				t.Fatalf("Reset of an unknown key: %v", err)
			}
			// Two failures straddling the edge, a reset, then two more: 4 within the
			// window, but only 2 since the reset.
			fail(edge.Add(-2 * time.Second))
			fail(edge.Add(time.Second))
			if err := e.Reset(ctx, edge.Add(2*time.Second), acct); err != nil {
				t.Fatal(err)
			}
			fail(edge.Add(3 * time.Second))
			fail(edge.Add(4 * time.Second))
			if _, locked, _ := e.Locked(ctx, edge.Add(4*time.Second), acct); locked {
				t.Fatal("account locked after 2 failures since its reset")
			}
			// The IP was not reset: its 4th failure locked it at the 3rd.
			if _, locked, _ := e.Locked(ctx, edge.Add(4*time.Second), ip); !locked {
				t.Fatal("ip not locked after 4 failures (its count is not the account's)")
			}
			fail(edge.Add(5 * time.Second))
			if _, locked, _ := e.Locked(ctx, edge.Add(5*time.Second), acct); !locked {
				t.Fatal("account not locked at its 3rd failure since the reset")
			}
			if err := e.Reset(ctx, edge.Add(6*time.Second), acct); err != nil {
				t.Fatal(err)
			}
			if _, locked, _ := e.Locked(ctx, edge.Add(6*time.Second), acct); !locked {
				t.Fatal("a reset lifted a lock")
			}
		})
	}
}
