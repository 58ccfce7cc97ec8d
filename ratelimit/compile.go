package ratelimit

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/ratelimit/state"
)

// Option configures Compile.
type Option func(*Engine)

// WithMetrics counts shadow-mode hits, denials and store failures in m.
func WithMetrics(m *Metrics) Option { return func(e *Engine) { e.metrics = m } }

// Compile validates in and compiles it into an Engine that counts in store. Every problem
// is reported, joined, with its path (for example `apps.demo.limits[0].burst: must be ≥ 1`).
// Compile reads the RLS files named in in.RLS.Files but never touches the network or the
// store, so it is cheap enough for every reload; the store, and so every counter, is
// shared by successive engines.
func Compile(in CompileInput, store Store, opts ...Option) (*Engine, error) {
	c := &compiler{}
	e := &Engine{
		store:     store,
		apps:      make(map[string]*appRules, len(in.Apps)),
		endpoints: make(map[string][]*rule, len(in.Endpoints)),
		orgs:      make(map[string][]*rule, len(in.Orgs)),
	}
	for _, o := range opts {
		o(e)
	}
	if in, ok := store.(state.Instrumented); ok && e.metrics != nil {
		in.Instrument(e.metrics)
	}
	for _, name := range slices.Sorted(maps.Keys(in.Apps)) {
		a := in.Apps[name]
		p := "apps." + name
		ar := &appRules{org: a.Org, rules: c.limits(p+".limits", "app/"+name, a.Limits, false)}
		ar.fail = c.failMode(p+".fail_mode", a.FailMode)
		e.apps[name] = ar
	}
	for _, name := range slices.Sorted(maps.Keys(in.Endpoints)) {
		e.endpoints[name] = c.limits("endpoints."+name, "endpoint/"+name, in.Endpoints[name], false)
	}
	for _, name := range slices.Sorted(maps.Keys(in.Orgs)) {
		e.orgs[name] = c.limits("orgs."+name, "org/"+name, in.Orgs[name], true)
	}
	e.lockout = c.lockout("lockout", in.Lockout)
	e.rls = c.rls("rate_limit_service", in.RLS) // its key in the configuration file
	if store == nil {
		c.bad("store", "required")
	}
	if len(c.errs) > 0 {
		return nil, errors.Join(c.errs...)
	}
	return e, nil
}

// compiler collects every problem instead of stopping at the first.
type compiler struct{ errs []error }

func (c *compiler) bad(path, format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
}

func (c *compiler) failMode(path, s string) failMode {
	switch s {
	case "", "closed":
		return failClosed
	case "open":
		return failOpen
	case "local":
		return failLocal
	}
	c.bad(path, "must be closed, open or local, not %q", s)
	return failClosed
}

func (c *compiler) limits(path, scope string, ls []LimitConfig, org bool) []*rule {
	rules := make([]*rule, 0, len(ls))
	seen := map[string]bool{}
	for i, l := range ls {
		p := fmt.Sprintf("%s[%d]", path, i)
		if l.Name != "" && seen[l.Name] {
			c.bad(p+".name", "duplicate name %q", l.Name)
		}
		seen[l.Name] = true
		if r := c.limit(p, scope, l, org); r != nil {
			rules = append(rules, r)
		}
	}
	return rules
}

var validCodes = map[policy.Code]bool{
	policy.DeviceRateLimited: true, policy.RateLimited: true, policy.QuotaExceeded: true,
	policy.OrgLimitReached: true, policy.NoCredits: true,
}

var periods = map[string]Period{"day": PeriodDay, "week": PeriodWeek, "month": PeriodMonth, "year": PeriodYear}

// limit compiles one LimitConfig; it returns nil when l has errors.
func (c *compiler) limit(p, scope string, l LimitConfig, orgScope bool) *rule {
	n := len(c.errs)
	r := &rule{name: l.Name, shadow: l.Shadow, loc: time.UTC}
	if l.Name == "" {
		c.bad(p+".name", "required")
	}
	hasDevice, hasOrg := false, orgScope
	for j, k := range l.Key {
		comp, ok := componentNames[k]
		if !ok {
			c.bad(fmt.Sprintf("%s.key[%d]", p, j), "must be one of device, app, endpoint, ip, license, org, not %q", k)
			continue
		}
		if slices.Contains(r.comps, comp) {
			c.bad(fmt.Sprintf("%s.key[%d]", p, j), "duplicate %q", k)
		}
		r.comps = append(r.comps, comp)
		hasDevice = hasDevice || comp == compDevice
		hasOrg = hasOrg || comp == compOrg
	}
	r.alg = c.algorithm(p, l)
	switch r.alg {
	case algCredits:
		if l.Requests < 0 {
			c.bad(p+".requests", "must be ≥ 0 (the initial credits)")
		}
	default:
		if l.Requests < 1 {
			c.bad(p+".requests", "must be ≥ 1")
		}
	}
	r.requests = l.Requests
	c.shape(p, l, r)
	r.code = derivedCode(r.alg, hasDevice, hasOrg)
	if l.Code != "" {
		if !validCodes[policy.Code(l.Code)] {
			c.bad(p+".code", "must be one of DEVICE_RATE_LIMITED, RATE_LIMITED, QUOTA_EXCEEDED, ORG_LIMIT_REACHED, NO_CREDITS, not %q", l.Code)
		}
		r.code = policy.Code(l.Code)
	}
	if len(c.errs) > n {
		return nil
	}
	r.label = scope + "/" + l.Name
	r.id = r.label + "#" + r.signature()
	r.idh = state.IDHash(r.id)
	return r
}

func (c *compiler) algorithm(p string, l LimitConfig) algorithm {
	if l.Credits {
		if l.Algorithm != "" {
			c.bad(p+".algorithm", "must be empty for credits")
		}
		return algCredits
	}
	switch l.Algorithm {
	case "gcra", "token_bucket":
		return algGCRA
	case "fixed_window":
		return algFixedWindow
	case "calendar":
		return algCalendar
	case "":
		if l.Period != "" {
			return algCalendar
		}
		return algFixedWindow
	}
	c.bad(p+".algorithm", "must be gcra, fixed_window or calendar, not %q", l.Algorithm)
	return algFixedWindow
}

// shape checks and sets the fields that depend on the algorithm.
func (c *compiler) shape(p string, l LimitConfig, r *rule) {
	if r.alg != algGCRA && l.Burst != 0 {
		c.bad(p+".burst", "only for algorithm gcra")
	}
	if r.alg != algCalendar {
		if l.Period != "" {
			c.bad(p+".period", "only for algorithm calendar")
		}
		if l.TimeZone != "" {
			c.bad(p+".time_zone", "only for algorithm calendar")
		}
	}
	switch r.alg {
	case algCredits, algCalendar:
		if l.Per != 0 {
			c.bad(p+".per", "not used by %s", map[algorithm]string{algCredits: "credits", algCalendar: "calendar"}[r.alg])
		}
	default:
		if l.Per <= 0 {
			c.bad(p+".per", "must be > 0")
		}
	}
	r.per = l.Per
	switch r.alg {
	case algGCRA:
		r.burst = l.Burst
		if r.burst == 0 {
			r.burst = l.Requests
		}
		if l.Burst < 0 {
			c.bad(p+".burst", "must be ≥ 1")
		}
		if l.Requests >= 1 && l.Per > 0 {
			r.interval = max(int64(l.Per)/l.Requests, 1)
			if r.burst > 0 && r.burst > math.MaxInt64/4/r.interval {
				c.bad(p+".burst", "too large for the rate")
			}
		}
	case algCalendar:
		per, ok := periods[l.Period]
		if !ok {
			c.bad(p+".period", "must be day, week, month or year, not %q", l.Period)
		}
		r.period = per
		r.loc = c.location(p+".time_zone", l.TimeZone)
	case algFixedWindow:
		r.persist = l.Per >= time.Hour // long windows survive a restart too
	}
}

func (c *compiler) location(p, tz string) *time.Location {
	if tz == "" {
		return time.UTC
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		c.bad(p, "unknown time zone %q", tz)
		return time.UTC
	}
	return loc
}

// derivedCode is the documented code for a limit that denies, when none is configured.
func derivedCode(alg algorithm, device, org bool) policy.Code {
	switch {
	case alg == algCredits:
		return policy.NoCredits
	case org:
		return policy.OrgLimitReached
	case alg == algCalendar:
		return policy.QuotaExceeded
	case device:
		return policy.DeviceRateLimited
	}
	return policy.RateLimited
}

func (c *compiler) lockout(p string, l LockoutConfig) lockoutRules {
	lr := lockoutRules{max: int64(l.MaxFailures), window: l.Window, lockFor: l.LockFor}
	if l.MaxFailures < 0 {
		c.bad(p+".max_failures", "must be ≥ 0")
	}
	if l.MaxFailures == 0 {
		return lr
	}
	if l.Window <= 0 {
		c.bad(p+".window", "must be > 0")
	}
	if l.LockFor <= 0 {
		c.bad(p+".lock_for", "must be > 0")
	}
	for i, k := range l.Key {
		if k != "ip" && k != "device" && k != "user" && k != "account" {
			c.bad(p+".key["+strconv.Itoa(i)+"]", "must be ip, device, user or account, not %q", k)
			continue
		}
		lr.kinds = append(lr.kinds, k)
	}
	return lr
}
