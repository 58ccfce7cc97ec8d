package challenge_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy/challenge"
	"github.com/gatehouse/gatehouse/ratelimit/state"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newIssuer(t *testing.T, r state.Records, ttl time.Duration) *challenge.Issuer {
	t.Helper()
	s, err := challenge.New(r, ttl, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestIssueFormat: a challenge is 43 characters of unpadded base64url carrying 32 bytes,
// and two are never equal.
func TestIssueFormat(t *testing.T) {
	s := newIssuer(t, newRecords(), time.Minute)
	seen := map[string]bool{}
	for range 50 {
		c, err := s.Issue(context.Background(), t0, "app")
		if err != nil {
			t.Fatal(err)
		}
		raw, err := base64.RawURLEncoding.Strict().DecodeString(c)
		if len(c) != 43 || err != nil || len(raw) != 32 {
			t.Fatalf("challenge %q: len %d, %d bytes, err %v", c, len(c), len(raw), err)
		}
		if seen[c] {
			t.Fatalf("challenge %q issued twice", c)
		}
		seen[c] = true
	}
}

// TestConsume: a challenge is accepted once, for its app, strictly before issue + ttl
// (one nanosecond before: yes; at the ttl: no).
func TestConsume(t *testing.T) {
	ctx := context.Background()
	const ttl = 2 * time.Minute
	for _, tc := range []struct {
		name    string
		app     string
		at      time.Duration
		again   bool
		want    bool
		mangled func(string) string
	}{
		{name: "fresh", app: "app", want: true},
		{name: "last nanosecond", app: "app", at: ttl - time.Nanosecond, want: true},
		{name: "at ttl", app: "app", at: ttl, want: false},
		{name: "after ttl", app: "app", at: ttl + time.Second, want: false},
		{name: "other app", app: "other", want: false},
		{name: "app name prefix", app: "ap", want: false},
		{name: "second use", app: "app", again: true, want: false},
		{name: "upper-cased", app: "app", want: false, mangled: strings.ToUpper},
		{name: "padded", app: "app", want: false, mangled: func(c string) string { return c + "=" }},
		{name: "std alphabet", app: "app", want: false, mangled: func(c string) string {
			return strings.NewReplacer("-", "+", "_", "/").Replace(c[:42]) + "+"
		}},
		{name: "truncated", app: "app", want: false, mangled: func(c string) string { return c[:42] }},
		{name: "empty", app: "app", want: false, mangled: func(string) string { return "" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newIssuer(t, newRecords(), ttl)
			c, err := s.Issue(ctx, t0, "app")
			if err != nil {
				t.Fatal(err)
			}
			if tc.again {
				if ok, err := s.Consume(ctx, t0, "app", c); !ok || err != nil {
					t.Fatalf("first use: %v %v", ok, err)
				}
			}
			if tc.mangled != nil {
				c = tc.mangled(c)
			}
			ok, err := s.Consume(ctx, t0.Add(tc.at), tc.app, c)
			if ok != tc.want || err != nil {
				t.Fatalf("Consume = %v, %v; want %v", ok, err, tc.want)
			}
		})
	}
}

// TestNonCanonicalLastCharacter: 43 base64url characters carry 258 bits; a challenge
// whose last character sets the 2 spare bits decodes to the same bytes but is refused,
// so that one challenge has exactly one spelling.
func TestNonCanonicalLastCharacter(t *testing.T) {
	ctx := context.Background()
	zero := strings.Repeat("A", 43)
	s := newIssuer(t, newRecords(), time.Minute)
	for _, c := range []string{zero[:42] + "B", zero[:42] + "D"} {
		if ok, err := s.Consume(ctx, t0, "app", c); ok || err != nil {
			t.Fatalf("%q: %v %v", c, ok, err)
		}
	}
}

// TestConcurrentConsume: of 16 concurrent Consumes of one challenge, exactly one wins.
func TestConcurrentConsume(t *testing.T) {
	ctx := context.Background()
	s := newIssuer(t, newRecords(), time.Minute)
	c, err := s.Issue(ctx, t0, "app")
	if err != nil {
		t.Fatal(err)
	}
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if ok, err := s.Consume(ctx, t0, "app", c); ok && err == nil {
				wins.Add(1)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d winners, want 1", wins.Load())
	}
}

// TestNothingInClear: the store's keys hold neither the app name nor the challenge.
func TestNothingInClear(t *testing.T) {
	ctx := context.Background()
	r := newRecords()
	s := newIssuer(t, r, time.Minute)
	c, err := s.Issue(ctx, t0, "secret-app-name")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Consume(ctx, t0, "secret-app-name", c); err != nil {
		t.Fatal(err)
	}
	for _, k := range r.keys {
		if strings.Contains(k, "secret-app-name") || strings.Contains(k, c) || len(k) > state.MaxRecordKey {
			t.Fatalf("key %q", k)
		}
	}
}

// TestStoreErrors: an unreachable store is an error on both sides, never a challenge
// issued or accepted.
func TestStoreErrors(t *testing.T) {
	ctx := context.Background()
	r := newRecords()
	s := newIssuer(t, r, time.Minute)
	c, err := s.Issue(ctx, t0, "app")
	if err != nil {
		t.Fatal(err)
	}
	r.err = state.ErrUnavailable
	if got, err := s.Issue(ctx, t0, "app"); got != "" || !errors.Is(err, state.ErrUnavailable) {
		t.Fatalf("Issue = %q, %v", got, err)
	}
	if ok, err := s.Consume(ctx, t0, "app", c); ok || !errors.Is(err, state.ErrUnavailable) {
		t.Fatalf("Consume = %v, %v", ok, err)
	}
}

// TestRandomSource: a failing random source issues nothing; a repeating one is caught
// by the store's Create instead of handing out one challenge twice.
func TestRandomSource(t *testing.T) {
	ctx := context.Background()
	s, err := challenge.New(newRecords(), time.Minute, bytes.NewReader(make([]byte, 40)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Issue(ctx, t0, "app"); err != nil {
		t.Fatal(err)
	}
	if c, err := s.Issue(ctx, t0, "app"); c != "" || err == nil {
		t.Fatalf("short random source: %q, %v", c, err)
	}
	s, _ = challenge.New(newRecords(), time.Minute, bytes.NewReader(make([]byte, 64)))
	s.Issue(ctx, t0, "app")
	if c, err := s.Issue(ctx, t0, "app"); c != "" || err == nil {
		t.Fatalf("repeated random value: %q, %v", c, err)
	}
}

// TestTTLBounds: the ttl must lie in [1s, 1h], checked at the exact bounds.
func TestTTLBounds(t *testing.T) {
	for _, tc := range []struct {
		ttl time.Duration
		ok  bool
	}{
		{time.Second - time.Nanosecond, false}, {time.Second, true},
		{time.Hour, true}, {time.Hour + time.Nanosecond, false}, {0, false}, {-time.Second, false},
	} {
		_, err := challenge.New(newRecords(), tc.ttl, nil)
		if (err == nil) != tc.ok {
			t.Fatalf("ttl %v: err %v, want ok %v", tc.ttl, err, tc.ok)
		}
	}
}
