package extproc

import (
	"context"
	"time"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/policy/idempotency"
	"github.com/gatehouse/gatehouse/policy/login"
)

// hook is one feature of the response phase on one exchange.
type hook interface {
	// request runs after the request headers, and after the request body when the
	// route buffers it; a non-nil reply ends the exchange with that response.
	request(ctx context.Context, x *exchange) *reply
	// response runs on the complete upstream response (status, headers, body); a
	// non-nil reply replaces it.
	response(ctx context.Context, x *exchange) *reply
	// done runs exactly once when the stream ends, however it ends (complete,
	// cancelled midway, error), e.g. to release an idempotency in-flight mark.
	done(ctx context.Context, x *exchange)
}

// exchange is one HTTP request and its response as the response phase sees them. It
// belongs to one stream and is never shared.
type exchange struct {
	route      *Route // nil: no feature runs
	needs      needs  // the phases this exchange needs (Route.needsFor)
	identified bool   // the request headers were read (once per stream)
	requestRan bool   // the request hooks ran (once per stream)
	now        time.Time

	app, endpoint, decisionID string
	// caller is Check's opaque id of the authenticated caller (hex SHA-256); empty when
	// there was none.
	caller  string
	dialect policy.Dialect

	method, path string
	reqHeaders   map[string]string // lower-case names, repeated values merged with ','
	reqBody      []byte            // when the route buffers it

	status      int
	respHeaders map[string]string
	respBody    []byte
	// immediate is set when the response is not the upstream's: a reply of a hook
	// (a replay, a refusal, a rewritten error).
	immediate bool

	// What the decision log says about the exchange.
	outcome Outcome

	// client is Check's client address as lockouts count it (login routes only).
	client string
	// The idempotency in-flight mark this exchange holds, and whether its fate is
	// settled (stored, or released).
	idem        idempotency.Claim
	idemSettled bool
	// The login lockout's keys, when the login hook read an account.
	login   login.Keys
	loginOn bool
}

// reply is a response a hook gives instead of the upstream's.
type reply struct {
	status  int
	headers []policy.Header
	body    []byte
	code    policy.Code // the catalogue code, when the reply is a refusal or an error
}

// denial renders code in the exchange's dialect as a reply.
func (x *exchange) denial(code policy.Code, message string) *reply {
	r := policy.Render(x.dialect, code, policy.RenderOptions{Message: message})
	return &reply{status: r.Status, body: r.Body, code: code,
		headers: []policy.Header{{Key: "content-type", Value: "application/json"}}}
}

// Outcome is what one exchange did, for metrics and the decision log. It never holds a
// body or a header value.
type Outcome struct {
	App, Endpoint, DecisionID string
	// Status is the status the client receives; 0 when the stream ended before a
	// response (cancelled midway).
	Status int
	// Code is set when Gatehouse answered instead of the upstream.
	Code policy.Code
	// UpstreamStatus and UpstreamBytes describe the upstream's response, when there was
	// one (kept when it was replaced, e.g. by an error rewrite).
	UpstreamStatus int
	UpstreamBytes  int
	Signed         bool
	// Replayed is set when the client received a stored idempotent response instead of
	// the upstream's.
	Replayed bool
	// Skipped: no feature acted on the exchange, and the stream was told to skip every
	// later phase (a route without features, or a request none of its features acts on).
	Skipped   bool
	Cancelled bool // the stream ended before the response was complete
}
