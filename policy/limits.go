package policy

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// LimitRequest names everything a request can be counted against in step 8. Empty fields
// do not apply: a limit keyed on the device is skipped when no verified device id is known.
type LimitRequest struct {
	App      string // configured app name
	Endpoint string // configured endpoint name
	Org      string // the app's organisation, for organisation-wide quotas
	Device   string // verified device id only (never a client's unverified header), or UnverifiedDevicePrefix + IP
	IP       string // client IP as chosen by the network step
	License  string // hash of the license key, when one was presented
	Cost     int64  // units this request consumes; at least 1
}

// LimitResult is the outcome of counting one request against all limits that apply.
type LimitResult struct {
	// Code is empty when every limit admitted the request, else DEVICE_RATE_LIMITED,
	// RATE_LIMITED, QUOTA_EXCEEDED, ORG_LIMIT_REACHED or NO_CREDITS.
	Code Code
	// Limit, Remaining and Reset describe the most constraining limit (the smallest
	// Remaining): they become X-RateLimit-Limit, -Remaining and -Reset (epoch seconds).
	// Limit is 0 when no limit applied.
	Limit     int64
	Remaining int64
	Reset     time.Time
	// RetryAfter is how long the client should wait; set on denials.
	RetryAfter time.Duration
	// Name is the configured name of the limit that decided (for traces and logs).
	Name string
}

// Limiter counts requests against the limits configured for an app and endpoint. The
// ratelimit package implements it; config compiles one per snapshot. Implementations are
// safe for concurrent use. A non-nil error means the store could not be reached: the
// pipeline then applies the fail mode; it never means "over limit".
type Limiter interface {
	Limit(ctx context.Context, now time.Time, req LimitRequest) (LimitResult, error)
}

// Lockout tracks failed credential checks per key so that a brute-force attempt is
// locked out for a while (ACCOUNT_LOCKED). The pipeline passes keys as "ip:<address>",
// "device:<verified device id>" and "user:<provider>:<verified subject>", each as soon
// as it is known (see LockoutKinds). Implementations are safe for concurrent use; errors
// mean the store could not be reached and are treated as "not locked" by the pipeline
// (a lockout must never deny because a store is down).
type Lockout interface {
	// Locked reports whether any of keys is locked out at now, and until when.
	Locked(ctx context.Context, now time.Time, keys ...string) (until time.Time, locked bool, err error)
	// Fail records one failed credential check for each of keys.
	Fail(ctx context.Context, now time.Time, keys ...string) error
}

// LockoutKinds is a set of lockout key kinds.
//
//   - ip: the client address (step 1 on). Everyone behind one NAT shares it.
//   - device: the device id the pipeline trusts (attested, or the client's header where
//     the app trusts it and the endpoint does not require attestation), known from the
//     device steps on. A claimed, unproven id is never a key: an attacker could rotate it
//     to escape, or name a victim's to lock it out.
//   - user: the subject of a verified user JWT, qualified by its provider, known from the
//     identity step on. A token that fails verification names nobody.
//
// A failure counts under every key known when it happens, so device and user keys count
// the wrong credentials checked after the device or user is established (license keys,
// device bindings, attestation after a verified user token).
type LockoutKinds uint8

// The lockout key kinds.
const (
	LockIP LockoutKinds = 1 << iota
	LockDevice
	LockUser
	// LockAccount: the accounts of a login lockout, counted from upstream outcomes by the
	// response phase; the pipeline never adds one.
	LockAccount
)

// RateLimitHeaders holds the values of the headers that tell a client about the limit it
// hears of (X-RateLimit-Limit, -Remaining, -Reset, Retry-After); an empty value leaves its
// header out.
type RateLimitHeaders struct {
	Limit, Remaining, Reset, RetryAfter string
}

// Headers renders r, the limit the client hears about, as the documented headers: Limit
// and Remaining (never below 0); Reset in Unix epoch seconds rounded up (the first whole
// second at which the limit has reset), left out for a limit that never resets by itself
// (prepaid credits); on a denial (Code set), Retry-After in whole seconds rounded up, at
// least 1. All empty when no limit applied (Name empty). Both surfaces, ext_authz and the
// rate-limit service, render through it; which limit r is, package ratelimit decides.
func (r *LimitResult) Headers() RateLimitHeaders {
	if r.Name == "" {
		return RateLimitHeaders{}
	}
	h := RateLimitHeaders{Limit: formatCount(r.Limit), Remaining: formatCount(max(r.Remaining, 0))}
	if !r.Reset.IsZero() {
		s := r.Reset.Unix()
		if r.Reset.Nanosecond() > 0 {
			s++
		}
		h.Reset = formatReset(s)
	}
	if r.Code != "" {
		h.RetryAfter = RetryAfterSeconds(r.RetryAfter)
	}
	return h
}

// RetryAfterSeconds renders a wait as Retry-After does: whole seconds, rounded up, at
// least 1 (a client told 0 would retry at once).
func RetryAfterSeconds(w time.Duration) string {
	s := int64(w / time.Second)
	if w%time.Second > 0 {
		s++
	}
	return strconv.FormatInt(max(s, 1), 10)
}

// counts spells 0 to len(counts)-1 in advance, in one block: the limits and remainders
// of usual limits (a device's burst, an app's requests a minute) cost no allocation per
// response.
var counts = func() (c [4096]string) {
	var b strings.Builder
	ends := make([]int, len(c))
	for i := range c {
		b.WriteString(strconv.Itoa(i))
		ends[i] = b.Len()
	}
	all, start := b.String(), 0
	for i, end := range ends {
		c[i], start = all[start:end], end
	}
	return c
}()

func formatCount(n int64) string {
	if n >= 0 && n < int64(len(counts)) {
		return counts[n]
	}
	return strconv.FormatInt(n, 10)
}

// resets remembers the last spelling of each of 8 consecutive seconds: the resets told
// in one second are a few seconds ahead (throttles) or a period's end (quotas), so each
// is spelled about once a second, not once a response.
var resets [8]atomic.Pointer[spelled]

type spelled struct {
	n int64
	s string
}

func formatReset(n int64) string {
	slot := &resets[uint64(n)%uint64(len(resets))]
	if p := slot.Load(); p != nil && p.n == n {
		return p.s
	}
	p := &spelled{n, strconv.FormatInt(n, 10)}
	slot.Store(p)
	return p.s
}
