package appattest

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"

	"github.com/gatehouse/gatehouse/policy"
)

// VerifyAssertion verifies an assertion signed with pub, an enrolled key of appID, over
// clientDataHash, and returns its counter, which must be above prev (the counter stored
// for the key). It does not store anything: the caller swaps prev for the result, with
// compare-and-set, before it accepts the request.
func VerifyAssertion(assertion, clientDataHash []byte, pub *ecdsa.PublicKey, appID string, prev uint32) (uint32, error) {
	if len(assertion) > MaxAssertionBytes {
		return 0, fail(StepSize, policy.InvalidAttestation, "assertion too large")
	}
	var a assertionObject
	if err := decMode.Unmarshal(assertion, &a); err != nil {
		return 0, fail(StepCBOR, policy.InvalidAttestation, "assertion is not the expected CBOR")
	}
	ad := a.AuthenticatorData
	if len(ad) < 37 {
		return 0, fail(StepAuthData, policy.InvalidAttestation, "authenticator data too short")
	}
	h := sha256.New()
	h.Write(ad)
	h.Write(clientDataHash)
	if !ecdsa.VerifyASN1(pub, h.Sum(nil), a.Signature) {
		return 0, fail(StepSignature, policy.AttestationFailed, "signature does not verify with the enrolled key")
	}
	rp := sha256.Sum256([]byte(appID))
	if subtle.ConstantTimeCompare(ad[:32], rp[:]) != 1 {
		return 0, fail(StepRPID, policy.AppTampered, "asserted for another app id")
	}
	n := binary.BigEndian.Uint32(ad[33:37])
	if n <= prev {
		return 0, fail(StepCounter, policy.AttestationFailed, "counter did not increase")
	}
	return n, nil
}
