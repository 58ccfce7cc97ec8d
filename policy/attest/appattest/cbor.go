package appattest

import (
	"encoding/binary"
	"errors"

	"github.com/fxamacker/cbor/v2"
)

// Bounds on what is decoded, checked before any parsing: Apple's attestation objects are
// about 6 KiB (two certificates and a receipt), assertions about 150 bytes.
const (
	MaxAttestationBytes = 16 << 10
	MaxAssertionBytes   = 1 << 10
	maxChain            = 4 // x5c entries: leaf, intermediate, and room for one more
)

// decMode decodes every CBOR item of this package: definite lengths only, no tags, no
// duplicate map keys, unknown fields refused, and the smallest nesting and collection
// limits the library allows (an attestation object nests three levels).
var decMode = func() cbor.DecMode {
	dm, err := cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		MaxNestedLevels:   4,
		MaxArrayElements:  16,
		MaxMapPairs:       16,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	return dm
}()

// attestationObject is the CBOR map an app sends at enrolment.
type attestationObject struct {
	Fmt     string `cbor:"fmt"`
	AttStmt struct {
		X5C     [][]byte `cbor:"x5c"`
		Receipt []byte   `cbor:"receipt"`
	} `cbor:"attStmt"`
	AuthData []byte `cbor:"authData"`
}

// assertionObject is the CBOR map an app sends with a request.
type assertionObject struct {
	Signature         []byte `cbor:"signature"`
	AuthenticatorData []byte `cbor:"authenticatorData"`
}

// coseKey is an EC2 credential public key (RFC 9052): kty 2, alg -7 (ES256), crv 1
// (P-256).
type coseKey struct {
	Kty int    `cbor:"1,keyasint"`
	Alg int    `cbor:"3,keyasint"`
	Crv int    `cbor:"-1,keyasint"`
	X   []byte `cbor:"-2,keyasint"`
	Y   []byte `cbor:"-3,keyasint"`
}

// authData is the authenticator data of an attestation (WebAuthn layout).
type authData struct {
	rpIDHash []byte // 32 bytes
	flags    byte
	counter  uint32
	aaguid   []byte // 16 bytes
	credID   []byte
	key      coseKey
}

const flagAttested = 0x40 // AT: attested credential data included

var (
	errShort    = errors.New("authenticator data too short")
	errNoCred   = errors.New("authenticator data carries no attested credential")
	errCOSE     = errors.New("credential public key is not a COSE key")
	errTrailing = errors.New("authenticator data has trailing bytes that are not one CBOR item")
)

// parseAuthData reads the authenticator data of an attestation: 37 fixed bytes, then the
// attested credential (aaguid, id, COSE key). Apple may append one CBOR map of
// extensions after the key (its guide's sample does, without setting the ED flag); it
// must be a single well-formed item within the decoder's limits.
func parseAuthData(b []byte) (authData, error) {
	var a authData
	if len(b) < 37+16+2 {
		return a, errShort
	}
	a.rpIDHash, a.flags, a.counter = b[:32], b[32], binary.BigEndian.Uint32(b[33:37])
	if a.flags&flagAttested == 0 {
		return a, errNoCred
	}
	a.aaguid = b[37:53]
	n := int(binary.BigEndian.Uint16(b[53:55]))
	if len(b) < 55+n {
		return a, errShort
	}
	a.credID = b[55 : 55+n]
	rest, err := decMode.UnmarshalFirst(b[55+n:], &a.key)
	if err != nil {
		return a, errCOSE
	}
	if len(rest) > 0 {
		tail, err := decMode.UnmarshalFirst(rest, new(cbor.RawMessage))
		if err != nil || len(tail) > 0 {
			return a, errTrailing
		}
	}
	return a, nil
}
