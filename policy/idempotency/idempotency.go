// Package idempotency decides what happens to a request that carries an idempotency key
// (issue "Idempotency keys"): the first request with a key proceeds, a duplicate while the
// first is in flight or with another request fingerprint is a conflict, and a repeat after
// completion gets the stored response replayed.
//
// Entries live in a [state.Records] shared by every replica (the counter store: memory with
// its file, or Redis), so replicas agree. One entry is one record:
//
//  1. Begin creates an in-flight mark (the fingerprint and a random claim) under a key
//     derived from the app, the caller and the client's key, all hashed; nothing a client
//     sent is stored in clear. When the record exists already, its content decides:
//     an in-flight mark is a conflict, a stored response with the same fingerprint is
//     replayed, a different fingerprint is a conflict.
//  2. Complete swaps the exchange's own mark (compare-and-set on its exact bytes) for the
//     response, or for a "not stored" entry when the response is too large to keep.
//  3. Release deletes the exchange's own mark when the exchange ended without a response
//     the entry should keep, so that the client's retry proceeds.
//
// A mark lives InFlightTTL (so that a replica that died mid-exchange blocks the key only
// that long), a completed entry TTL.
package idempotency

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/gatehouse/gatehouse/ratelimit/state"
)

// Settings are one endpoint's compiled idempotency settings.
type Settings struct {
	// TTL is how long a completed entry is kept (and replayed).
	TTL time.Duration
	// InFlightTTL bounds how long an in-flight mark blocks its key when the exchange
	// holding it never ends (a replica that died).
	InFlightTTL time.Duration
	// MaxBody is the largest response body stored for replay; a larger response is
	// recorded as not stored, and repeats are refused with [NotStored].
	MaxBody int
	// Headers are the response header names (lower case) stored and replayed.
	Headers []string
}

// Rule is one endpoint's compiled idempotency: which requests carry a key, where, and
// how their entries are kept.
type Rule struct {
	Settings
	// Header is the request header of the key (lower case).
	Header string
	// Methods are the methods (upper case) whose requests are idempotent with a key;
	// other methods pass as if the endpoint had no idempotency.
	Methods []string
	// Required refuses a request of one of Methods without a key.
	Required bool
}

// Applies reports whether requests with method are subject to r.
func (r *Rule) Applies(method string) bool {
	for _, m := range r.Methods {
		if m == method {
			return true
		}
	}
	return false
}

// Outcome is what Begin decided.
type Outcome uint8

// Outcomes of Begin.
const (
	// Proceed: the first request with this key; the caller forwards it and later calls
	// Complete or Release with the returned Claim.
	Proceed Outcome = iota + 1
	// InFlight: a request with this key is being processed (a 409).
	InFlight
	// Mismatch: the key was used with another fingerprint (a 409).
	Mismatch
	// Replay: the key's request completed; the returned Response is its stored response.
	Replay
	// NotStored: the key's request completed but its response was too large to store; the
	// request is refused rather than run twice.
	NotStored
)

// Response is a response as stored and replayed.
type Response struct {
	Status  int
	Headers [][2]string // name (lower case), value
	Body    []byte
}

// Claim is the in-flight mark one exchange holds. The zero Claim holds nothing.
type Claim struct {
	key  string
	mark []byte
}

// Held reports whether c holds a mark.
func (c Claim) Held() bool { return c.key != "" }

// Fingerprint identifies a request: SHA-256 over its method, path and body.
type Fingerprint [sha256.Size]byte

// Fingerprint returns the fingerprint of a request. Each part is length-prefixed, so that
// no two different requests share their input.
func NewFingerprint(method, path string, body []byte) Fingerprint {
	h := sha256.New()
	var n [8]byte
	for _, p := range [][]byte{[]byte(method), []byte(path), body} {
		binary.BigEndian.PutUint64(n[:], uint64(len(p)))
		h.Write(n[:])
		h.Write(p)
	}
	var f Fingerprint
	h.Sum(f[:0])
	return f
}

// MaxKey is the longest idempotency key a client may send.
const MaxKey = 255

// ValidKey reports whether k is an acceptable idempotency key: 1 to [MaxKey] bytes of
// visible ASCII (0x21 to 0x7e), such as a UUID.
func ValidKey(k string) bool {
	if len(k) == 0 || len(k) > MaxKey {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

// RecordKey returns the record key of the client's key k for the caller of app. app and
// caller are length-prefixed so that no two scopes share a key.
func RecordKey(app, caller, k string) string {
	h := sha256.New()
	var n [8]byte
	for _, p := range []string{app, caller, k} {
		binary.BigEndian.PutUint64(n[:], uint64(len(p)))
		h.Write(n[:])
		h.Write([]byte(p))
	}
	var sum [sha256.Size]byte
	return "idem:" + hex.EncodeToString(h.Sum(sum[:0]))
}

// ErrNoCaller is returned by Begin without a caller: a key scoped by the app alone
// would let one caller replay another's response.
var ErrNoCaller = errors.New("idempotency: no caller to scope the key by")

// Begin decides the fate of a request with the client's key k for the caller of app.
// On Proceed the returned Claim must be passed to Complete or Release. A store error is
// returned as is (wrapping [state.ErrUnavailable] when the store could not be reached).
func Begin(ctx context.Context, rec state.Records, s *Settings, now time.Time, app, caller, k string, fp Fingerprint) (Claim, Outcome, Response, error) {
	if caller == "" {
		return Claim{}, 0, Response{}, ErrNoCaller
	}
	key := RecordKey(app, caller, k)
	mark := make([]byte, 1+len(fp)+16)
	mark[0] = kindInFlight
	copy(mark[1:], fp[:])
	if _, err := rand.Read(mark[1+len(fp):]); err != nil {
		return Claim{}, 0, Response{}, fmt.Errorf("idempotency: claim: %w", err)
	}
	held, created, err := rec.Create(ctx, now, key, mark, s.InFlightTTL)
	if err != nil {
		return Claim{}, 0, Response{}, err
	}
	if created {
		return Claim{key: key, mark: mark}, Proceed, Response{}, nil
	}
	o, r := judge(held, fp)
	return Claim{}, o, r, nil
}

// judge reads an existing record for a request with fingerprint fp.
func judge(held []byte, fp Fingerprint) (Outcome, Response) {
	if len(held) < 1+len(fp) {
		return InFlight, Response{} // unreadable: never run twice
	}
	if Fingerprint(held[1:1+len(fp)]) != fp {
		return Mismatch, Response{}
	}
	switch held[0] {
	case kindStored:
		r, ok := decodeResponse(held[1+len(fp):])
		if !ok {
			return NotStored, Response{}
		}
		return Replay, r
	case kindNotStored:
		return NotStored, Response{}
	}
	return InFlight, Response{}
}

// Complete keeps r as the response of c's key. A response whose body is larger than
// s.MaxBody (or whose entry would exceed the store's value bound) is recorded as not
// stored. A mark that expired or was taken over meanwhile is left alone (swapped false).
func Complete(ctx context.Context, rec state.Records, s *Settings, now time.Time, c Claim, r Response) (swapped bool, err error) {
	if !c.Held() {
		return false, nil
	}
	fp := c.mark[1 : 1+sha256.Size]
	val := encodeEntry(fp, s, r)
	return rec.Swap(ctx, now, c.key, c.mark, val, s.TTL)
}

// Abandon records c's key as completed without a stored response (the upstream
// answered, but the response never reached the phase that stores it): repeats are
// refused with [NotStored] rather than run twice.
func Abandon(ctx context.Context, rec state.Records, s *Settings, now time.Time, c Claim) (bool, error) {
	if !c.Held() {
		return false, nil
	}
	val := append([]byte{kindNotStored}, c.mark[1:1+sha256.Size]...)
	return rec.Swap(ctx, now, c.key, c.mark, val, s.TTL)
}

// Release deletes c's mark, if it still holds it.
func Release(ctx context.Context, rec state.Records, now time.Time, c Claim) (bool, error) {
	if !c.Held() {
		return false, nil
	}
	return rec.Swap(ctx, now, c.key, c.mark, nil, time.Second)
}

// Kinds of records, their first byte.
const (
	kindInFlight  = 'F'
	kindStored    = 'R'
	kindNotStored = 'L'
)
