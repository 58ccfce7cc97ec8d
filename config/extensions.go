package config

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/ratelimit"
)

// Extensions are the top-level sections of the rate limiter.
type Extensions struct {
	// Store is the counter store. It is opened once at start: a change needs a restart
	// (a reload that changes it is applied otherwise, and says so in the log).
	Store ratelimit.StoreConfig `yaml:"store"`
	// Organizations hold organisation-wide limits (→ ORG_LIMIT_REACHED).
	Organizations []Organization `yaml:"organizations"`
	// Lockout locks out an IP, device or user after too many failed credential checks.
	Lockout ratelimit.LockoutConfig `yaml:"lockout"`
	// RateLimitService configures envoy.service.ratelimit.v3 (envoyproxy/ratelimit files).
	RateLimitService ratelimit.RLSConfig `yaml:"rate_limit_service"`
}

// Organization is an organisation with limits shared by all its apps.
type Organization struct {
	Name   string                  `yaml:"name"`
	Limits []ratelimit.LimitConfig `yaml:"limits"`
}

// AppExtensions are an app's rate-limit and device settings.
type AppExtensions struct {
	DeviceSettings `yaml:",inline"`
	Limits         []ratelimit.LimitConfig `yaml:"limits"`
}

// EndpointExtensions are an endpoint's rate-limit settings.
type EndpointExtensions struct {
	Limits []ratelimit.LimitConfig `yaml:"limits"`
}

// Parts are the compiled rate-limit parts of a Snapshot.
type Parts struct {
	// Limits counts inline limits and answers the rate-limit service.
	Limits *ratelimit.Engine
	// StoreChanged is set when the file's store section differs from the store opened at
	// start: the running store stays until a restart.
	StoreChanged bool
}

// Runtime holds the long-lived rate-limit dependencies a compile wires in.
type Runtime struct {
	Store       ratelimit.Store
	StoreConfig ratelimit.StoreConfig // the configuration Store was opened with
	Metrics     *ratelimit.Metrics
}

// StoreFromFile returns the store section of a configuration file with its paths
// resolved, so that the server can open the store before the first compile.
func StoreFromFile(f *File, dir string) ratelimit.StoreConfig {
	c := &compiler{dir: dir}
	return c.storeConfig(f.Store)
}

func (c *compiler) storeConfig(s ratelimit.StoreConfig) ratelimit.StoreConfig {
	// The memory store's own file is written by the store: it is not a reference to
	// watch. The Redis files are read when the store is opened (a change takes a
	// restart, like the rest of the store section) but are watched like every other.
	s.Memory.File = c.path(s.Memory.File)
	s.Redis.PasswordFile, _ = c.ref("store.redis.password_file", s.Redis.PasswordFile)
	s.Redis.TLS.CAFile, _ = c.ref("store.redis.tls.ca_file", s.Redis.TLS.CAFile)
	s.Redis.TLS.CertFile, _ = c.ref("store.redis.tls.cert_file", s.Redis.TLS.CertFile)
	s.Redis.TLS.KeyFile, _ = c.ref("store.redis.tls.key_file", s.Redis.TLS.KeyFile)
	return s
}

// present leaves out of r the files that are absent here (validate --offline), whose
// content cannot be checked; a key pair goes with either of its halves.
func (c *compiler) present(r ratelimit.RedisConfig) ratelimit.RedisConfig {
	if c.skipped[r.PasswordFile] {
		r.PasswordFile = ""
	}
	if c.skipped[r.TLS.CAFile] {
		r.TLS.CAFile = ""
	}
	if c.skipped[r.TLS.CertFile] || c.skipped[r.TLS.KeyFile] {
		r.TLS.CertFile, r.TLS.KeyFile = "", ""
	}
	return r
}

// extensions compiles the rate limiter and sets the pipeline's Limiter and Lockout.
func (c *compiler) extensions(f *File, s *Snapshot, opt *policy.Options, apps map[string]*policy.App, eps map[string]*policy.Endpoint) {
	store := c.storeConfig(f.Store)
	errs := store.Validate()
	if len(errs) == 0 && store.Type == "redis" {
		errs = c.present(store.Redis).CheckFiles() // as opening the store will
	}
	for _, err := range errs {
		c.errs = append(c.errs, errorf("", "store.%v", err))
	}
	s.StoreChanged = c.deps.Store != nil && !reflect.DeepEqual(store, c.deps.StoreConfig)
	in := ratelimit.CompileInput{
		Apps:      map[string]ratelimit.AppLimits{},
		Endpoints: map[string][]ratelimit.LimitConfig{},
		Orgs:      map[string][]ratelimit.LimitConfig{},
		Lockout:   f.Lockout,
		RLS:       f.RateLimitService,
	}
	inline := false
	for _, a := range f.Apps {
		if _, ok := apps[a.Name]; !ok {
			continue // already reported
		}
		// fail_mode local applies to the limiter only: other undecidable steps fail closed.
		// The limiter reports a store failure to the pipeline, whose fail mode (closed,
		// open, error) answers it like any other, with the fail-open header and cause;
		// only local is the limiter's own answer.
		fm := "closed"
		if a.FailMode == "local" {
			fm = "local"
		}
		in.Apps[a.Name] = ratelimit.AppLimits{Limits: a.Limits, FailMode: fm, Org: a.Organization}
		inline = inline || len(a.Limits) > 0
	}
	for _, e := range f.Endpoints {
		if len(e.Limits) > 0 {
			in.Endpoints[e.Name] = e.Limits
			inline = true
		}
	}
	seen := map[string]bool{}
	for i, o := range f.Organizations {
		path := fmt.Sprintf("organizations[%d]", i)
		if !checkName(c, path, o.Name, seen) {
			continue
		}
		seen[o.Name] = true
		in.Orgs[o.Name] = o.Limits
		inline = inline || len(o.Limits) > 0
	}
	// A new slice: the File keeps the paths as written. An absent file skipped by
	// validate --offline stays in place as "" (which the rate limiter skips), so that
	// every other file keeps its index in messages.
	files := make([]string, len(in.RLS.Files))
	for i, p := range in.RLS.Files {
		key := fmt.Sprintf("rate_limit_service.files[%d]", i)
		if p == "" {
			c.add(key, "must not be empty")
			continue
		}
		if name, present := c.ref(key, p); present {
			files[i] = name
		}
	}
	in.RLS.Files = files
	st := c.deps.Store
	if st == nil {
		// No store wired (validation, tests of the policy alone): one shared,
		// unpersisted memory store.
		var err error
		if st, err = scratchStore(); err != nil {
			c.add("store", "%v", err)
			return
		}
	}
	var opts []ratelimit.Option
	if c.deps.Metrics != nil {
		opts = append(opts, ratelimit.WithMetrics(c.deps.Metrics))
	}
	eng, err := ratelimit.Compile(in, st, opts...)
	if err != nil {
		var joined interface{ Unwrap() []error }
		if errors.As(err, &joined) {
			c.errs = append(c.errs, joined.Unwrap()...)
		} else {
			c.errs = append(c.errs, err)
		}
		return
	}
	s.Limits = eng
	if inline {
		opt.Limiter = eng
	}
	if f.Lockout.MaxFailures > 0 {
		opt.Lockout = eng
		opt.LockoutKeys = lockoutKinds(f.Lockout.Key)
	}
}

// lockoutKinds reads the lockout's key kinds (validated by the rate limiter's compile);
// none means all.
func lockoutKinds(keys []string) policy.LockoutKinds {
	var k policy.LockoutKinds
	for _, s := range keys {
		switch s {
		case "ip":
			k |= policy.LockIP
		case "device":
			k |= policy.LockDevice
		case "user":
			k |= policy.LockUser
		case "account":
			k |= policy.LockAccount
		}
	}
	return k
}

// records returns the store's records (idempotency entries, nonce marks, App Attest keys
// and challenges), or the scratch store's without a store (validation, tests of the policy
// alone: one per process, so that a reload keeps what they hold); path names the setting
// that needs them when the store keeps none.
func (c *compiler) records(path string) ratelimit.Records {
	st := c.deps.Store
	if st == nil {
		var err error
		if st, err = scratchStore(); err != nil {
			return nil // reported by extensions
		}
	}
	rec, ok := st.(ratelimit.Records)
	if !ok {
		c.add(path, "the store keeps no records")
		return nil
	}
	return rec
}

var scratchStore = sync.OnceValues(func() (ratelimit.Store, error) {
	return ratelimit.OpenStore(context.Background(), ratelimit.StoreConfig{}, ratelimit.SystemClock)
})
