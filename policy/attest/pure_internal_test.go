package attest

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"strings"
	"testing"

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
