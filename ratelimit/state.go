package ratelimit

import (
	"time"

	"github.com/gatehouse/gatehouse/ratelimit/state"
)

// The contract between the engine and the stores lives in package state (see the
// package documentation, "Layering"); these names keep it reachable from here.
type (
	// Store holds the counters of every limit: [state.Store].
	Store = state.Store
	// Credits keeps prepaid balances: [state.Credits].
	Credits = state.Credits
	// Bindings keeps license bindings: [state.Bindings].
	Bindings = state.Bindings
	// Records keeps small values with a time to live, shared by replicas:
	// [state.Records].
	Records = state.Records
	// Pinger tells whether a store is reachable: [state.Pinger].
	Pinger = state.Pinger
	// Op is one limit to evaluate against the store: [state.Op].
	Op = state.Op
	// Outcome is what the store reports for one Op: [state.Outcome].
	Outcome = state.Outcome
	// Kind says how a store evaluates an Op: [state.Kind].
	Kind = state.Kind
	// Key names one counter: [state.Key].
	Key = state.Key
	// Clock returns the current time: [state.Clock].
	Clock = state.Clock
	// Metrics counts what the limiter decides: [state.Metrics].
	Metrics = state.Metrics
	// StoreConfig selects and configures the counter store: [state.StoreConfig].
	StoreConfig = state.StoreConfig
	// MemoryConfig configures the in-process store: [state.MemoryConfig].
	MemoryConfig = state.MemoryConfig
	// RedisConfig configures the Redis store: [state.RedisConfig].
	RedisConfig = state.RedisConfig
	// LeaseConfig configures the Redis store's leases: [state.LeaseConfig].
	LeaseConfig = state.LeaseConfig
	// SharesConfig configures the Redis store's shares of token buckets: [state.SharesConfig].
	SharesConfig = state.SharesConfig
	// TLSConfig configures TLS to Redis: [state.TLSConfig].
	TLSConfig = state.TLSConfig
	// BreakerConfig configures the Redis circuit breaker: [state.BreakerConfig].
	BreakerConfig = state.BreakerConfig
)

// The kinds of Op: [state.KindCounter] and the others.
const (
	KindCounter = state.KindCounter
	KindGCRA    = state.KindGCRA
	KindPeek    = state.KindPeek
	KindSet     = state.KindSet
)

// ErrUnavailable wraps every error of a store that could not be reached:
// [state.ErrUnavailable].
var ErrUnavailable = state.ErrUnavailable

// ErrRecordTooLarge refuses a record's key or value over its bound, or a ttl that is not
// positive: [state.ErrRecordTooLarge].
var ErrRecordTooLarge = state.ErrRecordTooLarge

// The bounds of one record: [state.MaxRecordKey], [state.MaxRecordValue].
const (
	MaxRecordKey   = state.MaxRecordKey
	MaxRecordValue = state.MaxRecordValue
)

// NewKey returns a key for id, partition tag and component values: [state.NewKey].
func NewKey(id, tag string, window int64, parts ...string) Key {
	return state.NewKey(id, tag, window, parts...)
}

// NewMetrics returns unregistered metrics: [state.NewMetrics].
func NewMetrics() *Metrics { return state.NewMetrics() }

// SystemClock is the real clock, for callers to pass in production.
func SystemClock() time.Time { return time.Now() }
