package attest

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/binary"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/golang-jwt/jwt/v5"
)

// TestValidDeviceID: printable ASCII without spaces or commas, 1 to 128 bytes.
func TestValidDeviceID(t *testing.T) {
	for id, want := range map[string]bool{
		"a": true, "~": true, "!": true, "dev-1_A.b:c/d": true,
		strings.Repeat("x", 128): true, strings.Repeat("x", 129): false,
		"": false, " ": false, "a b": false, "a,b": false, "a\x7f": false, "a\x00": false, "é": false, "\t": false,
	} {
		if got := ValidDeviceID(id); got != want {
			t.Errorf("ValidDeviceID(%q) = %v, want %v", id, got, want)
		}
	}
}

// TestVersions: parsing and ordering of app versions.
func TestVersions(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		less bool // a < b
	}{
		{"2.3.0", "2.3.1", true}, {"2.3.1", "2.3.0", false}, {"2.3", "2.3.0", false}, {"2.3.0", "2.3", false},
		{"v2.3.0", "2.3.0", false}, {"2.3.0-beta", "2.3.0", true}, {"2.3.0", "2.3.0-beta", false},
		{"2.3.0+build.7", "2.3.0", false}, {"1.9", "1.10", true}, {"2", "10", true}, {"2.0.0.1", "2", false},
		{"2.2.99-rc.1", "2.3-beta", true},
		{"2.3-beta", "2.3.0-beta", false}, {"2.3.0-beta", "2.3-beta", false}, // trailing zeros do not count
	} {
		a, err1 := ParseVersion(tc.a)
		b, err2 := ParseVersion(tc.b)
		if err1 != nil || err2 != nil {
			t.Fatalf("%s, %s: %v %v", tc.a, tc.b, err1, err2)
		}
		if got := a.Less(b); got != tc.less {
			t.Errorf("%s < %s = %v, want %v", tc.a, tc.b, got, tc.less)
		}
	}
	for _, bad := range []string{"", "v", "2.x", "2..3", "-1.0", "2.3-", "beta"} {
		if _, err := ParseVersion(bad); err == nil {
			t.Errorf("ParseVersion(%q) accepted", bad)
		}
	}
}

// TestClaimHelpers: dotted claim paths, verdict flags and certificate digests.
func TestClaimHelpers(t *testing.T) {
	claims := jwt.MapClaims{"a": map[string]any{"b": map[string]any{"c": true}}, "x.y": "flat", "n": 1.0}
	for path, want := range map[string]any{"a.b.c": true, "x.y": "flat", "a.z": nil, "n.m": nil, "": nil, "missing": nil} {
		if got := claim(claims, path); got != want {
			t.Errorf("claim(%q) = %v, want %v", path, got, want)
		}
	}
	for _, tc := range []struct {
		v    any
		want bool
	}{{true, true}, {false, false}, {"true", true}, {"1", true}, {"no", false}, {1.0, true}, {0.0, false}, {-1.0, true}, {nil, false}, {[]any{true}, false}} {
		if got := truthy(tc.v); got != tc.want {
			t.Errorf("truthy(%v) = %v, want %v", tc.v, got, tc.want)
		}
	}
	if got := NormalizeCert(" AA:bb cc:DD "); got != "aabbccdd" {
		t.Errorf("NormalizeCert = %q", got)
	}
}

// TestKinds: spellings and default headers of the provider kinds.
func TestKinds(t *testing.T) {
	for k, want := range map[Kind][2]string{
		SignedToken:      {"signed_token", "x-attestation-token"},
		FirebaseAppCheck: {"firebase_app_check", "x-firebase-appcheck"},
		Approov:          {"approov", "approov-token"},
		PlayIntegrity:    {"play_integrity", "x-play-integrity"},
	} {
		if k.String() != want[0] || k.DefaultHeader() != want[1] {
			t.Errorf("%d: %q %q", k, k.String(), k.DefaultHeader())
		}
		if got, err := ParseKind(want[0]); err != nil || got != k {
			t.Errorf("ParseKind(%q) = %v %v", want[0], got, err)
		}
	}
	if Kind(9).String() != "kind(9)" {
		t.Errorf("Kind(9) = %q", Kind(9).String())
	}
	if _, err := ParseKind("SignedToken"); err == nil {
		t.Error("ParseKind accepted a wrong spelling")
	}
	p := New(Config{Kind: Approov})
	if p.Header() != "approov-token" || p.Kind() != Approov || p.Name() != "approov" || p.c.MaxTokenBytes != DefaultMaxTokenBytes {
		t.Errorf("defaults: %q %v %q %d", p.Header(), p.Kind(), p.Name(), p.c.MaxTokenBytes)
	}
}

// TestKeyFits: each algorithm accepts only its key type and curve.
func TestKeyFits(t *testing.T) {
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	rsaPub := &rsa.PublicKey{}
	for _, tc := range []struct {
		alg  string
		key  any
		want bool
	}{
		{"RS256", rsaPub, true}, {"PS256", rsaPub, true}, {"RS256", &p256.PublicKey, false},
		{"ES256", &p256.PublicKey, true}, {"ES256", &p384.PublicKey, false}, {"ES384", &p384.PublicKey, true},
		{"ES512", &p521.PublicKey, true}, {"ES512", &p256.PublicKey, false}, {"ES256", rsaPub, false}, {"ES999", &p256.PublicKey, false},
		{"EdDSA", edPub, true}, {"EdDSA", rsaPub, false}, {"HS256", []byte("k"), false},
	} {
		if got := fits(tc.alg, tc.key); got != tc.want {
			t.Errorf("fits(%s, %T) = %v, want %v", tc.alg, tc.key, got, tc.want)
		}
	}
}

// TestMemoryReplay: an id is a replay until its time, fresh again from that instant, and a
// full damper refuses to forget.
func TestMemoryReplay(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	r := NewMemoryReplay(0)
	id := policy.CacheKey("jti", "1")
	ctx := context.Background()
	for _, tc := range []struct {
		at   time.Time
		seen bool
	}{{t0, false}, {t0.Add(time.Minute - 1), true}, {t0.Add(time.Minute), false}} {
		seen, err := r.Seen(ctx, tc.at, id, t0.Add(time.Minute))
		if err != nil || seen != tc.seen {
			t.Fatalf("at t0%+v: seen %v %v, want %v", tc.at.Sub(t0), seen, err, tc.seen)
		}
	}
	small := NewMemoryReplay(replayShards) // one id per shard
	var full error
	var stored []policy.Hash
	for i := 0; i < 4*replayShards && full == nil; i++ {
		k := policy.CacheKey("jti", string(rune('a'+i)))
		if _, full = small.Seen(ctx, t0, k, t0.Add(time.Hour)); full == nil {
			stored = append(stored, k)
		}
	}
	if !errors.Is(full, ErrReplayFull) {
		t.Fatalf("a full damper answered %v, want ErrReplayFull", full)
	}
	// From the expiry instant on, the ids are swept and room is made: each is new again.
	for _, k := range stored {
		if seen, err := small.Seen(ctx, t0.Add(time.Hour), k, t0.Add(2*time.Hour)); seen || err != nil {
			t.Fatalf("after expiry: seen %v, %v", seen, err)
		}
	}
}

// TestCredential: a credential header present once, trimmed; empty or repeated (merged by
// Envoy with commas) is present but unusable.
func TestCredential(t *testing.T) {
	for _, tc := range []struct {
		value          string // "-": absent
		want           string
		present, valid bool
	}{
		{"-", "", false, false}, {"tok", "tok", true, true}, {" tok ", "tok", true, true},
		{"", "", true, false}, {"  ", "", true, false}, {"a,b", "", true, false}, {",tok", "", true, false}, {"tok,", "", true, false},
	} {
		in := &policy.Input{Headers: map[string]string{}}
		if tc.value != "-" {
			in.Headers["x-c"] = tc.value
		}
		v, present, ok := Credential(in, "x-c")
		if v != tc.want || present != tc.present || ok != tc.valid {
			t.Errorf("%q: %q %v %v, want %q %v %v", tc.value, v, present, ok, tc.want, tc.present, tc.valid)
		}
	}
}

// shardIDs returns n distinct ids that land in shard 0 of a MemoryReplay.
func shardIDs(n int) []policy.Hash {
	var out []policy.Hash
	for i := 0; len(out) < n; i++ {
		id := policy.CacheKey("shard", strconv.Itoa(i))
		if binary.LittleEndian.Uint64(id[:8])%replayShards == 0 {
			out = append(out, id)
		}
	}
	return out
}

// TestReplayShardBounds: the default size, a shard full at exactly its maximum, and
// expired ids swept only every 1024 inserts or when the shard is full.
func TestReplayShardBounds(t *testing.T) {
	if r := NewMemoryReplay(0); r.max != (1<<20)/replayShards {
		t.Errorf("default per-shard maximum %d, want %d", r.max, (1<<20)/replayShards)
	}
	t0 := time.Unix(1_800_000_000, 0)
	ctx := context.Background()
	ids := shardIDs(1026)
	one := NewMemoryReplay(replayShards) // one id per shard
	if _, err := one.Seen(ctx, t0, ids[0], t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := one.Seen(ctx, t0, ids[1], t0.Add(time.Hour)); !errors.Is(err, ErrReplayFull) {
		t.Fatalf("second id in a shard of one: %v, want ErrReplayFull", err)
	}
	r := NewMemoryReplay(0)
	sh := &r.shards[0]
	for i := 0; i < 1023; i++ { // expire at t0+1s, never swept before the 1024th insert
		r.Seen(ctx, t0, ids[i], t0.Add(time.Second))
	}
	if len(sh.ids) != 1023 {
		t.Fatalf("%d ids before the sweep, want 1023", len(sh.ids))
	}
	r.Seen(ctx, t0.Add(2*time.Second), ids[1023], t0.Add(time.Hour)) // the 1024th: sweeps
	if len(sh.ids) != 1 {
		t.Fatalf("%d ids after the sweep, want 1", len(sh.ids))
	}
	r.Seen(ctx, t0.Add(2*time.Second), ids[1024], t0.Add(3*time.Second))
	r.Seen(ctx, t0.Add(4*time.Second), ids[1025], t0.Add(time.Hour)) // expired ids[1024] stays until the next sweep
	if len(sh.ids) != 3 {
		t.Fatalf("%d ids between sweeps, want 3", len(sh.ids))
	}
}
