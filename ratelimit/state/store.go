package state

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrUnavailable wraps every error of a store that could not be reached (timeout, open
// circuit breaker, connection refused): the caller could not decide.
var ErrUnavailable = errors.New("ratelimit: store unavailable")

// Store holds the counters of every limit. One Store is opened at start and shared by
// every compiled engine, so counters survive configuration reloads.
//
// Concurrency contract: all methods are safe for concurrent use by any number of
// goroutines. When Apply returns, either all ops that admit the request are committed,
// or (when any op that is not in shadow mode denies) none is, so a request denied by one
// limit consumes no other, and no limit ever admits more than its limit. Ops marked
// Always are the exception: each is committed on its own, a counter even when it denies.
// The memory store and Redis scripts evaluate a call's ops against one consistent state
// (shard locks; one Lua script). Redis native counters count first and take a refused
// request's units back in a second round trip: meanwhile a concurrent request may see
// them and be refused too, and units whose take-back fails stay counted until their
// window ends. With leases, Redis counts units a replica reserved before it admits them:
// a counter still never admits more than its limit, but near it a replica can refuse
// while another holds unused units (LeaseConfig).
// Methods never block past ctx's deadline.
//
// The other state a store may keep has interfaces of its own, each implemented by both
// stores and found by a type assertion: [Credits], [Bindings], [Records], [Pinger].
// Records is the one for small values with a time to live (the idempotency keys of the
// response phase, one-time challenges and replay marks, session state); none of these
// belong in Store, whose one job is counting.
type Store interface {
	// Apply evaluates ops at now and writes one Outcome per op into out (len(out) ≥
	// len(ops)). An error means nothing was decided; a remote store may still have
	// counted the request (a timeout after Redis ran the command). ops belong to the
	// call: a store may change them while it runs, and leaves them as it found them.
	Apply(ctx context.Context, now time.Time, ops []Op, out []Outcome) error
	// Close releases the store; the memory store writes its file first.
	Close() error
}

// Credits keeps prepaid balances: counters that never expire and change only by an
// explicit adjustment. Safe for concurrent use; never blocks past ctx's deadline.
type Credits interface {
	// Adjust adds delta to the never-expiring counter key (prepaid credits: a top-up is a
	// negative delta on the consumed count) and returns the new value, atomically.
	Adjust(ctx context.Context, key Key, delta int64) (int64, error)
}

// Bindings keeps license bindings: which members (device ids) a key (a license) has,
// first come, first bound. Safe for concurrent use; never blocks past ctx's deadline.
type Bindings interface {
	// Bind atomically binds member to key if fewer than max members are bound, or
	// reports that it already is: bound says whether member is bound after the call,
	// count how many members key has. Bindings never expire and are persisted.
	Bind(ctx context.Context, key, member string, max int) (bound bool, count int, err error)
	// ResetBindings removes every member of key.
	ResetBindings(ctx context.Context, key string) error
}

// Pinger is implemented by stores that can tell whether they are reachable (readiness):
// a Redis store sends PING through its circuit breaker; the memory store is always ready.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Instrumented is implemented by stores that report to Metrics; the engine's Compile
// hands them its metrics. Safe to call while the store serves.
type Instrumented interface {
	Instrument(*Metrics)
}

// LocalFallback is implemented by stores that can fall back to per-replica memory
// counters (fail mode local).
type LocalFallback interface {
	Local() Store
}

// Validate reports every problem of a store configuration, with its path.
func (c StoreConfig) Validate() []error {
	var errs []error
	bad := func(path, msg string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(msg, args...)))
	}
	switch c.Type {
	case "", "memory", "redis":
	default:
		bad("type", "must be memory or redis, not %q", c.Type)
	}
	m := c.Memory
	if m.MaxEntries < 0 {
		bad("memory.max_entries", "must be ≥ 0")
	}
	if m.MaxRecords < 0 {
		bad("memory.max_records", "must be ≥ 0")
	}
	if m.Shards < 0 || m.Shards&(m.Shards-1) != 0 {
		bad("memory.shards", "must be a power of two")
	}
	if m.FlushInterval < 0 {
		bad("memory.flush_interval", "must be ≥ 0")
	}
	if c.Type != "redis" {
		return errs
	}
	r := c.Redis
	switch r.Mode {
	case "", "single", "cluster":
	case "sentinel":
		if r.MasterName == "" {
			bad("redis.master_name", "required in sentinel mode")
		}
	default:
		bad("redis.mode", "must be single, sentinel or cluster, not %q", r.Mode)
	}
	if len(r.Addrs) == 0 {
		bad("redis.addrs", "at least one address required")
	}
	if r.PasswordFile != "" && r.PasswordEnv != "" {
		bad("redis.password_file", "set password_file or password_env, not both")
	}
	switch r.Counters {
	case "", "native", "script":
	default:
		bad("redis.counters", "must be native or script, not %q", r.Counters)
	}
	if r.Lease.MaxUnits < -1 {
		bad("redis.lease.max_units", "must be ≥ -1 (-1: off)")
	}
	if r.Lease.Idle < 0 || r.Lease.Idle > 0 && r.Lease.Idle < 10*time.Millisecond {
		bad("redis.lease.idle", "must be at least 10ms")
	}
	if r.Shares.Slots < 0 || r.Shares.Slots > MaxShareSlots {
		bad("redis.shares.slots", "must be between 0 (off) and %d", MaxShareSlots)
	} else if r.Shares.Slots > 0 && (r.Counters == "script" || r.Lease.MaxUnits < 0) {
		bad("redis.shares.slots", "needs the leases (counters native, lease.max_units ≥ 0)")
	}
	if f := r.Shares.Fraction; f != 0 && !(f >= MinShareFraction && f <= MaxShareFraction) {
		bad("redis.shares.fraction", "must be between %v and %v (0: the default, %v)", MinShareFraction, MaxShareFraction, DefaultShareFraction)
	}
	if r.Shares.TTL != 0 && (r.Shares.TTL < time.Second || r.Shares.TTL > MaxShareTTL) {
		bad("redis.shares.ttl", "must be between 1s and %v", MaxShareTTL)
	}
	if r.Timeout < 0 || r.Timeout > MaxRedisTimeout {
		bad("redis.timeout", "must be between 0 and %v (0: the default, %v)", MaxRedisTimeout, DefaultRedisTimeout)
	}
	if r.Breaker.Failures < 0 {
		bad("redis.breaker.failures", "must be ≥ 0")
	}
	if r.Breaker.Window < 0 {
		bad("redis.breaker.window", "must be ≥ 0")
	}
	if r.Breaker.Cooldown < 0 {
		bad("redis.breaker.cooldown", "must be ≥ 0")
	}
	if r.TLS.CertFile != "" && r.TLS.KeyFile == "" || r.TLS.CertFile == "" && r.TLS.KeyFile != "" {
		bad("redis.tls", "cert_file and key_file go together")
	}
	return errs
}
