package idempotency_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy/idempotency"
	"github.com/gatehouse/gatehouse/ratelimit/state"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func settings() *idempotency.Settings {
	return &idempotency.Settings{TTL: time.Hour, InFlightTTL: time.Minute, MaxBody: 16, Headers: []string{"content-type", "location"}}
}

// begin runs Begin for app "shop" and fails the test on an error.
func begin(t *testing.T, rec state.Records, s *idempotency.Settings, now time.Time, caller, key string, fp idempotency.Fingerprint) (idempotency.Claim, idempotency.Outcome, idempotency.Response) {
	t.Helper()
	c, o, r, err := idempotency.Begin(context.Background(), rec, s, now, "shop", caller, key, fp)
	if err != nil {
		t.Fatalf("Begin: %v", err)
	}
	return c, o, r
}

func TestBeginOutcomes(t *testing.T) {
	ctx := context.Background()
	fp := idempotency.NewFingerprint("POST", "/v1/orders", []byte(`{"qty":1}`))
	stored := idempotency.Response{Status: 201, Headers: [][2]string{{"Content-Type", "application/json"}, {"set-cookie", "s=1"}, {"location", "/v1/orders/7"}}, Body: []byte(`{"id":7}`)}
	rec, s := newRecords(t), settings()

	c, o, _ := begin(t, rec, s, t0, "alice", "k-1", fp)
	if o != idempotency.Proceed || !c.Held() {
		t.Fatalf("first request: outcome %d held %v, want Proceed", o, c.Held())
	}
	if _, o, _ = begin(t, rec, s, t0, "alice", "k-1", fp); o != idempotency.InFlight {
		t.Fatalf("duplicate in flight: outcome %d, want InFlight", o)
	}
	if sw, err := idempotency.Complete(ctx, rec, s, t0, c, stored); err != nil || !sw {
		t.Fatalf("Complete = %v, %v", sw, err)
	}
	cases := []struct {
		name   string
		caller string
		key    string
		fp     idempotency.Fingerprint
		want   idempotency.Outcome
	}{
		{"repeat replays", "alice", "k-1", fp, idempotency.Replay},
		{"other body", "alice", "k-1", idempotency.NewFingerprint("POST", "/v1/orders", []byte(`{"qty":2}`)), idempotency.Mismatch},
		{"other path", "alice", "k-1", idempotency.NewFingerprint("POST", "/v1/orders/x", []byte(`{"qty":1}`)), idempotency.Mismatch},
		{"other method", "alice", "k-1", idempotency.NewFingerprint("PUT", "/v1/orders", []byte(`{"qty":1}`)), idempotency.Mismatch},
		{"other caller, same key", "bob", "k-1", fp, idempotency.Proceed},
		{"other key", "alice", "k-2", fp, idempotency.Proceed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, o, r := begin(t, rec, s, t0.Add(time.Second), tc.caller, tc.key, tc.fp)
			if o != tc.want {
				t.Fatalf("outcome %d, want %d", o, tc.want)
			}
			if o != idempotency.Replay {
				return
			}
			want := idempotency.Response{Status: 201, Headers: [][2]string{{"content-type", "application/json"}, {"location", "/v1/orders/7"}}, Body: []byte(`{"id":7}`)}
			if r.Status != want.Status || !slices.Equal(r.Headers, want.Headers) || !bytes.Equal(r.Body, want.Body) {
				t.Fatalf("replayed %+v, want %+v", r, want)
			}
		})
	}
}

// TestScopeNeedsCaller: a key is never scoped by the app alone.
func TestScopeNeedsCaller(t *testing.T) {
	_, _, _, err := idempotency.Begin(context.Background(), newRecords(t), settings(), t0, "shop", "", "k-1", idempotency.Fingerprint{})
	if !errors.Is(err, idempotency.ErrNoCaller) {
		t.Fatalf("err = %v, want ErrNoCaller", err)
	}
}

// TestScopesDoNotCollide: the parts of a scope are length-prefixed, so that ("ab","c")
// and ("a","bc") are different scopes.
func TestScopesDoNotCollide(t *testing.T) {
	pairs := [][2][3]string{
		{{"ab", "c", "k"}, {"a", "bc", "k"}},
		{{"a", "b", "ck"}, {"a", "bc", "k"}},
		{{"shop", "alice", "k"}, {"shop", "alice", "K"}},
	}
	for _, p := range pairs {
		a, b := idempotency.RecordKey(p[0][0], p[0][1], p[0][2]), idempotency.RecordKey(p[1][0], p[1][1], p[1][2])
		if a == b {
			t.Errorf("%q and %q share record key %s", p[0], p[1], a)
		}
		if strings.Contains(a, p[0][1]) && len(p[0][1]) > 2 {
			t.Errorf("record key %s holds the caller in clear", a)
		}
	}
}

// TestMaxBody: a body of exactly MaxBody bytes is stored; one byte more is not, and a
// repeat is then refused rather than run again.
func TestMaxBody(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		size int
		want idempotency.Outcome
	}{{15, idempotency.Replay}, {16, idempotency.Replay}, {17, idempotency.NotStored}} {
		rec, s := newRecords(t), settings()
		fp := idempotency.NewFingerprint("POST", "/p", nil)
		c, _, _ := begin(t, rec, s, t0, "alice", "k", fp)
		body := bytes.Repeat([]byte("x"), tc.size)
		if _, err := idempotency.Complete(ctx, rec, s, t0, c, idempotency.Response{Status: 200, Body: body}); err != nil {
			t.Fatal(err)
		}
		_, o, r := begin(t, rec, s, t0, "alice", "k", fp)
		if o != tc.want {
			t.Errorf("body of %d bytes: outcome %d, want %d", tc.size, o, tc.want)
		}
		if o == idempotency.Replay && !bytes.Equal(r.Body, body) {
			t.Errorf("body of %d bytes replayed as %d bytes", tc.size, len(r.Body))
		}
		// A different request under the key is still a mismatch, not a refusal.
		if _, o, _ := begin(t, rec, s, t0, "alice", "k", idempotency.NewFingerprint("POST", "/q", nil)); o != idempotency.Mismatch {
			t.Errorf("body of %d bytes, other fingerprint: outcome %d, want Mismatch", tc.size, o)
		}
	}
}

// TestRelease: a released mark lets the retry proceed; a stale claim (its mark expired
// and another request took the key) releases nothing and completes nothing.
func TestRelease(t *testing.T) {
	ctx := context.Background()
	rec, s := newRecords(t), settings()
	fp := idempotency.NewFingerprint("POST", "/p", nil)
	c, _, _ := begin(t, rec, s, t0, "alice", "k", fp)
	if ok, err := idempotency.Release(ctx, rec, t0, c); err != nil || !ok {
		t.Fatalf("Release = %v, %v", ok, err)
	}
	c1, o, _ := begin(t, rec, s, t0, "alice", "k", fp)
	if o != idempotency.Proceed {
		t.Fatalf("after release: outcome %d, want Proceed", o)
	}
	// c1's mark expires; another request takes the key.
	later := t0.Add(s.InFlightTTL)
	c2, o, _ := begin(t, rec, s, later, "alice", "k", fp)
	if o != idempotency.Proceed {
		t.Fatalf("after the mark's ttl: outcome %d, want Proceed", o)
	}
	if ok, _ := idempotency.Release(ctx, rec, later, c1); ok {
		t.Fatal("a stale claim released the new request's mark")
	}
	if ok, _ := idempotency.Complete(ctx, rec, s, later, c1, idempotency.Response{Status: 200}); ok {
		t.Fatal("a stale claim completed the new request's entry")
	}
	if _, o, _ := begin(t, rec, s, later, "alice", "k", fp); o != idempotency.InFlight {
		t.Fatalf("new request's mark: outcome %d, want InFlight", o)
	}
	_ = c2
	if ok, _ := idempotency.Release(ctx, rec, later, idempotency.Claim{}); ok {
		t.Fatal("the zero claim released something")
	}
}

// TestEntryTTL: a completed entry is replayed until its TTL, then the key is new.
func TestEntryTTL(t *testing.T) {
	ctx := context.Background()
	rec, s := newRecords(t), settings()
	fp := idempotency.NewFingerprint("POST", "/p", nil)
	c, _, _ := begin(t, rec, s, t0, "alice", "k", fp)
	if _, err := idempotency.Complete(ctx, rec, s, t0, c, idempotency.Response{Status: 200}); err != nil {
		t.Fatal(err)
	}
	if _, o, _ := begin(t, rec, s, t0.Add(time.Hour-time.Nanosecond), "alice", "k", fp); o != idempotency.Replay {
		t.Fatalf("just before the ttl: outcome %d, want Replay", o)
	}
	if _, o, _ := begin(t, rec, s, t0.Add(time.Hour), "alice", "k", fp); o != idempotency.Proceed {
		t.Fatalf("at the ttl: outcome %d, want Proceed", o)
	}
}

func TestValidKey(t *testing.T) {
	for _, tc := range []struct {
		key  string
		want bool
	}{
		{"", false},
		{"a", true},
		{strings.Repeat("a", 255), true},
		{strings.Repeat("a", 256), false},
		{"8e03978e-40d5-43e8-bc93-6894a57f9324", true},
		{"a b", false},    // 0x20
		{"a!~b", true},    // 0x21, 0x7e
		{"a\x7fb", false}, // DEL
		{"a\nb", false},
		{"ключ", false},
	} {
		if got := idempotency.ValidKey(tc.key); got != tc.want {
			t.Errorf("ValidKey(%q) = %v, want %v", tc.key, got, tc.want)
		}
	}
}
