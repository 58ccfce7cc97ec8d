// Package appattest verifies Apple App Attest: the attestation object an app sends once
// to enrol a key, and the assertions it then signs requests with. It is pure: no store,
// no clock of its own. Keeping enrolled keys and counters shared by replicas is the job
// of [Keys].
//
// Every refusal is an [*Error] naming the check that failed ([Step]) and the catalogue
// code it maps to; the checks run in the order of [AttestationSteps] and
// [AssertionSteps], and the first that fails decides.
package appattest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"time"

	"github.com/gatehouse/gatehouse/policy"
)

// Env is the App Attest environment an app's keys come from: the aaguid of its
// attestations says which.
type Env uint8

// The environments.
const (
	Production  Env = iota // aaguid "appattest" followed by seven zero bytes
	Development            // aaguid "appattestdevelop"
)

// ParseEnv reads "production" or "development".
func ParseEnv(s string) (Env, error) {
	switch s {
	case "production":
		return Production, nil
	case "development":
		return Development, nil
	}
	return 0, errors.New("want production or development")
}

// String returns the configuration spelling of e.
func (e Env) String() string {
	if e == Development {
		return "development"
	}
	return "production"
}

func (e Env) aaguid() []byte {
	if e == Development {
		return []byte("appattestdevelop")
	}
	return []byte("appattest\x00\x00\x00\x00\x00\x00\x00")
}

// Step names one check.
type Step string

// The checks of an attestation, in order.
const (
	StepSize       Step = "size"                // at most MaxAttestationBytes / MaxAssertionBytes
	StepCBOR       Step = "cbor"                // well-formed, within the decoder's limits, expected fields
	StepFormat     Step = "fmt"                 // fmt is apple-appattest
	StepAuthData   Step = "authData"            // authenticator data parses
	StepChain      Step = "x5c chain"           // leaf and intermediate chain to the root at the time given
	StepNonce      Step = "nonce"               // leaf extension 1.2.840.113635.100.8.2 = SHA-256(authData ‖ clientDataHash)
	StepKeyID      Step = "key id"              // SHA-256 of the leaf's public key = the key id
	StepRPID       Step = "rp id"               // rpIdHash = SHA-256(TEAMID.BUNDLEID)
	StepCounter    Step = "counter"             // attestation: 0; assertion: above the stored one
	StepAAGUID     Step = "aaguid"              // the configured environment's aaguid
	StepCredential Step = "credential id"       // credential id = the key id, COSE key = the leaf's key
	StepSignature  Step = "assertion signature" // ECDSA P-256 over SHA-256(authenticatorData ‖ clientDataHash)
	StepChallenge  Step = "challenge"           // enrolment: issued, unexpired, not used before
	StepEnrolled   Step = "enrolled key"        // enrolment: not enrolled before; assertion: enrolled
)

// AttestationSteps lists the checks of [VerifyAttestation] in the order they run.
var AttestationSteps = []Step{StepSize, StepCBOR, StepFormat, StepAuthData, StepChain, StepNonce,
	StepKeyID, StepRPID, StepCounter, StepAAGUID, StepCredential}

// AssertionSteps lists the checks of [VerifyAssertion] in the order they run.
var AssertionSteps = []Step{StepSize, StepCBOR, StepAuthData, StepSignature, StepRPID, StepCounter}

// Error is a refusal: the check that failed, the catalogue code it maps to, and a
// message that never quotes the client's data.
type Error struct {
	Step Step
	Code policy.Code
	Msg  string
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Step, e.Msg) }

func fail(s Step, c policy.Code, msg string) *Error { return &Error{Step: s, Code: c, Msg: msg} }

// Attested is what an attestation establishes.
type Attested struct {
	PublicKey *ecdsa.PublicKey
	KeyID     [32]byte // SHA-256 of the public key's uncompressed point
	Receipt   []byte   // Apple's receipt, for fraud-metric queries (not verified here)
	Env       Env
}

// Params says what an attestation must match.
type Params struct {
	AppID string         // TEAMID.BUNDLEID
	Env   Env            // whose aaguid is accepted
	Roots *x509.CertPool // trust anchors; nil: Apple's App Attestation Root CA
}

var nonceOID = asn1.ObjectIdentifier{1, 2, 840, 113635, 100, 8, 2}

// VerifyAttestation verifies an attestation object for keyID (the raw 32-byte key id the
// app got from generateKey) and clientDataHash (what the app passed to attestKey,
// normally SHA-256 of the server's challenge), at now. The checks are Apple's,
// in the order of AttestationSteps. Certificates are valid from NotBefore to NotAfter
// inclusive, as in crypto/x509: at NotAfter + 1 s a leaf is ATTESTATION_EXPIRED.
func VerifyAttestation(obj, keyID, clientDataHash []byte, p Params, now time.Time) (*Attested, error) {
	if len(obj) > MaxAttestationBytes {
		return nil, fail(StepSize, policy.InvalidAttestation, "attestation object too large")
	}
	var att attestationObject
	if err := decMode.Unmarshal(obj, &att); err != nil {
		return nil, fail(StepCBOR, policy.InvalidAttestation, "attestation object is not the expected CBOR")
	}
	if att.Fmt != "apple-appattest" {
		return nil, fail(StepFormat, policy.InvalidAttestation, "fmt is not apple-appattest")
	}
	ad, err := parseAuthData(att.AuthData)
	if err != nil {
		return nil, fail(StepAuthData, policy.InvalidAttestation, err.Error())
	}
	leaf, e := verifyChain(att.AttStmt.X5C, p.Roots, now)
	if e != nil {
		return nil, e
	}
	pub, e := checkLeaf(leaf, att.AuthData, clientDataHash, keyID)
	if e != nil {
		return nil, e
	}
	if e := checkAuthData(&ad, pub, keyID, p); e != nil {
		return nil, e
	}
	out := &Attested{PublicKey: pub, Receipt: att.AttStmt.Receipt, Env: p.Env}
	copy(out.KeyID[:], keyID)
	return out, nil
}

// verifyChain checks x5c (leaf first) up to roots at now and returns the leaf.
func verifyChain(x5c [][]byte, roots *x509.CertPool, now time.Time) (*x509.Certificate, *Error) {
	if len(x5c) < 2 || len(x5c) > maxChain {
		return nil, fail(StepChain, policy.InvalidAttestation, "x5c must hold the leaf and its intermediate")
	}
	certs := make([]*x509.Certificate, len(x5c))
	for i, der := range x5c {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fail(StepChain, policy.InvalidAttestation, "x5c holds a malformed certificate")
		}
		certs[i] = c
	}
	leaf := certs[0]
	if now.Before(leaf.NotBefore) {
		return nil, fail(StepChain, policy.AttestationFailed, "leaf certificate not valid yet")
	}
	if now.After(leaf.NotAfter) {
		return nil, fail(StepChain, policy.AttestationExpired, "leaf certificate expired")
	}
	if roots == nil {
		roots = AppleRoots()
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err != nil {
		return nil, fail(StepChain, policy.AttestationFailed, "certificate chain does not lead to the App Attest root")
	}
	return leaf, nil
}

// checkLeaf checks the nonce extension and the key id against the leaf, and returns its
// public key.
func checkLeaf(leaf *x509.Certificate, rawAuthData, clientDataHash, keyID []byte) (*ecdsa.PublicKey, *Error) {
	h := sha256.New()
	h.Write(rawAuthData)
	h.Write(clientDataHash)
	want := h.Sum(nil)
	got, ok := leafNonce(leaf)
	if !ok {
		return nil, fail(StepNonce, policy.InvalidAttestation, "leaf certificate has no readable nonce extension")
	}
	if subtle.ConstantTimeCompare(got, want) != 1 {
		return nil, fail(StepNonce, policy.AttestationFailed, "nonce does not match authData and clientDataHash")
	}
	pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return nil, fail(StepKeyID, policy.AttestationFailed, "leaf key is not ECDSA P-256")
	}
	id := KeyIDOf(pub)
	if subtle.ConstantTimeCompare(id[:], keyID) != 1 {
		return nil, fail(StepKeyID, policy.AttestationFailed, "key id is not SHA-256 of the attested key")
	}
	return pub, nil
}

// leafNonce reads the nonce extension: SEQUENCE { [1] EXPLICIT OCTET STRING }.
func leafNonce(leaf *x509.Certificate) ([]byte, bool) {
	for _, ext := range leaf.Extensions {
		if !ext.Id.Equal(nonceOID) {
			continue
		}
		var v struct {
			Nonce []byte `asn1:"tag:1,explicit"`
		}
		rest, err := asn1.Unmarshal(ext.Value, &v)
		return v.Nonce, err == nil && len(rest) == 0 && len(v.Nonce) == sha256.Size
	}
	return nil, false
}

// checkAuthData checks the RP ID, counter, aaguid and credential of an attestation.
func checkAuthData(ad *authData, pub *ecdsa.PublicKey, keyID []byte, p Params) *Error {
	rp := sha256.Sum256([]byte(p.AppID))
	switch {
	case subtle.ConstantTimeCompare(ad.rpIDHash, rp[:]) != 1:
		return fail(StepRPID, policy.AppTampered, "attested for another app id")
	case ad.counter != 0:
		return fail(StepCounter, policy.AttestationFailed, "counter of a new key is not 0")
	case !bytes.Equal(ad.aaguid, p.Env.aaguid()):
		return fail(StepAAGUID, policy.AttestationFailed, "aaguid is not the configured environment's ("+p.Env.String()+")")
	case !bytes.Equal(ad.credID, keyID):
		return fail(StepCredential, policy.AttestationFailed, "credential id is not the key id")
	case !sameKey(&ad.key, pub):
		return fail(StepCredential, policy.AttestationFailed, "credential public key is not the leaf's key")
	}
	return nil
}

// sameKey reports whether k is the EC2 P-256 ES256 COSE form of pub.
func sameKey(k *coseKey, pub *ecdsa.PublicKey) bool {
	if k.Kty != 2 || k.Alg != -7 || k.Crv != 1 || len(k.X) != 32 || len(k.Y) != 32 {
		return false
	}
	pt := uncompressed(pub)
	return bytes.Equal(pt[1:33], k.X) && bytes.Equal(pt[33:], k.Y)
}

// KeyIDOf returns the key id App Attest gives pub: SHA-256 of its uncompressed point.
func KeyIDOf(pub *ecdsa.PublicKey) [32]byte { return sha256.Sum256(uncompressed(pub)) }

func uncompressed(pub *ecdsa.PublicKey) []byte {
	k, err := pub.ECDH()
	if err != nil {
		return nil
	}
	return k.Bytes()
}
