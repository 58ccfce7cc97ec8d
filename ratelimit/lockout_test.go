package ratelimit

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/ratelimit/internal/redistest"
)

// TestLockoutSlidingWindow: max_failures failures within any span shorter than window
// lock the key, wherever the span falls against wall-clock-aligned windows; the last
// failure at exactly window after the first, or later, does not. The unit is the
// microsecond (what the stores keep). Times are hand-typed offsets from an aligned
// minute edge (t0 is 10:00:00).
func TestLockoutSlidingWindow(t *testing.T) {
	const w, us = time.Minute, time.Microsecond
	edge := t0.Add(5 * w) // 10:05:00, an aligned window edge
	cases := []struct {
		name   string
		offs   []time.Duration // failure times relative to edge
		locked bool            // after the last failure
	}{
		{"three within one aligned window", []time.Duration{-50 * time.Second, -40 * time.Second, -30 * time.Second}, true},
		{"spread across the aligned edge", []time.Duration{-2 * time.Second, -time.Second, time.Second}, true},
		{"two before the edge, one long after", []time.Duration{-2 * time.Second, -time.Second, 57 * time.Second}, true},
		{"two before the edge, one at window after the first", []time.Duration{-2 * time.Second, -time.Second, 58 * time.Second}, false},
		{"last at window-1µs after the first", []time.Duration{-30 * time.Second, 0, 30*time.Second - us}, true},
		{"last at exactly window after the first", []time.Duration{-30 * time.Second, 0, 30 * time.Second}, false},
		{"last at window+1µs after the first", []time.Duration{-30 * time.Second, 0, 30*time.Second + us}, false},
		{"first at the edge, last at window-1µs", []time.Duration{0, time.Second, w - us}, true},
		{"first at the edge, last at window", []time.Duration{0, time.Second, w}, false},
		{"first at edge-1µs, last at edge+window-2µs", []time.Duration{-us, 0, w - 2*us}, true},
		{"first at edge-1µs, last at edge+window-1µs", []time.Duration{-us, 0, w - us}, false},
		{"only two", []time.Duration{-time.Second, time.Second}, false},
		{"old failures two windows back do not count", []time.Duration{-2*w + time.Second, -2*w + 2*time.Second, time.Second}, false},
		{"four spread: the last three are within", []time.Duration{-w - 30*time.Second, -20 * time.Second, -10 * time.Second, 5 * time.Second}, true},
	}
	in := CompileInput{Lockout: LockoutConfig{MaxFailures: 3, Window: w, LockFor: 10 * time.Minute, Key: []string{"ip"}}}
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
			e := mustCompile(t, in, st.open(t))
			for i, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					key := fmt.Sprintf("ip:192.0.2.%d", i+1) // one key per case in the shared store
					ctx := context.Background()
					var last time.Time
					for j, off := range tc.offs {
						last = edge.Add(off)
						if _, locked, _ := e.Locked(ctx, last, key); locked {
							t.Fatalf("locked before failure %d", j+1)
						}
						if err := e.Fail(ctx, last, key); err != nil {
							t.Fatal(err)
						}
					}
					until, locked, err := e.Locked(ctx, last, key)
					if err != nil || locked != tc.locked {
						t.Fatalf("locked %v (err %v), want %v", locked, err, tc.locked)
					}
					// Redis scripts round the lock's end (unix ns in a double) to under a µs.
					if locked && until.Sub(last.Add(10*time.Minute)).Abs() >= us {
						t.Fatalf("until %v, want %v", until, last.Add(10*time.Minute))
					}
				})
			}
		})
	}
}

// TestLockoutKeyKinds: each of ip, device and user is tracked when listed (and all of them
// when none is), each key counted on its own; an unlisted kind is never counted.
func TestLockoutKeyKinds(t *testing.T) {
	cases := []struct {
		kinds   []string
		tracked map[string]bool
	}{
		{[]string{"ip"}, map[string]bool{"ip": true}},
		{[]string{"device"}, map[string]bool{"device": true}},
		{[]string{"user"}, map[string]bool{"user": true}},
		{[]string{"device", "user"}, map[string]bool{"device": true, "user": true}},
		{nil, map[string]bool{"ip": true, "device": true, "user": true}},
	}
	for _, tc := range cases {
		for _, kind := range []string{"ip", "device", "user"} {
			in := CompileInput{Lockout: LockoutConfig{MaxFailures: 2, Window: time.Minute, LockFor: time.Minute, Key: tc.kinds}}
			e := mustCompile(t, in, memStore(t, MemoryConfig{}, nil))
			ctx := context.Background()
			for i := 0; i < 2; i++ {
				if err := e.Fail(ctx, t0, "ip:192.0.2.9", "device:d-1", "user:idp:u-1"); err != nil {
					t.Fatal(err)
				}
			}
			key := map[string]string{"ip": "ip:192.0.2.9", "device": "device:d-1", "user": "user:idp:u-1"}[kind]
			_, locked, err := e.Locked(ctx, t0, key)
			if err != nil || locked != tc.tracked[kind] {
				t.Errorf("key %v: %s locked %v (err %v), want %v", tc.kinds, kind, locked, err, tc.tracked[kind])
			}
			// Another key of the same kind is untouched.
			other := map[string]string{"ip": "ip:192.0.2.10", "device": "device:d-2", "user": "user:idp:u-2"}[kind]
			if _, locked, _ := e.Locked(ctx, t0, other); locked {
				t.Errorf("key %v: %s locked without failures", tc.kinds, other)
			}
		}
	}
}
