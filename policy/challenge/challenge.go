// Package challenge issues one-time challenges: random strings that a client must send
// back once, within a time to live, for example inside an App Attest attestation. They
// live in the shared store (state.Records), so that a challenge issued by one replica can
// be consumed on another, and consumed only once across all of them.
package challenge

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/gatehouse/gatehouse/ratelimit/state"
)

// Size is the number of random bytes in a challenge; its text is their unpadded
// base64url form, [TextLen] characters.
const (
	Size    = 32
	TextLen = 43
)

// Bounds of a challenge's time to live.
const (
	MinTTL = time.Second
	MaxTTL = time.Hour
)

// ErrTTL is returned by [New] for a ttl outside [MinTTL, MaxTTL].
var ErrTTL = errors.New("challenge: ttl out of range")

// Issuer issues and consumes the challenges of one store. It is safe for concurrent use;
// every guarantee comes from the store's atomic Create and Take.
type Issuer struct {
	records state.Records
	ttl     time.Duration
	rand    io.Reader
}

// New returns an Issuer over records whose challenges live for ttl. A nil random source
// means crypto/rand.
func New(records state.Records, ttl time.Duration, random io.Reader) (*Issuer, error) {
	if ttl < MinTTL || ttl > MaxTTL {
		return nil, ErrTTL
	}
	if random == nil {
		random = rand.Reader
	}
	return &Issuer{records: records, ttl: ttl, rand: random}, nil
}

// TTL is how long an issued challenge stays valid.
func (s *Issuer) TTL() time.Duration { return s.ttl }

// Issue returns a new challenge for app, valid from now for the Issuer's ttl. An error
// means none was issued (the store could not be reached, or the random source failed).
func (s *Issuer) Issue(ctx context.Context, now time.Time, app string) (string, error) {
	var raw [Size]byte
	if _, err := io.ReadFull(s.rand, raw[:]); err != nil {
		return "", fmt.Errorf("challenge: random source: %w", err)
	}
	text := base64.RawURLEncoding.EncodeToString(raw[:])
	_, created, err := s.records.Create(ctx, now, key(app, text), []byte{1}, s.ttl)
	if err != nil {
		return "", fmt.Errorf("challenge: store: %w", err)
	}
	if !created {
		return "", errors.New("challenge: random source repeated a value")
	}
	return text, nil
}

// Consume reports whether challenge was issued for app, has not expired at now, and was
// not consumed before; it is consumed by this call. Of several concurrent Consumes of one
// challenge, on any replica, at most one reports true. A string that is not a well-formed
// challenge is refused without a store round trip. An error means the store could not
// decide; the challenge may or may not remain.
func (s *Issuer) Consume(ctx context.Context, now time.Time, app, challenge string) (bool, error) {
	if !wellFormed(challenge) {
		return false, nil
	}
	_, ok, err := s.records.Take(ctx, now, key(app, challenge))
	if err != nil {
		return false, fmt.Errorf("challenge: store: %w", err)
	}
	return ok, nil
}

// wellFormed reports whether text is the canonical unpadded base64url of Size bytes.
func wellFormed(text string) bool {
	if len(text) != TextLen {
		return false
	}
	var raw [Size]byte
	n, err := base64.RawURLEncoding.Strict().Decode(raw[:], []byte(text))
	return err == nil && n == Size
}

// key is the record key of app's challenge: hashed, so that neither the app name nor the
// challenge appears in the store, and of a fixed length whatever the app name's.
func key(app, challenge string) string {
	h := sha256.New()
	h.Write([]byte(app))
	h.Write([]byte{0})
	h.Write([]byte(challenge))
	return "ch:" + hex.EncodeToString(h.Sum(nil))
}
