package state

import "time"

// StoreConfig selects and configures the counter store.
type StoreConfig struct {
	Type   string       `yaml:"type"` // memory (default) | redis
	Memory MemoryConfig `yaml:"memory"`
	Redis  RedisConfig  `yaml:"redis"`
}

// MemoryConfig configures the in-process store.
type MemoryConfig struct {
	// MaxEntries bounds the number of counters (default 2,000,000). When full, the store
	// drops expired entries, then counters under their limit that are not persisted
	// (their keys start afresh); it never drops a key over its limit, a quota, long
	// window or credit, or a lockout. When nothing can be dropped, a new key is answered
	// as a fresh one but not tracked (gatehouse_ratelimit_memory_untracked_total, and a
	// log line at most once a minute).
	MaxEntries int `yaml:"max_entries"`
	// MaxRecords bounds the records (idempotency entries, one-time marks, session state)
	// held at once, expired ones not yet swept included (default 1,000,000). When full,
	// a call that would store a new record fails with an error wrapping ErrUnavailable
	// (the caller's fail mode decides): records are never dropped to make room.
	MaxRecords int `yaml:"max_records"`
	// Shards is the number of lock shards, a power of two (default 256).
	Shards int `yaml:"shards"`
	// File persists quotas, credits, bindings and records; empty: nothing is persisted.
	File string `yaml:"file"`
	// FlushInterval is how often File is written (default 10s): at most that much
	// counting is lost when the process crashes (Close always writes).
	FlushInterval time.Duration `yaml:"flush_interval"`
}

// RedisConfig configures the Redis store.
type RedisConfig struct {
	Mode         string    `yaml:"mode"` // single (default) | sentinel | cluster
	Addrs        []string  `yaml:"addrs"`
	MasterName   string    `yaml:"master_name"` // sentinel
	Username     string    `yaml:"username"`
	PasswordFile string    `yaml:"password_file"`
	PasswordEnv  string    `yaml:"password_env"`
	DB           int       `yaml:"db"`
	TLS          TLSConfig `yaml:"tls"`
	KeyPrefix    string    `yaml:"key_prefix"` // default "gh:"
	// Timeout bounds every store call (default 100ms, at most 10s; calls share
	// deadlines, so up to Timeout/5 more), besides the caller's deadline. A take-back
	// after a refusal (counters: native) gets a Timeout of its own. Connections are never
	// made within it: they are made before the store serves and in the background.
	Timeout     time.Duration `yaml:"timeout"`
	DialTimeout time.Duration `yaml:"dial_timeout"` // default 1s
	// Breaker opens after Failures consecutive failures (default 5) spanning at least
	// Window (default 50ms) and lets one probe through after Cooldown (default 250ms).
	Breaker BreakerConfig `yaml:"breaker"`
	// FlushDelay lets the client gather the commands of concurrent requests for up to this
	// long before writing them (default 20µs; negative: write at once). Fewer, larger
	// writes cost Gatehouse and Redis much less CPU at the price of that much latency.
	FlushDelay time.Duration `yaml:"flush_delay"`
	// PipelineMultiplex: the client uses 2^N connections per node (default 0: one per
	// node in cluster mode; in single and sentinel modes the client's own choice, 2 on 2
	// cores, 4 from 4 cores). Every one is dialled before the store serves a call.
	PipelineMultiplex int `yaml:"pipeline_multiplex"`
	// Counters says how requests whose limits are all counters (fixed windows, calendar
	// quotas, credits) are counted: "native" (default) sends one INCRBY per limit and
	// takes back (DECRBY) the units of a request that a limit refused; "script" runs the
	// same Lua script as token buckets. Both never admit more than the limit; native
	// costs Redis about a third of the CPU, but while a refused request's units are being
	// taken back, a concurrent request on the same key can be refused too. Leases (Lease)
	// work with native only.
	Counters string `yaml:"counters"`
	// Lease lets a replica reserve units of a busy counter (counters: native) and admit
	// from them without a round trip.
	Lease LeaseConfig `yaml:"lease"`
	// OverLimitCacheKeys sizes the cache of keys known to be over their limit (default 100,000).
	OverLimitCacheKeys int64 `yaml:"over_limit_cache_keys"`
	// Shares gives each of up to Slots replicas a small share of every inline token
	// bucket (a device throttle) that it admits from without a round trip.
	Shares SharesConfig `yaml:"shares"`
}

// SharesConfig sets aside, of every inline token bucket counted in Redis (an enforcing
// GCRA limit: a device throttle), a share for each of Slots replicas: Fraction of the
// bucket's rate, split evenly, and of its burst max(1, ⌊burst×Fraction/Slots⌋) units per
// slot; Redis counts the rest. A replica that holds a slot (a key in Redis it renews
// every TTL/3) admits from its own share first, with no round trip: a device's first
// request in a while, the common case of a large fleet, costs Redis nothing. A share
// starts empty a TTL after its slot is claimed, so a replica taking over a slot another one
// held never adds to what that one admitted. In any span d a device is admitted at most
// burst + rate×d, whatever the number of replicas: the shares and Redis's part add up to
// the bucket. The price is on the other side: a device whose requests all reach one
// replica may be refused up to the other slots' shares early (see the README). Buckets
// whose burst is under 4×Slots get no shares. Every replica must run with the same Slots
// and Fraction, as with the limits themselves.
type SharesConfig struct {
	Slots    int           `yaml:"slots"`    // replicas that may hold a share at once; 0 (default): off
	Fraction float64       `yaml:"fraction"` // of each bucket's rate set aside for the slots (default 0.1, at most 0.25)
	TTL      time.Duration `yaml:"ttl"`      // a slot's lease in Redis (default 10s, 1s to 1h)
}

// LeaseConfig bounds the units a replica leases of a counter. A request that goes to
// Redis asks, in the same INCRBY, for as many units more as this replica used of the
// counter in the current or the previous window, at most MaxUnits and at most 1/16 of
// what the counter had left when this replica last saw it; the replica's next requests
// on the counter are admitted from them, with no round trip. Units past the limit are
// taken back at once, so a counter never admits more than its limit; near it, another
// replica may be refused while this one still holds unused units (about MaxUnits at
// most), which go back to Redis once unused for Idle/2 to Idle, and when the replica
// stops. Units leased under a limit never serve a lower one. Limits of 32 or fewer, credits, token buckets, shadow limits
// and lockout failure counts are never leased.
type LeaseConfig struct {
	MaxUnits int64         `yaml:"max_units"` // default 64; -1: off (one round trip per request)
	Idle     time.Duration `yaml:"idle"`      // default 1s
}

// TLSConfig enables TLS to Redis.
type TLSConfig struct {
	Enabled            bool   `yaml:"enabled"`
	CAFile             string `yaml:"ca_file"`
	CertFile           string `yaml:"cert_file"`
	KeyFile            string `yaml:"key_file"`
	ServerName         string `yaml:"server_name"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// BreakerConfig configures the Redis circuit breaker.
type BreakerConfig struct {
	Failures int           `yaml:"failures"`
	Window   time.Duration `yaml:"window"`
	Cooldown time.Duration `yaml:"cooldown"`
}
