package state

import (
	"context"
	"errors"
	"time"
)

// Records keeps small values with a time to live, shared by every replica that shares
// the store: the one-time challenges and assertion counters of device attestation, the
// replay marks of nonces and attestation tokens, the idempotency entries of the response
// phase, and session revocations and refresh tokens. It is the store's second small
// interface beside [Credits] and [Bindings], implemented by both stores and found by a
// type assertion; it never touches a counter.
//
// Keys are chosen by the caller, which namespaces them ("idem:", "nonce:", "aa:ctr:"...)
// and never puts a credential or a client's identifier in clear in one (hash it first).
// A key is at most [MaxRecordKey] bytes and a value at most [MaxRecordValue]; larger ones
// are refused with [ErrRecordTooLarge], never truncated. A ttl must be positive: every
// record expires. Expired records are never returned.
//
// Every method is atomic against every other on the same key, on one replica and across
// replicas (Redis: one command or one script per call), safe for concurrent use, and never
// blocks past ctx's deadline. An error wrapping [ErrUnavailable] means the store could not
// be reached and nothing is known; the caller's fail mode decides. The memory store keeps
// records in its file, so that they survive a restart like counters do.
type Records interface {
	// Create stores val under key for ttl when key holds no record, and reports
	// created. When key holds a record, nothing changes: it returns that record's value
	// and created false.
	Create(ctx context.Context, now time.Time, key string, val []byte, ttl time.Duration) (held []byte, created bool, err error)
	// Get returns the record under key.
	Get(ctx context.Context, now time.Time, key string) (val []byte, ok bool, err error)
	// Swap replaces the record under key with val for ttl when the record's value equals
	// old byte for byte, and reports swapped. A nil old means "key holds no record" (Swap
	// then behaves as Create); a nil val deletes the record. When the value differs,
	// nothing changes and swapped is false.
	Swap(ctx context.Context, now time.Time, key string, old, val []byte, ttl time.Duration) (swapped bool, err error)
	// Take deletes the record under key and returns its value: of several concurrent
	// Takes of one record, on any replica, exactly one gets ok (one-time challenges,
	// refresh tokens).
	Take(ctx context.Context, now time.Time, key string) (val []byte, ok bool, err error)
}

// Bounds of one record.
const (
	MaxRecordKey   = 512
	MaxRecordValue = 1 << 20
)

// ErrRecordTooLarge is returned for a key or value over [MaxRecordKey] or
// [MaxRecordValue], or a ttl that is not positive.
var ErrRecordTooLarge = errors.New("state: record key or value too large, or ttl not positive")
