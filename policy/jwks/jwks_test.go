package jwks

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func TestParse(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	ed, _, _ := ed25519.GenerateKey(rand.Reader)
	ecJWK := map[string]string{"kty": "EC", "kid": "ec", "crv": "P-256", "x": b64(ec.X.FillBytes(make([]byte, 32))), "y": b64(ec.Y.FillBytes(make([]byte, 32)))}
	rsaJWK := map[string]string{"kty": "RSA", "kid": "rsa", "n": b64(rk.N.Bytes()), "e": b64(big.NewInt(int64(rk.E)).Bytes())}
	edJWK := map[string]string{"kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": b64(ed)}
	doc := func(keys ...map[string]string) []byte {
		b, _ := json.Marshal(map[string]any{"keys": keys})
		return b
	}
	with := func(m map[string]string, kv ...string) map[string]string {
		out := map[string]string{}
		for k, v := range m {
			out[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			out[kv[i]] = kv[i+1]
		}
		return out
	}
	cases := []struct {
		name string
		doc  []byte
		kids []string
		err  string
	}{
		{"ec rsa okp", doc(ecJWK, rsaJWK, edJWK), []string{"ec", "rsa", "ed"}, ""},
		{"encryption keys skipped", doc(ecJWK, with(rsaJWK, "use", "enc")), []string{"ec"}, ""},
		{"unknown kty skipped", doc(ecJWK, map[string]string{"kty": "oct", "kid": "h", "k": "c2VjcmV0"}), []string{"ec"}, ""},
		{"not json", []byte("{"), nil, "jwks:"},
		{"no usable key", doc(with(rsaJWK, "use", "enc")), nil, "no usable signing keys"},
		{"short rsa", doc(map[string]string{"kty": "RSA", "kid": "s", "n": b64(small.N.Bytes()), "e": "AQAB"}), nil, "shorter than 2048"},
		{"point off the curve", doc(with(ecJWK, "y", b64(make([]byte, 32)))), nil, "EC point"},
		{"unknown curve", doc(with(ecJWK, "crv", "P-192")), nil, "unsupported curve"},
		{"bad base64", doc(with(rsaJWK, "n", "!!")), nil, "base64url"},
		{"bad ed25519", doc(with(edJWK, "x", b64([]byte("short")))), nil, "Ed25519"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			keys, err := Parse(tc.doc)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(keys) != len(tc.kids) {
				t.Fatalf("keys %v, want %v", keys, tc.kids)
			}
			for _, k := range tc.kids {
				if _, ok := keys[k]; !ok {
					t.Errorf("missing %s", k)
				}
			}
		})
	}
}

// TestUnknownKidRefresh: a flood of lookups for an unknown kid costs one fetch (single
// flight, rate limited); a published key is found after one refresh.
func TestUnknownKidRefresh(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jwk := func(kid string) map[string]string {
		return map[string]string{"kty": "EC", "kid": kid, "crv": "P-256", "x": b64(ec.X.FillBytes(make([]byte, 32))), "y": b64(ec.Y.FillBytes(make([]byte, 32)))}
	}
	var fetches atomic.Int32
	var published atomic.Value
	published.Store([]map[string]string{jwk("a")})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		time.Sleep(20 * time.Millisecond)
		json.NewEncoder(w).Encode(map[string]any{"keys": published.Load()})
	}))
	defer srv.Close()
	s, err := New(Options{URL: srv.URL, MinRefresh: time.Hour, Refresh: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	// Wait for the background fetch at start; only a fetch that never happens takes 30s.
	deadline := time.Now().Add(30 * time.Second)
	for s.set.Load() == nil {
		if time.Now().After(deadline) {
			t.Fatal("initial fetch did not happen")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := s.Lookup(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	base := fetches.Load()
	done := make(chan error, 50)
	for i := 0; i < 50; i++ {
		go func() { _, err := s.Lookup(ctx, "made-up"); done <- err }()
	}
	for i := 0; i < 50; i++ {
		if err := <-done; !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("unknown kid: %v", err)
		}
	}
	if n := fetches.Load() - base; n != 1 {
		t.Fatalf("%d fetches for a flood of unknown kids, want 1", n)
	}
	// Rate limited: a second unknown kid within min_refresh does not fetch.
	published.Store([]map[string]string{jwk("a"), jwk("b")})
	if _, err := s.Lookup(ctx, "b"); !errors.Is(err, ErrUnknownKey) || fetches.Load()-base != 1 {
		t.Fatalf("refresh not rate limited: %v, %d fetches", err, fetches.Load()-base)
	}
}

func TestUnavailable(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	s, err := New(Options{URL: srv.URL, MinRefresh: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Lookup(context.Background(), "a"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("want ErrUnavailable, got %v", err)
	}
	if _, err := New(Options{File: "/nonexistent/jwks.json"}); err == nil {
		t.Fatal("a missing file must fail at load")
	}
}
