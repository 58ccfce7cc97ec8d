package appattest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/policy/challenge"
	"github.com/gatehouse/gatehouse/ratelimit/state"
)

// Bounds of an enrolled key's time to live: it is refreshed on every accepted assertion,
// so an idle key is forgotten after it and its app must enrol again.
const (
	MinKeyTTL = time.Hour
	MaxKeyTTL = 400 * 24 * time.Hour
)

// swapTries bounds the compare-and-set retries of one assertion. Losing them all means
// other assertions of the same key keep winning: the request is refused, never left
// undecided (which a fail-open mode would let through).
const swapTries = 4

// Keys keeps one app's enrolled keys in the shared store: per key, its public key, the
// last accepted assertion counter and the trust it was enrolled under (environment and
// roots: another configuration's keys are unknown to it), under "aa:key:" and SHA-256 of
// the app and the key id. The counter only moves by compare-and-set (state.Records.Swap), so that two
// replicas never both accept one counter value. Keys is safe for concurrent use.
type Keys struct {
	records    state.Records
	challenges *challenge.Issuer
	app        string // the Gatehouse app, namespacing the records
	params     Params
	ttl        time.Duration
}

// NewKeys returns the keys of app (its Gatehouse name) kept in records for ttl, with
// attestations checked against p and challenges consumed from challenges.
func NewKeys(records state.Records, challenges *challenge.Issuer, app string, p Params, ttl time.Duration) (*Keys, error) {
	if ttl < MinKeyTTL || ttl > MaxKeyTTL {
		return nil, fmt.Errorf("appattest: key ttl %v out of [%v, %v]", ttl, MinKeyTTL, MaxKeyTTL)
	}
	return &Keys{records: records, challenges: challenges, app: app, params: p, ttl: ttl}, nil
}

// Challenge issues a one-time enrolment challenge for the Keys' app, valid for the
// challenge issuer's ttl.
func (k *Keys) Challenge(ctx context.Context, now time.Time) (string, error) {
	return k.challenges.Issue(ctx, now, k.app)
}

// Enrol consumes chal (issued by the Keys' challenge issuer for its app), verifies the
// attestation object obj of keyID with clientDataHash SHA-256(chal) at now, and stores
// the key with counter 0. The challenge is consumed first, so that each one is tried
// once. A key id already enrolled is refused: replaying its attestation must not reset
// its counter. A refusal is an [*Error]; any other error means the store could not decide.
func (k *Keys) Enrol(ctx context.Context, now time.Time, keyID, obj []byte, chal string) (*Attested, error) {
	ok, err := k.challenges.Consume(ctx, now, k.app, chal)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fail(StepChallenge, policy.AttestationFailed, "challenge unknown, expired or already used")
	}
	cdh := sha256.Sum256([]byte(chal))
	att, err := VerifyAttestation(obj, keyID, cdh[:], k.params, now)
	if err != nil {
		return nil, err
	}
	_, created, err := k.records.Create(ctx, now, k.recordKey(keyID), encodeRecord(k.params.trust(), att.PublicKey, 0), k.ttl)
	if err != nil {
		return nil, fmt.Errorf("appattest: store: %w", err)
	}
	if !created {
		return nil, fail(StepEnrolled, policy.AttestationFailed, "key already enrolled")
	}
	return att, nil
}

// Assert verifies an assertion of the enrolled key keyID over clientDataHash, and moves
// the key's counter to the assertion's, refreshing its ttl. Of several assertions
// carrying one counter value, on any replica, at most one is accepted. An unknown (or
// expired) key is INVALID_ATTESTATION: the app must enrol again. A refusal is an
// [*Error]; any other error means the store could not decide.
func (k *Keys) Assert(ctx context.Context, now time.Time, keyID, assertion, clientDataHash []byte) (uint32, error) {
	key := k.recordKey(keyID)
	cur, pub, prev, err := k.load(ctx, now, key)
	if err != nil {
		return 0, err
	}
	n, err := VerifyAssertion(assertion, clientDataHash, pub, k.params.AppID, prev)
	if err != nil {
		return 0, err
	}
	return n, k.advance(ctx, now, key, cur, pub, n)
}

// Advance moves the counter of keyID to n, the counter of an assertion whose signature
// was verified before (a cached verdict), with the checks and guarantees of Assert.
func (k *Keys) Advance(ctx context.Context, now time.Time, keyID []byte, n uint32) error {
	key := k.recordKey(keyID)
	cur, pub, prev, err := k.load(ctx, now, key)
	if err != nil {
		return err
	}
	if n <= prev {
		return fail(StepCounter, policy.AttestationFailed, "counter did not increase")
	}
	return k.advance(ctx, now, key, cur, pub, n)
}

// load reads the record under key.
func (k *Keys) load(ctx context.Context, now time.Time, key string) (cur []byte, pub *ecdsa.PublicKey, counter uint32, err error) {
	cur, found, err := k.records.Get(ctx, now, key)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("appattest: store: %w", err)
	}
	pub, counter, ok := decodeRecord(cur, k.params.trust())
	if !found || !ok {
		return nil, nil, 0, fail(StepEnrolled, policy.InvalidAttestation, "key not enrolled")
	}
	return cur, pub, counter, nil
}

// advance swaps the record cur for one with counter n, re-reading it when another
// assertion moved it first, until n is no longer above the stored counter.
func (k *Keys) advance(ctx context.Context, now time.Time, key string, cur []byte, pub *ecdsa.PublicKey, n uint32) error {
	next := encodeRecord(k.params.trust(), pub, n)
	for range swapTries {
		swapped, err := k.records.Swap(ctx, now, key, cur, next, k.ttl)
		if err != nil {
			return fmt.Errorf("appattest: store: %w", err)
		}
		if swapped {
			return nil
		}
		var prev uint32
		if cur, _, prev, err = k.load(ctx, now, key); err != nil {
			return err
		}
		if n <= prev {
			return fail(StepCounter, policy.AttestationFailed, "counter did not increase")
		}
	}
	return fail(StepCounter, policy.AttestationFailed, "counter contended")
}

// DeviceID is the device id a verified key gives a request: hex of SHA-256 of the
// app-scoped key id, never the key id itself.
func (k *Keys) DeviceID(keyID []byte) string { return k.recordKey(keyID)[len(keyPrefix):] }

const keyPrefix = "aa:key:"

func (k *Keys) recordKey(keyID []byte) string {
	h := sha256.New()
	h.Write([]byte(k.app))
	h.Write([]byte{0})
	h.Write(keyID)
	return keyPrefix + hex.EncodeToString(h.Sum(nil))
}

// A record is: its trust tag (see Params.trust), the counter (4 bytes, big-endian), the
// uncompressed P-256 point (65 bytes). A record whose tag is not the Keys' own reads as
// no record: the key was enrolled under another environment or other trust anchors.
const recordLen = 1 + 4 + 65

// trust is the tag of the keys p enrols: 1 + Env, plus 2 under trust anchors other than
// Apple's root. A development key, or one attested by a test root, is then never
// accepted by a configuration that would have refused its attestation. (Tag 1, the
// records' first version byte, is production under Apple's root.)
func (p Params) trust() byte {
	t := 1 + byte(p.Env)
	if p.Roots != nil {
		t += 2
	}
	return t
}

func encodeRecord(tag byte, pub *ecdsa.PublicKey, counter uint32) []byte {
	b := make([]byte, 0, recordLen)
	b = append(b, tag)
	b = binary.BigEndian.AppendUint32(b, counter)
	return append(b, uncompressed(pub)...)
}

func decodeRecord(b []byte, tag byte) (*ecdsa.PublicKey, uint32, bool) {
	if len(b) != recordLen || b[0] != tag {
		return nil, 0, false
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), b[5:])
	if err != nil {
		return nil, 0, false
	}
	return pub, binary.BigEndian.Uint32(b[1:5]), true
}
