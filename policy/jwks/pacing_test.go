package jwks

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

// keyServer is a loopback JWKS server that counts fetches and answers 500, the key set,
// or holds the request until released.
type keyServer struct {
	*httptest.Server
	fetches atomic.Int64
	mode    atomic.Int32 // 0: 500, 1: serve the set, 2: hold until release, then serve
	release chan struct{}
	doc     []byte
}

func newKeyServer(t *testing.T) *keyServer {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := json.Marshal(map[string]any{"keys": []map[string]string{{"kty": "EC", "kid": "k1", "crv": "P-256",
		"x": b64(ec.X.FillBytes(make([]byte, 32))), "y": b64(ec.Y.FillBytes(make([]byte, 32)))}}})
	ks := &keyServer{release: make(chan struct{}), doc: doc}
	ks.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ks.fetches.Add(1)
		switch ks.mode.Load() {
		case 0:
			http.Error(w, "down", http.StatusInternalServerError)
			return
		case 2:
			<-ks.release
		}
		w.Write(ks.doc)
	}))
	t.Cleanup(ks.Close)
	return ks
}

// newPaced returns a URL source on ks with the fake clock, and a channel that receives
// every fetch's outcome (the test waits on it, never on time).
func newPaced(t *testing.T, ks *keyServer, clk *fakeClock, wait time.Duration) (*Source, chan error) {
	fetched := make(chan error, 1000)
	s, err := New(Options{URL: ks.URL, Refresh: 1000 * time.Hour, MinRefresh: 30 * time.Second, MaxBackoff: 2 * time.Minute,
		Wait: wait, Now: clk.Now, OnFetch: func(err error) { fetched <- err }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, fetched
}

func lookupAll(s *Source, n int, kid string) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Add(1)
		go func() { defer wg.Done(); _, errs[i] = s.Lookup(context.Background(), kid) }()
	}
	wg.Wait()
	return errs
}

// TestNeverLoadedSetIsPaced: a key set that never loaded is fetched at most once per
// min_refresh however many requests arrive, with the pause doubling after each failure
// up to max_backoff; each boundary is tested at the exact instant and one nanosecond
// before. Once the server recovers, the set loads and the pacing resets.
func TestNeverLoadedSetIsPaced(t *testing.T) {
	ks := newKeyServer(t)
	t0 := time.Unix(1_750_000_000, 0)
	clk := &fakeClock{t: t0}
	s, fetched := newPaced(t, ks, clk, time.Hour) // waits until each fetch ends
	if err := <-fetched; err == nil {
		t.Fatal("the start-up fetch of a failing server succeeded")
	}
	for _, err := range lookupAll(s, 50, "k1") {
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("lookup while down: %v, want ErrUnavailable", err)
		}
	}
	if n := ks.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches after a flood on a never-loaded set, want 1", n)
	}
	// Hand-typed schedule: fetch 1 failed at t0; pauses 30s, 60s, 120s, 120s (capped).
	steps := []struct {
		at      time.Duration
		fetches int64
	}{
		{30*time.Second - 1, 1}, {30 * time.Second, 2},
		{90*time.Second - 1, 2}, {90 * time.Second, 3},
		{210*time.Second - 1, 3}, {210 * time.Second, 4},
		{330*time.Second - 1, 4}, {330 * time.Second, 5},
		{450*time.Second - 1, 5},
	}
	for _, st := range steps {
		clk.Set(t0.Add(st.at))
		for _, err := range lookupAll(s, 20, "k1") {
			if !errors.Is(err, ErrUnavailable) {
				t.Fatalf("at +%v: %v, want ErrUnavailable", st.at, err)
			}
		}
		if n := ks.fetches.Load(); n != st.fetches {
			t.Fatalf("at +%v: %d fetches, want %d", st.at, n, st.fetches)
		}
	}
	// The server recovers: the next allowed fetch loads the set.
	ks.mode.Store(1)
	clk.Set(t0.Add(450 * time.Second))
	for _, err := range lookupAll(s, 20, "k1") {
		if err != nil {
			t.Fatalf("after recovery: %v", err)
		}
	}
	if n := ks.fetches.Load(); n != 6 {
		t.Fatalf("%d fetches after recovery, want 6", n)
	}
	// Pacing reset to min_refresh: unknown kids refresh again 30s after the success.
	clk.Set(t0.Add(480*time.Second - 1))
	for _, err := range lookupAll(s, 20, "made-up") {
		if !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("unknown kid: %v", err)
		}
	}
	if n := ks.fetches.Load(); n != 6 {
		t.Fatalf("%d fetches 1ns before min_refresh, want 6", n)
	}
	clk.Set(t0.Add(480 * time.Second))
	lookupAll(s, 20, "made-up")
	if n := ks.fetches.Load(); n != 7 {
		t.Fatalf("%d fetches at min_refresh, want 7", n)
	}
}

// TestLookupWaitIsBounded: a request waits for a fetch at most Wait, then gets
// ErrUnavailable (and the fail mode decides); the fetch goes on and serves later
// requests without another fetch. A request whose context is done does not wait at all.
func TestLookupWaitIsBounded(t *testing.T) {
	ks := newKeyServer(t)
	ks.mode.Store(2) // hold every fetch
	clk := &fakeClock{t: time.Unix(1_750_000_000, 0)}
	s, fetched := newPaced(t, ks, clk, time.Millisecond)
	for _, err := range lookupAll(s, 20, "k1") {
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("lookup during a held fetch: %v, want ErrUnavailable", err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Lookup(ctx, "k1"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("lookup with a done context: %v", err)
	}
	close(ks.release)
	if err := <-fetched; err != nil {
		t.Fatal(err)
	}
	if _, err := s.Lookup(context.Background(), "k1"); err != nil {
		t.Fatalf("after the held fetch ended: %v", err)
	}
	if n := ks.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches, want 1 (requests joined the start-up fetch)", n)
	}
}
