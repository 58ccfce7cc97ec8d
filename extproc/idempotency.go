package extproc

import (
	"context"
	"strings"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/policy/idempotency"
	"github.com/gatehouse/gatehouse/ratelimit/state"
)

// ReplayedHeader marks a response replayed from an idempotency entry.
const ReplayedHeader = "idempotent-replayed"

// Messages of the idempotency refusals: fixed, never the client's key.
const (
	msgIdemRequired = "This request needs an idempotency key"
	msgIdemInvalid  = "The idempotency key must be 1 to 255 visible ASCII characters, without commas"
	msgIdemNoCaller = "Idempotency keys need an authenticated caller"
	msgIdemInFlight = "A request with this idempotency key is in progress"
	msgIdemMismatch = "This idempotency key was used with a different request"
	msgIdemTooLarge = "The response to this idempotency key was not kept; use a new key"
)

// idempotencyHook makes a route's requests idempotent with a client's key (see package
// idempotency): the request phase creates the in-flight mark or answers from the entry,
// the response phase stores the response, done releases a mark nothing settled.
type idempotencyHook struct {
	rule *idempotency.Rule
	rec  state.Records
}

func (h idempotencyHook) request(ctx context.Context, x *exchange) *reply {
	r := h.rule
	if !r.Applies(x.method) {
		return nil
	}
	key, present := x.reqHeaders[r.Header]
	if !present {
		if r.Required {
			return x.denial(policy.MissingField, msgIdemRequired)
		}
		return nil
	}
	key = unquote(strings.TrimSpace(key))
	if !idempotency.ValidKey(key) || strings.IndexByte(key, ',') >= 0 { // a comma: the header twice, merged
		return x.denial(policy.InvalidField, msgIdemInvalid)
	}
	if x.caller == "" {
		return x.denial(policy.Unauthorized, msgIdemNoCaller)
	}
	fp := idempotency.NewFingerprint(x.method, x.path, x.reqBody)
	claim, o, stored, err := idempotency.Begin(ctx, h.rec, &r.Settings, x.now, x.app, x.caller, key, fp)
	if err != nil {
		return x.denial(policy.ServiceUnavailable, "") // fail closed: never run a request twice
	}
	switch o {
	case idempotency.Proceed:
		x.idem = claim
		return nil
	case idempotency.Replay:
		x.outcome.Replayed = true
		return replayed(stored)
	case idempotency.Mismatch:
		return x.denial(policy.Conflict, msgIdemMismatch)
	case idempotency.NotStored:
		return x.denial(policy.Conflict, msgIdemTooLarge)
	}
	return x.denial(policy.Conflict, msgIdemInFlight)
}

// response stores what the client receives as the key's entry. A server error (5xx) is
// not an outcome: the mark is released so that a retry runs the request again.
func (h idempotencyHook) response(ctx context.Context, x *exchange) *reply {
	if !x.idem.Held() {
		return nil
	}
	x.idemSettled = true
	if x.status >= 500 || x.status == 0 {
		_, _ = idempotency.Release(ctx, h.rec, x.now, x.idem)
		return nil
	}
	resp := idempotency.Response{Status: x.status, Body: x.respBody}
	for _, name := range h.rule.Headers {
		if v, ok := x.respHeaders[name]; ok {
			resp.Headers = append(resp.Headers, [2]string{name, v})
		}
	}
	_, _ = idempotency.Complete(ctx, h.rec, &h.rule.Settings, x.now, x.idem, resp)
	return nil
}

// done settles a mark the response phase did not: released when the upstream never
// answered (the stream was cancelled or failed before a response), so that the
// client's retry proceeds; kept as "not stored" when it did answer but the response was
// never complete (cancelled midway through the body, or over the buffer bound), since
// the upstream ran the request and must not run it twice.
func (h idempotencyHook) done(ctx context.Context, x *exchange) {
	if !x.idem.Held() || x.idemSettled {
		return
	}
	if x.outcome.UpstreamStatus == 0 || x.outcome.UpstreamStatus >= 500 {
		_, _ = idempotency.Release(ctx, h.rec, x.now, x.idem)
		return
	}
	_, _ = idempotency.Abandon(ctx, h.rec, &h.rule.Settings, x.now, x.idem)
}

// replayed is the reply of a stored response, marked as a replay.
func replayed(r idempotency.Response) *reply {
	out := &reply{status: r.Status, body: r.Body, headers: make([]policy.Header, 0, len(r.Headers)+1)}
	for _, h := range r.Headers {
		out.headers = append(out.headers, policy.Header{Key: h[0], Value: h[1]})
	}
	out.headers = append(out.headers, policy.Header{Key: ReplayedHeader, Value: "true"})
	return out
}

// unquote takes a structured-field string ("key") as its content.
func unquote(s string) string {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		return s[1 : len(s)-1]
	}
	return s
}
