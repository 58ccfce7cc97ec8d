// Package pitest makes Play Integrity tokens for tests, as Google's servers do: a JWS
// (ES256) signed with a P-256 key, encrypted into a JWE (A256KW, A256GCM) with a 32-byte
// AES key. Keys are generated per test; nothing is fixed or shared.
package pitest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy/attest/playintegrity"
	jose "github.com/go-jose/go-jose/v4"
)

// Keys are one app's key pair as the Play Console holds them, with the signing side.
type Keys struct {
	Decryption []byte            // AES-256 key
	Signing    *ecdsa.PrivateKey // Google's signing key; its public half verifies
}

// NewKeys generates fresh keys.
func NewKeys(t testing.TB) *Keys {
	t.Helper()
	k := &Keys{Decryption: make([]byte, 32)}
	rand.Read(k.Decryption)
	var err error
	if k.Signing, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	return k
}

// Verifier returns the keys the verifier holds.
func (k *Keys) Verifier() playintegrity.Keys {
	return playintegrity.Keys{Decryption: k.Decryption, Verification: &k.Signing.PublicKey}
}

// DecryptionText is the decryption key as the Play Console shows it: base64.
func (k *Keys) DecryptionText() string { return base64.StdEncoding.EncodeToString(k.Decryption) }

// VerificationText is the verification key as the Play Console shows it: base64 DER.
func (k *Keys) VerificationText(t testing.TB) string {
	return base64.StdEncoding.EncodeToString(k.der(t))
}

// VerificationPEM is the verification key in PEM.
func (k *Keys) VerificationPEM(t testing.TB) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: k.der(t)}))
}

func (k *Keys) der(t testing.TB) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(&k.Signing.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// Payload is a verdict as JSON-ready maps, so tests can drop or bend any field.
type Payload map[string]any

// Cert is a signing-certificate digest as the token lists it (base64url, no padding) and
// as configuration lists it (hex).
func Cert(seed string) (token, hexDigest string) {
	sum := sha256.Sum256([]byte(seed))
	return base64.RawURLEncoding.EncodeToString(sum[:]), hexString(sum[:])
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

// Binding is base64url(SHA-256(method "\n" target "\n" value)), as an app computes it;
// spelled out here rather than taken from the package under test.
func Binding(method, target, value string) string {
	sum := sha256.Sum256([]byte(method + "\n" + target + "\n" + value))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// Good is a passing standard-request verdict for pkg, issued at ts, bound to binding,
// from a device meeting device integrity, signed by the certificate Cert("release").
func Good(pkg, binding string, ts time.Time) Payload {
	cert, _ := Cert("release")
	return Payload{
		"requestDetails": map[string]any{"requestPackageName": pkg, "requestHash": binding,
			"timestampMillis": strconv.FormatInt(ts.UnixMilli(), 10)},
		"appIntegrity": map[string]any{"appRecognitionVerdict": "PLAY_RECOGNIZED", "packageName": pkg,
			"certificateSha256Digest": []string{cert}, "versionCode": "42"},
		"deviceIntegrity":    map[string]any{"deviceRecognitionVerdict": []string{"MEETS_DEVICE_INTEGRITY"}},
		"accountDetails":     map[string]any{"appLicensingVerdict": "LICENSED"},
		"environmentDetails": map[string]any{"playProtectVerdict": "NO_ISSUES"},
	}
}

// Set replaces the field at section.name and returns p.
func (p Payload) Set(section, name string, v any) Payload {
	m, _ := p[section].(map[string]any)
	if m == nil {
		m = map[string]any{}
		p[section] = m
	}
	if v == nil {
		delete(m, name)
	} else {
		m[name] = v
	}
	return p
}

// Token signs and encrypts p with k.
func Token(t testing.TB, k *Keys, p Payload) string {
	t.Helper()
	body, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return TokenRaw(t, k, body, jose.ES256, jose.A256KW, jose.A256GCM)
}

// TokenRaw signs body with alg and encrypts it with keyAlg and enc, using k's keys when
// they fit the algorithms and fresh ones otherwise (for the algorithm-confusion tests).
func TokenRaw(t testing.TB, k *Keys, body []byte, alg jose.SignatureAlgorithm, keyAlg jose.KeyAlgorithm, enc jose.ContentEncryption) string {
	t.Helper()
	return Encrypt(t, k, []byte(Sign(t, k, body, alg)), keyAlg, enc)
}

// Sign returns body signed with alg as a compact JWS (HS256 with the decryption key).
func Sign(t testing.TB, k *Keys, body []byte, alg jose.SignatureAlgorithm) string {
	t.Helper()
	var sigKey any = k.Signing
	if alg == jose.HS256 {
		sigKey = k.Decryption
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: sigKey}, nil)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign(body)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Encrypt encrypts plaintext into a compact JWE with keyAlg and enc.
func Encrypt(t testing.TB, k *Keys, plaintext []byte, keyAlg jose.KeyAlgorithm, enc jose.ContentEncryption) string {
	t.Helper()
	var key any = k.Decryption
	switch keyAlg {
	case jose.RSA_OAEP, jose.RSA_OAEP_256:
		rk, err := rsaKey()
		if err != nil {
			t.Fatal(err)
		}
		key = &rk.PublicKey
	case jose.A128KW:
		key = k.Decryption[:16]
	case jose.DIRECT:
		key = k.Decryption[:encKeyLen(enc)]
	}
	e, err := jose.NewEncrypter(enc, jose.Recipient{Algorithm: keyAlg, Key: key}, nil)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := e.Encrypt(plaintext)
	if err != nil {
		t.Fatal(err)
	}
	s, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func encKeyLen(enc jose.ContentEncryption) int {
	switch enc {
	case jose.A128GCM:
		return 16
	case jose.A192GCM:
		return 24
	}
	return 32
}

// rsaKey is one RSA key per test binary: generating one is slow.
var rsaKey = sync.OnceValues(func() (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, 2048) })
