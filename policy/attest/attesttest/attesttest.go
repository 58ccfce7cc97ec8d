// Package attesttest mints attestation tokens for tests: keys generated in the test, JWKS
// documents for their public halves, and signed tokens for every provider kind. Only
// tests import it; it is not part of the gatehouse binary.
package attesttest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/netip"
	"testing"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/golang-jwt/jwt/v5"
)

// Key is a generated signing key.
type Key struct {
	ID      string
	Alg     string // ES256, RS256 or EdDSA
	Private crypto.Signer
}

// NewKey generates a key for alg (ES256, RS256 or EdDSA).
func NewKey(tb testing.TB, alg, kid string) *Key {
	tb.Helper()
	var (
		k   crypto.Signer
		err error
	)
	switch alg {
	case "ES256":
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "RS256":
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	case "EdDSA":
		_, k, err = ed25519.GenerateKey(rand.Reader)
	default:
		tb.Fatalf("attesttest: unsupported alg %q", alg)
	}
	if err != nil {
		tb.Fatal(err)
	}
	return &Key{ID: kid, Alg: alg, Private: k}
}

// JWK returns the public half of k as a JWK.
func (k *Key) JWK() map[string]string {
	b := base64.RawURLEncoding.EncodeToString
	m := map[string]string{"kid": k.ID, "alg": k.Alg, "use": "sig"}
	switch p := k.Private.Public().(type) {
	case *ecdsa.PublicKey:
		raw, _ := p.Bytes()
		m["kty"], m["crv"], m["x"], m["y"] = "EC", "P-256", b(raw[1:33]), b(raw[33:])
	case *rsa.PublicKey:
		m["kty"], m["n"], m["e"] = "RSA", b(p.N.Bytes()), b(big.NewInt(int64(p.E)).Bytes())
	case ed25519.PublicKey:
		m["kty"], m["crv"], m["x"] = "OKP", "Ed25519", b(p)
	}
	return m
}

// JWKS returns a JWKS document with the public halves of keys.
func JWKS(keys ...*Key) []byte {
	list := make([]map[string]string, len(keys))
	for i, k := range keys {
		list[i] = k.JWK()
	}
	b, _ := json.Marshal(map[string]any{"keys": list})
	return b
}

// Claims are a token's claims.
type Claims = jwt.MapClaims

// Sign signs claims with k; header entries are added to the JOSE header (kid is k's id
// unless header sets it; a nil value removes an entry).
func Sign(tb testing.TB, k *Key, claims Claims, header map[string]any) string {
	tb.Helper()
	var m jwt.SigningMethod
	switch k.Alg {
	case "ES256":
		m = jwt.SigningMethodES256
	case "RS256":
		m = jwt.SigningMethodRS256
	case "EdDSA":
		m = jwt.SigningMethodEdDSA
	}
	t := jwt.NewWithClaims(m, claims)
	t.Header["kid"] = k.ID
	setHeader(t, header)
	s, err := t.SignedString(k.Private)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// SignHS256 signs claims with an HMAC secret (Approov-style tokens, and alg confusion).
func SignHS256(tb testing.TB, secret []byte, claims Claims, header map[string]any) string {
	tb.Helper()
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	setHeader(t, header)
	s, err := t.SignedString(secret)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// Unsigned returns an alg "none" token.
func Unsigned(tb testing.TB, claims Claims, header map[string]any) string {
	tb.Helper()
	t := jwt.NewWithClaims(jwt.SigningMethodNone, claims)
	setHeader(t, header)
	s, err := t.SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func setHeader(t *jwt.Token, header map[string]any) {
	for k, v := range header {
		if v == nil {
			delete(t.Header, k)
		} else {
			t.Header[k] = v
		}
	}
}

// Pay returns the Approov binding claim for a header value: base64(SHA-256(value)).
func Pay(value string) string {
	sum := sha256.Sum256([]byte(value))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// With returns a copy of base with the claim name/value pairs of kv applied; a nil value
// removes the claim.
func With(base Claims, kv ...any) Claims {
	out := Claims{}
	for k, v := range base {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
		} else {
			out[kv[i].(string)] = kv[i+1]
		}
	}
	return out
}

// Request is a GET of path by app (its x-app-token) from Envoy source address source
// (none when empty), with extra header name/value pairs.
func Request(app, path, source string, kv ...string) *policy.Input {
	in := &policy.Input{Method: "GET", Path: path, RawPath: path, Headers: map[string]string{"x-app-token": app}, BodySize: -1}
	if source != "" {
		in.Source = netip.MustParseAddr(source)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		in.Headers[kv[i]] = kv[i+1]
	}
	return in
}

// Want fails the test unless d carries code (empty: unless d allowed the request).
func Want(tb testing.TB, d policy.Decision, code policy.Code) {
	tb.Helper()
	if code == "" {
		if !d.Allowed() {
			tb.Fatalf("denied %s at step %s (message %q, cause %q), want allowed", d.Code, d.Step, d.Message, d.Cause)
		}
		return
	}
	if d.Allowed() || d.Code != code {
		tb.Fatalf("got outcome %d code %q at step %s (message %q, cause %q), want %s", d.Outcome, d.Code, d.Step, d.Message, d.Cause, code)
	}
}
