package extproc

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/policy/login"
)

// Messages of the login refusals: fixed, never the client's identifier.
const (
	msgLoginMissing  = "The login request names no account"
	msgLoginInvalid  = "The login request's account field is ambiguous or not a string"
	msgLoginNotJSON  = "The login request body is not valid JSON"
	msgLoginTooLarge = "The login request body is too large"
	msgLoginTooDeep  = "The login request body nests too deep"
)

// loginHook is the account lockout from upstream outcomes (see package login): the
// request phase refuses a locked account or address before the upstream, the response
// phase counts the upstream's answer.
type loginHook struct {
	s    *login.Settings
	lock login.Lockout
}

func (h loginHook) request(ctx context.Context, x *exchange) *reply {
	var vals []string
	if h.s.Header != "" {
		if v, ok := x.reqHeaders[h.s.Header]; ok {
			vals = strings.Split(v, ",") // Envoy merges a repeated header with ','
		}
	}
	account, err := h.s.Account(vals, x.reqBody)
	if err != nil {
		return loginRefusal(x, err)
	}
	x.login, x.loginOn = login.NewKeys(x.app, account, x.client), true
	wait, locked := login.Locked(ctx, h.lock, x.now, &x.login)
	if !locked {
		return nil
	}
	r := x.denial(policy.AccountLocked, "")
	r.headers = append(r.headers, policy.Header{Key: "retry-after", Value: retryAfter(wait)})
	return r
}

// response counts the upstream's own status (before any rewrite) against the account.
// A store error is not the client's: the answer goes through uncounted.
func (h loginHook) response(ctx context.Context, x *exchange) *reply {
	if x.loginOn && x.outcome.UpstreamStatus != 0 {
		_ = login.Outcome(ctx, h.lock, h.s, x.now, &x.login, x.outcome.UpstreamStatus)
	}
	return nil
}

func (loginHook) done(context.Context, *exchange) {}

// loginRefusal is the refusal of a login request whose account cannot be read.
func loginRefusal(x *exchange, err error) *reply {
	switch {
	case errors.Is(err, login.ErrMissing):
		return x.denial(policy.MissingField, msgLoginMissing)
	case errors.Is(err, login.ErrNotJSON):
		return x.denial(policy.InvalidJSON, msgLoginNotJSON)
	case errors.Is(err, login.ErrTooLarge):
		return x.denial(policy.PayloadTooLarge, msgLoginTooLarge)
	case errors.Is(err, login.ErrTooDeep):
		return x.denial(policy.ValidationError, msgLoginTooDeep)
	}
	return x.denial(policy.InvalidField, msgLoginInvalid)
}

// retryAfter is a wait in whole seconds, rounded up, at least 1.
func retryAfter(d time.Duration) string {
	s := (d + time.Second - 1) / time.Second
	return strconv.FormatInt(int64(max(s, 1)), 10)
}
