package ratelimit

import "time"

// LimitConfig is one inline limit of an app, an endpoint or an organisation.
//
//   - name: per_device
//     key: [device]
//     algorithm: gcra          # gcra | fixed_window | calendar (default fixed_window; calendar when period is set)
//     requests: 50             # gcra: sustained rate, requests per `per`; fixed_window: requests per window; calendar: quota
//     per: 1s
//     burst: 100               # gcra only; default = requests
//   - name: monthly
//     key: [app]
//     algorithm: calendar
//     requests: 100000
//     period: month            # day | week | month | year
//     time_zone: Europe/Berlin # IANA; default UTC
//   - name: prepaid
//     key: [license]
//     credits: true            # prepaid: never resets, only a top-up restores it
//     requests: 1000           # initial grant
type LimitConfig struct {
	Name      string        `yaml:"name"`
	Key       []string      `yaml:"key"`
	Algorithm string        `yaml:"algorithm"`
	Requests  int64         `yaml:"requests"`
	Per       time.Duration `yaml:"per"`
	Burst     int64         `yaml:"burst"`
	Period    string        `yaml:"period"`
	TimeZone  string        `yaml:"time_zone"`
	Credits   bool          `yaml:"credits"`
	Shadow    bool          `yaml:"shadow"`
	// Code overrides the derived code: credits → NO_CREDITS, an organisation's limit or an
	// org key → ORG_LIMIT_REACHED, calendar → QUOTA_EXCEEDED, a device key →
	// DEVICE_RATE_LIMITED, else RATE_LIMITED.
	Code string `yaml:"code"`
}

// AppLimits are the limits of one app.
type AppLimits struct {
	Limits []LimitConfig `yaml:"limits"`
	// FailMode decides a request when the store cannot be reached: closed (default:
	// the error goes to the caller, who denies), open (allow) or local (count in this
	// replica's memory instead).
	FailMode string `yaml:"fail_mode"`
	// Org is the app's organisation, used when a request names none.
	Org string `yaml:"org"`
}

// LockoutConfig configures the brute-force lockout: MaxFailures failed credential checks
// of one key within any span of Window (a sliding window) lock it for LockFor.
// MaxFailures 0 disables it.
type LockoutConfig struct {
	MaxFailures int           `yaml:"max_failures"`
	Window      time.Duration `yaml:"window"`
	LockFor     time.Duration `yaml:"lock_for"`
	// Key lists the kinds of keys tracked (ip, device, user, and account: the accounts of
	// a login lockout); keys are passed as "ip:…", "device:…", "user:…", "account:…".
	// Empty: all kinds.
	Key []string `yaml:"key"`
}

// RLSConfig configures envoy.service.ratelimit.v3 (ShouldRateLimit).
type RLSConfig struct {
	// Files are envoyproxy/ratelimit YAML files (one domain each), read at compile.
	Files []string `yaml:"files"`
	// Domains are inline domains, in the same format as a file.
	Domains []DomainConfig `yaml:"domains"`
	// ShadowMode answers OK to everything while counting as usual (envoyproxy's
	// SHADOW_MODE).
	ShadowMode bool `yaml:"shadow_mode"`
	// AddHeaders adds X-RateLimit-Limit, -Remaining, -Reset (epoch seconds) and, on
	// OVER_LIMIT, Retry-After to response_headers_to_add.
	AddHeaders bool `yaml:"add_headers"`
	// FailMode when the store cannot be reached: error (default: gRPC UNAVAILABLE, so
	// Envoy's failure_mode_deny decides), allow, or local (per-replica memory limits).
	FailMode string `yaml:"fail_mode"`
	// TimeZone for day/week/month/year units; default UTC.
	TimeZone string `yaml:"time_zone"`
	// MaxDescriptors, MaxEntries and MaxBytes bound the work of one ShouldRateLimit: a
	// request with more descriptors (default 64), a descriptor with more entries
	// (default 16), or more bytes in its domain and every entry's key and value (default
	// 65536) is refused with gRPC INVALID_ARGUMENT before anything is counted.
	MaxDescriptors int `yaml:"max_descriptors"`
	MaxEntries     int `yaml:"max_entries"`
	MaxBytes       int `yaml:"max_bytes"`
}

// DomainConfig is one envoyproxy/ratelimit configuration file.
type DomainConfig struct {
	Domain      string             `yaml:"domain"`
	Descriptors []DescriptorConfig `yaml:"descriptors"`
	// Counting (a Gatehouse key) says how a request's descriptors are counted:
	// every_hit (default), as envoyproxy/ratelimit: each matched descriptor on its own,
	// and a refused request's hits stay counted; atomic: all or nothing, a request that
	// any limit refuses consumes nothing, as inline limits count.
	Counting string `yaml:"counting"`
}

// DescriptorConfig is one descriptor of the envoyproxy/ratelimit format. Value may end in
// "*" to match every value with that prefix (as the reference), or hold "*" anywhere
// (Gatehouse: "/v1/*/users"); a * matches any run of characters, / and none included,
// and the first such value listed that matches wins. With share_threshold (for a value
// ending in *), all matching values share one counter instead of one each. quota_mode is taken as shadow_mode (envoyproxy adds
// the violations to dynamic metadata, which Gatehouse does not produce); value_to_metric
// is accepted and has no effect. Descriptor values a client sends never reach metric
// labels: detailed_metric on a key without a configured value labels the limit
// "<path>_other", and configured values and patterns are in the path already.
type DescriptorConfig struct {
	Key            string             `yaml:"key"`
	Value          string             `yaml:"value"`
	RateLimit      *RateLimitConfig   `yaml:"rate_limit"`
	Descriptors    []DescriptorConfig `yaml:"descriptors"`
	ShadowMode     bool               `yaml:"shadow_mode"`
	QuotaMode      bool               `yaml:"quota_mode"`
	DetailedMetric bool               `yaml:"detailed_metric"`
	ValueToMetric  bool               `yaml:"value_to_metric"`
	ShareThreshold bool               `yaml:"share_threshold"`
	// Metadata is accepted for files written for newer envoyproxy/ratelimit tooling and
	// ignored: any YAML.
	Metadata any `yaml:"metadata"`
}

// RateLimitConfig is envoyproxy/ratelimit's rate_limit block, plus Gatehouse's richer
// fields (algorithm, per, burst, period, time_zone).
//
// unit is second, minute, hour, day, week, month or year (as envoyproxy/ratelimit); day
// to year are calendar periods in the domain's time zone (UTC by default): a month is a
// real month, not 30 days. Instead of unit, `per: 90s` gives a fixed window of any length;
// `algorithm: gcra` with `per` and `burst` a token bucket; `period` a calendar quota.
type RateLimitConfig struct {
	Unit            string          `yaml:"unit"`
	RequestsPerUnit uint32          `yaml:"requests_per_unit"`
	Unlimited       bool            `yaml:"unlimited"`
	Name            string          `yaml:"name"`
	Replaces        []ReplaceConfig `yaml:"replaces"`
	Algorithm       string          `yaml:"algorithm"`
	Per             time.Duration   `yaml:"per"`
	Burst           int64           `yaml:"burst"`
	Period          string          `yaml:"period"`
	TimeZone        string          `yaml:"time_zone"`
}

// ReplaceConfig names a limit that a rate_limit replaces.
type ReplaceConfig struct {
	Name string `yaml:"name"`
}

// CompileInput is everything Compile needs; config embeds these pieces.
type CompileInput struct {
	Apps      map[string]AppLimits     `yaml:"apps"`
	Endpoints map[string][]LimitConfig `yaml:"endpoints"`
	Orgs      map[string][]LimitConfig `yaml:"orgs"`
	Lockout   LockoutConfig            `yaml:"lockout"`
	RLS       RLSConfig                `yaml:"rls"`
}
