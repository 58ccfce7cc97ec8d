package jwks

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// TestParseBounds: the limits on key material, at the exact value and one unit either side.
func TestParseBounds(t *testing.T) {
	pow := func(bits uint) string { return b64(new(big.Int).Lsh(big.NewInt(1), bits).Bytes()) }
	exp := func(e int64) string { return b64(big.NewInt(e).Bytes()) }
	rsa := func(n, e string) map[string]string {
		return map[string]string{"kty": "RSA", "kid": "r", "n": n, "e": e}
	}
	ecKey := func(c elliptic.Curve, crv string) map[string]string {
		k, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		size := (c.Params().BitSize + 7) / 8
		return map[string]string{"kty": "EC", "kid": crv, "crv": crv, "x": b64(k.X.FillBytes(make([]byte, size))), "y": b64(k.Y.FillBytes(make([]byte, size)))}
	}
	p256 := ecKey(elliptic.P256(), "P-256")
	long := map[string]string{"kty": "EC", "kid": "l", "crv": "P-256", "x": b64(append([]byte{1}, make([]byte, 32)...)), "y": p256["y"]}
	for _, tc := range []struct {
		name string
		key  map[string]string
		err  string // empty: parses
	}{
		{"rsa_2048_bits", rsa(pow(2047), "AQAB"), ""},
		{"rsa_2047_bits", rsa(pow(2046), "AQAB"), "shorter than 2048"},
		{"rsa_e_3", rsa(pow(2047), exp(3)), ""},
		{"rsa_e_2", rsa(pow(2047), exp(2)), "bad RSA exponent"},
		{"rsa_e_2^31", rsa(pow(2047), exp(1<<31)), ""},
		{"rsa_e_2^31+1", rsa(pow(2047), exp(1<<31+1)), "bad RSA exponent"},
		{"rsa_e_huge", rsa(pow(2047), pow(80)), "bad RSA exponent"},
		{"rsa_empty_n", rsa("", "AQAB"), "bad base64url integer"},
		{"ec_p256", p256, ""},
		{"ec_p384", ecKey(elliptic.P384(), "P-384"), ""},
		{"ec_p521", ecKey(elliptic.P521(), "P-521"), ""},
		{"ec_coordinate_too_long", long, "too long"},
		{"okp_other_curve", map[string]string{"kty": "OKP", "kid": "o", "crv": "X25519", "x": b64(make([]byte, 32))}, "unsupported OKP curve"},
		{"use_sig", map[string]string{"kty": "RSA", "kid": "r", "n": pow(2047), "e": "AQAB", "use": "sig"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc, _ := json.Marshal(map[string]any{"keys": []map[string]string{tc.key}})
			keys, err := Parse(doc)
			if tc.err == "" {
				if err != nil || len(keys) != 1 {
					t.Fatalf("keys %v, err %v", keys, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err %v, want %q", err, tc.err)
			}
		})
	}
}

// TestLookupWithoutKid: a token without kid is verified only against a set of one key.
func TestLookupWithoutKid(t *testing.T) {
	one := NewStatic(Key{ID: "a", Key: "k"})
	if k, err := one.Lookup(context.Background(), ""); err != nil || k.ID != "a" {
		t.Fatalf("one key: %v %v", k, err)
	}
	two := NewStatic(Key{ID: "a"}, Key{ID: "b"})
	if _, err := two.Lookup(context.Background(), ""); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("two keys: %v, want ErrUnknownKey", err)
	}
	if _, err := two.Lookup(context.Background(), "c"); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("unknown kid: %v, want ErrUnknownKey", err)
	}
}

// TestFileSourceRefreshesOnUnknownKid: a key added to the file is found by the lookup that
// names it; a source with a set older than MaxAge answers ErrUnavailable.
func TestFileSourceRefreshesOnUnknownKid(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jwk := func(kid string) map[string]string {
		return map[string]string{"kty": "EC", "kid": kid, "crv": "P-256", "x": b64(k.X.FillBytes(make([]byte, 32))), "y": b64(k.Y.FillBytes(make([]byte, 32)))}
	}
	path := filepath.Join(t.TempDir(), "jwks.json")
	write := func(kids ...string) {
		var keys []map[string]string
		for _, kid := range kids {
			keys = append(keys, jwk(kid))
		}
		b, _ := json.Marshal(map[string]any{"keys": keys})
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("a")
	var fetches []error
	s, err := New(Options{File: path, OnFetch: func(err error) { fetches = append(fetches, err) }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	write("a", "b")
	if k, err := s.Lookup(context.Background(), "b"); err != nil || k.ID != "b" {
		t.Fatalf("added key: %v %v", k, err)
	}
	if len(fetches) != 2 || fetches[0] != nil || fetches[1] != nil {
		t.Fatalf("fetches %v, want two successful", fetches)
	}
	s.o.MaxAge = time.Hour
	s.set.Store(&keySet{keys: s.set.Load().keys, fetched: time.Now().Add(-2 * time.Hour)})
	s.o.File = "" // no refresh possible
	if _, err := s.Lookup(context.Background(), "a"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("stale set: %v, want ErrUnavailable", err)
	}
	for _, o := range []Options{{}, {File: path, URL: "https://x.test"}} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
}

// TestDefaults: the documented defaults, and given values kept.
func TestDefaults(t *testing.T) {
	path := filepath.Join(t.TempDir(), "jwks.json")
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	b, _ := json.Marshal(map[string]any{"keys": []map[string]string{{"kty": "EC", "kid": "a", "crv": "P-256",
		"x": b64(k.X.FillBytes(make([]byte, 32))), "y": b64(k.Y.FillBytes(make([]byte, 32)))}}})
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{File: path})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s.o.Refresh != 10*time.Minute || s.o.MinRefresh != 30*time.Second || s.o.Client.Timeout != 5*time.Second {
		t.Errorf("defaults: refresh %v, min refresh %v, client timeout %v", s.o.Refresh, s.o.MinRefresh, s.o.Client.Timeout)
	}
	given, err := New(Options{File: path, Refresh: time.Second, MinRefresh: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	given.Close()
	if given.o.Refresh != time.Second || given.o.MinRefresh != time.Millisecond {
		t.Errorf("given: refresh %v, min refresh %v", given.o.Refresh, given.o.MinRefresh)
	}
}

// TestFetchSpan: a fetch makes a client span whose status is Error only when it failed.
func TestFetchSpan(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	prev := tracer
	tracer = tp.Tracer("jwks-test")
	defer func() { tracer = prev }()
	missing := &Source{o: Options{File: filepath.Join(t.TempDir(), "missing.json"), Now: time.Now}}
	if err := missing.refresh(context.Background()); err == nil {
		t.Fatal("a missing file refreshed")
	}
	dir := t.TempDir()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	b, _ := json.Marshal(map[string]any{"keys": []map[string]string{{"kty": "EC", "kid": "a", "crv": "P-256",
		"x": b64(k.X.FillBytes(make([]byte, 32))), "y": b64(k.Y.FillBytes(make([]byte, 32)))}}})
	if err := os.WriteFile(filepath.Join(dir, "k.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	ok := &Source{o: Options{File: filepath.Join(dir, "k.json"), Now: time.Now}}
	if err := ok.refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans := rec.Ended()
	if len(spans) != 2 || spans[0].Name() != "gatehouse.jwks.fetch" {
		t.Fatalf("%d spans", len(spans))
	}
	if spans[0].Status().Code != codes.Error || spans[1].Status().Code != codes.Unset {
		t.Errorf("statuses %v, %v; want Error, Unset", spans[0].Status().Code, spans[1].Status().Code)
	}
	for i, want := range []string{"fetch_failed", ""} {
		got := ""
		for _, a := range spans[i].Attributes() {
			if a.Key == "error.type" {
				got = a.Value.AsString()
			}
		}
		if got != want {
			t.Errorf("span %d: error.type %q, want %q", i, got, want)
		}
	}
}
