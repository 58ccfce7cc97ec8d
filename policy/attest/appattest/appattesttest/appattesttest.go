// Package appattesttest makes App Attest material for tests: a certificate authority
// standing in for Apple's (root → intermediate → leaf), device keys, attestation objects
// and assertions, all built from their specifications with crypto/x509 and a CBOR
// encoder, never with the code under test.
package appattesttest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"math/big"
	"time"

	"github.com/fxamacker/cbor/v2"
)

// Aaguids of the two environments.
var (
	AAGUIDProduction  = []byte("appattest\x00\x00\x00\x00\x00\x00\x00")
	AAGUIDDevelopment = []byte("appattestdevelop")
)

// CA is a test root and intermediate.
type CA struct {
	Root, Inter       *x509.Certificate
	rootKey, interKey *ecdsa.PrivateKey
	Pool              *x509.CertPool // holds Root only
}

// NewCA returns a CA valid from notBefore for ten years. It panics on failure (tests).
func NewCA(notBefore time.Time) *CA {
	rootKey := mustKey(elliptic.P384())
	interKey := mustKey(elliptic.P384())
	root := mustCert(&x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Test App Attestation Root CA"},
		NotBefore: notBefore, NotAfter: notBefore.AddDate(10, 0, 0), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}, nil, &rootKey.PublicKey, rootKey)
	inter := mustCert(&x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "Test App Attestation CA 1"},
		NotBefore: notBefore, NotAfter: notBefore.AddDate(10, 0, 0), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, MaxPathLenZero: true}, root, &interKey.PublicKey, rootKey)
	pool := x509.NewCertPool()
	pool.AddCert(root)
	return &CA{Root: root, Inter: inter, rootKey: rootKey, interKey: interKey, Pool: pool}
}

// Device is an app's App Attest key.
type Device struct {
	Key   *ecdsa.PrivateKey
	KeyID []byte // SHA-256 of the uncompressed public point
}

// NewDevice returns a new P-256 key and its key id.
func NewDevice() *Device {
	k := mustKey(elliptic.P256())
	pt, _ := k.PublicKey.ECDH()
	id := sha256.Sum256(pt.Bytes())
	return &Device{Key: k, KeyID: id[:]}
}

// Attestation describes one attestation object; zero fields take the valid default.
type Attestation struct {
	AppID          string
	ClientDataHash []byte
	AAGUID         []byte // default production
	Counter        uint32
	CredID         []byte    // default the key id
	NotBefore      time.Time // of the leaf; default now - 1 h
	NotAfter       time.Time // of the leaf; default now + 72 h
	Nonce          []byte    // default SHA-256(authData ‖ ClientDataHash)
	Fmt            string    // default apple-appattest
	CertKey        *ecdsa.PublicKey
	Trailing       []byte // bytes appended to authData after the COSE key
}

// Attest returns the CBOR attestation object of d described by a, its leaf made at now.
func (ca *CA) Attest(d *Device, a Attestation, now time.Time) []byte {
	if a.AAGUID == nil {
		a.AAGUID = AAGUIDProduction
	}
	if a.CredID == nil {
		a.CredID = d.KeyID
	}
	if a.NotBefore.IsZero() {
		a.NotBefore = now.Add(-time.Hour)
	}
	if a.NotAfter.IsZero() {
		a.NotAfter = now.Add(72 * time.Hour)
	}
	if a.Fmt == "" {
		a.Fmt = "apple-appattest"
	}
	if a.CertKey == nil {
		a.CertKey = &d.Key.PublicKey
	}
	ad := ca.AuthData(d, a)
	if a.Nonce == nil {
		h := sha256.New()
		h.Write(ad)
		h.Write(a.ClientDataHash)
		a.Nonce = h.Sum(nil)
	}
	leaf := ca.Leaf(a.CertKey, a.Nonce, a.NotBefore, a.NotAfter)
	return Marshal(map[string]any{
		"fmt":      a.Fmt,
		"attStmt":  map[string]any{"x5c": [][]byte{leaf.Raw, ca.Inter.Raw}, "receipt": []byte("test receipt")},
		"authData": ad,
	})
}

// AuthData returns the authenticator data of an attestation.
func (ca *CA) AuthData(d *Device, a Attestation) []byte {
	rp := sha256.Sum256([]byte(a.AppID))
	b := append([]byte(nil), rp[:]...)
	b = append(b, 0x40)
	b = binary.BigEndian.AppendUint32(b, a.Counter)
	b = append(b, a.AAGUID...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(a.CredID)))
	b = append(b, a.CredID...)
	pt, _ := d.Key.PublicKey.ECDH()
	raw := pt.Bytes()
	b = append(b, Marshal(map[int]any{1: 2, 3: -7, -1: 1, -2: raw[1:33], -3: raw[33:]})...)
	return append(b, a.Trailing...)
}

// Leaf returns a leaf certificate for key carrying nonce in extension
// 1.2.840.113635.100.8.2, issued by the intermediate.
func (ca *CA) Leaf(key *ecdsa.PublicKey, nonce []byte, notBefore, notAfter time.Time) *x509.Certificate {
	inner, _ := asn1.Marshal(nonce)
	tagged, _ := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 1, IsCompound: true, Bytes: inner})
	ext, _ := asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSequence, IsCompound: true, Bytes: tagged})
	return mustCert(&x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "leaf"},
		NotBefore: notBefore, NotAfter: notAfter, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{1, 2, 840, 113635, 100, 8, 2}, Value: ext}}},
		ca.Inter, key, ca.interKey)
}

// Assert returns an assertion of d for appID with counter over clientDataHash.
func (d *Device) Assert(appID string, counter uint32, clientDataHash []byte) []byte {
	rp := sha256.Sum256([]byte(appID))
	ad := append(rp[:], 0x00)
	ad = binary.BigEndian.AppendUint32(ad, counter)
	h := sha256.New()
	h.Write(ad)
	h.Write(clientDataHash)
	sig, err := ecdsa.SignASN1(rand.Reader, d.Key, h.Sum(nil))
	if err != nil {
		panic(err)
	}
	return Marshal(map[string]any{"signature": sig, "authenticatorData": ad})
}

// Marshal encodes v in CBOR (canonical: sorted keys, definite lengths).
func Marshal(v any) []byte {
	em, err := cbor.CanonicalEncOptions().EncMode()
	if err != nil {
		panic(err)
	}
	b, err := em.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func mustKey(c elliptic.Curve) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}

func mustCert(tmpl, parent *x509.Certificate, pub *ecdsa.PublicKey, signer *ecdsa.PrivateKey) *x509.Certificate {
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		panic(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		panic(err)
	}
	return c
}
