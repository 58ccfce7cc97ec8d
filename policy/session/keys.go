package session

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"sort"
)

// Key is one signing key of a key set: an ECDSA P-256 key (ES256) or an Ed25519 key
// (EdDSA).
type Key struct {
	ID     string
	Alg    string // ES256 or EdDSA
	signer crypto.Signer
}

// ParseKey reads a PKCS#8 PEM private key (P-256 or Ed25519) as the key named id.
func ParseKey(id string, pemBytes []byte) (Key, error) {
	if id == "" || len(id) > 64 {
		return Key{}, errors.New("a key id is 1 to 64 characters")
	}
	b, _ := pem.Decode(pemBytes)
	if b == nil || b.Type != "PRIVATE KEY" {
		return Key{}, errors.New("want a PKCS#8 PEM private key (BEGIN PRIVATE KEY)")
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return Key{}, fmt.Errorf("PKCS#8: %w", err)
	}
	return NewKey(id, k)
}

// NewKey wraps a private key (*ecdsa.PrivateKey on P-256, or ed25519.PrivateKey).
func NewKey(id string, k any) (Key, error) {
	switch k := k.(type) {
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return Key{}, errors.New("an ECDSA key must be on P-256 (ES256)")
		}
		return Key{ID: id, Alg: "ES256", signer: k}, nil
	case ed25519.PrivateKey:
		return Key{ID: id, Alg: "EdDSA", signer: k}, nil
	}
	return Key{}, fmt.Errorf("unsupported key type %T (want P-256 ECDSA or Ed25519)", k)
}

// KeySet signs with one active key and verifies with every key in it, so that a key can
// be rotated in (made active) while tokens signed by the older ones still verify until it
// is removed. Immutable; safe for concurrent use.
type KeySet struct {
	active Key
	byID   map[string]Key
	digest string // of the public keys: part of every cache key
	jwks   []byte
}

// NewKeySet returns the set of keys, signing with the one named active.
func NewKeySet(keys []Key, active string) (*KeySet, error) {
	ks := &KeySet{byID: make(map[string]Key, len(keys))}
	for _, k := range keys {
		if _, dup := ks.byID[k.ID]; dup {
			return nil, fmt.Errorf("key id %q used twice", k.ID)
		}
		ks.byID[k.ID] = k
	}
	a, ok := ks.byID[active]
	if !ok {
		return nil, fmt.Errorf("the active key %q is not in the set", active)
	}
	ks.active = a
	doc, err := ks.publish()
	if err != nil {
		return nil, err
	}
	ks.jwks = doc
	sum := sha256.Sum256(doc)
	ks.digest = hex.EncodeToString(sum[:16])
	return ks, nil
}

// JWKS returns the public keys as a JWKS document ({"keys":[...]}), in key-id order.
func (ks *KeySet) JWKS() []byte { return ks.jwks }

type jwk struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y,omitempty"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
}

func (ks *KeySet) publish() ([]byte, error) {
	ids := make([]string, 0, len(ks.byID))
	for id := range ks.byID {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	enc := base64.RawURLEncoding
	doc := struct {
		Keys []jwk `json:"keys"`
	}{Keys: []jwk{}}
	for _, id := range ids {
		k := ks.byID[id]
		j := jwk{Kid: id, Alg: k.Alg, Use: "sig"}
		switch p := k.signer.Public().(type) {
		case *ecdsa.PublicKey:
			b, err := p.Bytes() // uncompressed point: 0x04 ‖ X ‖ Y
			if err != nil {
				return nil, err
			}
			j.Kty, j.Crv, j.X, j.Y = "EC", "P-256", enc.EncodeToString(b[1:33]), enc.EncodeToString(b[33:])
		case ed25519.PublicKey:
			j.Kty, j.Crv, j.X = "OKP", "Ed25519", enc.EncodeToString(p)
		}
		doc.Keys = append(doc.Keys, j)
	}
	return json.Marshal(doc)
}
