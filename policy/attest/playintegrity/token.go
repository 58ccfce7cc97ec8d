// Package playintegrity decrypts and verifies Google Play Integrity tokens locally, with
// the app's own keys, and judges their verdicts. Nothing here calls Google.
//
// An integrity token is a JWE in compact form (key wrapping A256KW, content encryption
// A256GCM) whose plaintext is a JWS in compact form (ES256) whose payload is the JSON
// verdict. Decode undoes both layers and accepts exactly these algorithms; everything
// else about the token (its size, the nesting of its JSON) is bounded before it is parsed.
//
// The package is pure: no clock, no store, no request. The attestation provider (package
// attest) caches what Decode and Verdicts establish and checks the request binding and
// the freshness on every request; the offline verifier prints every check.
package playintegrity

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strconv"
	"strings"

	"github.com/gatehouse/gatehouse/policy"
	jose "github.com/go-jose/go-jose/v4"
)

// MaxDepth bounds the nesting of every JSON document in a token (the JWE and JWS headers
// and the payload): Google's verdicts nest four levels deep; a deeper document is refused
// before it is decoded.
const MaxDepth = 16

// Keys are an app's Play Integrity keys, as the Play Console gives them.
type Keys struct {
	// Decryption is the 32-byte AES key that unwraps the token's content key (A256KW).
	Decryption []byte
	// Verification is the P-256 public key that verifies the inner JWS (ES256).
	Verification *ecdsa.PublicKey
}

// Error is why a token could not be decoded. Reason is fixed text, safe for a client
// and a log: it never contains token data.
type Error struct {
	Code   policy.Code // INVALID_ATTESTATION (malformed) or ATTESTATION_FAILED (not genuine)
	Reason string
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Reason }

func malformed(reason string) *Error {
	return &Error{Code: policy.InvalidAttestation, Reason: reason}
}

// Payload is the verdict a token carries: the fields Gatehouse reads, others ignored.
type Payload struct {
	RequestDetails struct {
		RequestPackageName string `json:"requestPackageName"`
		RequestHash        string `json:"requestHash"` // standard requests
		Nonce              string `json:"nonce"`       // classic requests
		TimestampMillis    Millis `json:"timestampMillis"`
	} `json:"requestDetails"`
	AppIntegrity struct {
		AppRecognitionVerdict   string   `json:"appRecognitionVerdict"`
		PackageName             string   `json:"packageName"`
		CertificateSha256Digest []string `json:"certificateSha256Digest"`
	} `json:"appIntegrity"`
	DeviceIntegrity struct {
		DeviceRecognitionVerdict []string `json:"deviceRecognitionVerdict"`
	} `json:"deviceIntegrity"`
	AccountDetails struct {
		AppLicensingVerdict string `json:"appLicensingVerdict"`
	} `json:"accountDetails"`
	EnvironmentDetails struct {
		PlayProtectVerdict string `json:"playProtectVerdict"`
	} `json:"environmentDetails"`
}

// Millis is a Unix time in milliseconds. Google writes it as a JSON string of digits; a
// JSON integer is accepted too. Zero means absent.
type Millis int64

// UnmarshalJSON implements json.Unmarshaler.
func (m *Millis) UnmarshalJSON(b []byte) error {
	s := string(b)
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return errors.New("timestampMillis is not a positive integer")
	}
	*m = Millis(n)
	return nil
}

// Decode decrypts tok with keys.Decryption, verifies the inner signature with
// keys.Verification and decodes the payload. tok must already be bounded in size by the
// caller. A malformed token is INVALID_ATTESTATION; one that does not decrypt (tampered,
// or encrypted for another app) or whose signature does not verify is ATTESTATION_FAILED.
func Decode(tok string, keys Keys) (*Payload, *Error) {
	if len(keys.Decryption) != 32 || keys.Verification == nil {
		return nil, &Error{Code: policy.AttestationFailed, Reason: "the app's keys are not loaded"}
	}
	if err := checkHeader(tok); err != nil {
		return nil, err
	}
	jwe, err := jose.ParseEncryptedCompact(tok, []jose.KeyAlgorithm{jose.A256KW}, []jose.ContentEncryption{jose.A256GCM})
	if err != nil {
		return nil, malformed("the token is not an A256KW/A256GCM JWE")
	}
	inner, err := jwe.Decrypt(keys.Decryption)
	if err != nil {
		return nil, &Error{Code: policy.AttestationFailed, Reason: "the token does not decrypt with the app's decryption key"}
	}
	if err := checkHeader(string(inner)); err != nil {
		return nil, err
	}
	jws, err := jose.ParseSignedCompact(string(inner), []jose.SignatureAlgorithm{jose.ES256})
	if err != nil || len(jws.Signatures) != 1 {
		return nil, malformed("the decrypted token is not an ES256 JWS")
	}
	body, err := jws.Verify(keys.Verification)
	if err != nil {
		return nil, &Error{Code: policy.AttestationFailed, Reason: "the token's signature does not verify with the app's verification key"}
	}
	if depth(body) > MaxDepth {
		return nil, malformed("the verdict is nested too deeply")
	}
	p := &Payload{}
	if err := json.Unmarshal(body, p); err != nil {
		return nil, malformed("the verdict is not valid JSON of the expected shape")
	}
	return p, nil
}

// checkHeader reads the protected header of a compact JWE or JWS and refuses, before the
// library parses it, one that is nested too deeply, compressed (zip: a decompression bomb
// inside the token) or marked critical (crit: extensions Gatehouse does not implement).
// The algorithms are checked by the parser, against exactly the accepted ones.
func checkHeader(compact string) *Error {
	seg, _, ok := strings.Cut(compact, ".")
	if !ok {
		return malformed("the token is not in compact form")
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(seg)
	if err != nil {
		return malformed("the token's header is not base64url")
	}
	if depth(raw) > MaxDepth {
		return malformed("the token's header is nested too deeply")
	}
	var h map[string]json.RawMessage
	if err := json.Unmarshal(raw, &h); err != nil {
		return malformed("the token's header is not a JSON object")
	}
	if _, ok := h["zip"]; ok {
		return malformed("compressed tokens are not accepted")
	}
	if _, ok := h["crit"]; ok {
		return malformed("critical header extensions are not accepted")
	}
	return nil
}

// depth returns the deepest nesting of objects and arrays in a JSON text, ignoring
// brackets inside strings. It never fails: an invalid text is refused by the decoder.
func depth(b []byte) int {
	d, most, inStr := 0, 0, false
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case inStr && c == '\\':
			i++
		case c == '"':
			inStr = !inStr
		case inStr:
		case c == '{' || c == '[':
			if d++; d > most {
				most = d
			}
		case c == '}' || c == ']':
			d--
		}
	}
	return most
}

// ParseDecryptionKey reads the decryption key as the Play Console gives it: base64
// (standard or URL alphabet, padded or not) of 32 bytes.
func ParseDecryptionKey(text []byte) ([]byte, error) {
	b, err := decodeBase64(string(bytes.TrimSpace(text)))
	if err != nil || len(b) != 32 {
		return nil, errors.New("the decryption key must be base64 of 32 bytes (an AES-256 key)")
	}
	return b, nil
}

// ParseVerificationKey reads the verification key: base64 of a DER SubjectPublicKeyInfo,
// as the Play Console gives it, or the same in PEM ("PUBLIC KEY"). It must be an ECDSA
// P-256 key.
func ParseVerificationKey(text []byte) (*ecdsa.PublicKey, error) {
	text = bytes.TrimSpace(text)
	var der []byte
	if blk, _ := pem.Decode(text); blk != nil {
		if blk.Type != "PUBLIC KEY" {
			return nil, errors.New("the verification key's PEM block must be PUBLIC KEY")
		}
		der = blk.Bytes
	} else {
		var err error
		if der, err = decodeBase64(string(text)); err != nil {
			return nil, errors.New("the verification key must be base64 DER or PEM")
		}
	}
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, errors.New("the verification key is not a public key (SubjectPublicKeyInfo)")
	}
	ec, ok := k.(*ecdsa.PublicKey)
	if !ok || ec.Curve != elliptic.P256() {
		return nil, errors.New("the verification key must be an ECDSA P-256 key")
	}
	return ec, nil
}

// decodeBase64 accepts the standard and URL alphabets, with or without padding.
func decodeBase64(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	if strings.ContainsAny(s, "-_") {
		return base64.RawURLEncoding.Strict().DecodeString(s)
	}
	return base64.RawStdEncoding.Strict().DecodeString(s)
}
