// Package login is the account lockout from upstream outcomes (issue "Account lockout
// from upstream outcomes"): a login endpoint names where the account identifier is (a
// JSON body field or a header); the upstream's answers with a failure status count
// against that account and the client address over the credential lockout's sliding
// window, and a locked account is refused before the upstream sees the attempt.
//
// It shares the credential lockout's store, rules (max_failures, window, lock_for) and
// metrics: an account is one more key kind ("account:" and a hash of the app and the
// normalised identifier), the client address the same "ip:" key the pipeline counts.
//
// One exchange:
//
//  1. Request: Account reads and normalises the identifier; Locked checks the account
//     and the address in one store call.
//  2. Response: Outcome counts a failure status against both keys, or forgets the
//     account's failures on a success (2xx). Other statuses change nothing.
package login

import (
	"context"
	"slices"
	"time"

	"github.com/gatehouse/gatehouse/policy"
)

// Lockout is the credential lockout with a way to forget a key's failures.
// Implemented by the rate limiter's engine; safe for concurrent use.
type Lockout interface {
	policy.Lockout
	// Reset forgets the failures of each key (not a lock already set).
	Reset(ctx context.Context, now time.Time, keys ...string) error
}

// Settings are one login endpoint's compiled settings.
type Settings struct {
	// Field is the JSON path of the identifier in the request body (object keys,
	// outermost first); empty when Header is used.
	Field []string
	// Header is the request header (lower case) holding the identifier.
	Header string
	// FailStatuses are the upstream statuses that count as a failed login.
	FailStatuses []int
	// MaxBody is the largest request body read for the identifier.
	MaxBody int
}

// Account returns the normalised account identifier of a login request: from header
// values vals (every value the request carries under Settings.Header) or from the JSON
// body. Errors are those of this package.
func (s *Settings) Account(vals []string, body []byte) (string, error) {
	var raw string
	if s.Header != "" {
		switch len(vals) {
		case 0:
			return "", ErrMissing
		case 1:
			raw = vals[0]
		default:
			return "", ErrAmbiguous
		}
	} else {
		if len(body) > s.MaxBody {
			return "", ErrTooLarge
		}
		v, err := FromJSON(body, s.Field)
		if err != nil {
			return "", err
		}
		raw = v
	}
	if len(raw) > MaxAccount {
		return "", ErrTooLarge
	}
	a := Normalize(raw)
	if a == "" {
		return "", ErrMissing
	}
	return a, nil
}

// Keys are the lockout keys of one login attempt: the account's, and the client
// address's when known.
type Keys struct {
	keys [2]string
	n    int
}

// NewKeys returns the keys of account (normalised) of app from client ([policy.ClientKey]
// of its address; empty when unknown).
func NewKeys(app, account, client string) Keys {
	k := Keys{n: 1}
	k.keys[0] = Key(app, account)
	if client != "" {
		k.keys[1] = policy.IPLockKey(client)
		k.n = 2
	}
	return k
}

// Locked reports whether the account or the address is locked out, and for how long
// still. A store error is "not locked", as for the credential lockout: a lockout never
// refuses because its store is down.
func Locked(ctx context.Context, l Lockout, now time.Time, k *Keys) (retryAfter time.Duration, locked bool) {
	until, locked, err := l.Locked(ctx, now, k.keys[:k.n]...)
	if err != nil || !locked {
		return 0, false
	}
	return until.Sub(now), true
}

// Outcome records the upstream's answer to a login attempt: a failure status counts
// against every key, a success (2xx) forgets the account's failures (not the
// address's: an attacker who owns one account must not clear the address count of a
// password spray by logging in to it).
func Outcome(ctx context.Context, l Lockout, s *Settings, now time.Time, k *Keys, status int) error {
	switch {
	case slices.Contains(s.FailStatuses, status):
		return l.Fail(ctx, now, k.keys[:k.n]...)
	case status >= 200 && status < 300:
		return l.Reset(ctx, now, k.keys[0])
	}
	return nil
}
