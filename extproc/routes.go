package extproc

import (
	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/policy/idempotency"
	"github.com/gatehouse/gatehouse/policy/login"
	"github.com/gatehouse/gatehouse/ratelimit/state"
	"github.com/gatehouse/gatehouse/signature"
)

// DefaultMaxBody is Gatehouse's bound on a body it buffers when a route sets none.
const DefaultMaxBody = 1 << 20

// Route is the compiled response phase of one endpoint of one app. Config builds it;
// it is immutable once added to Routes.
type Route struct {
	App, Endpoint string
	Dialect       policy.Dialect
	// MaxBody bounds a body Gatehouse buffers (request or response); larger ones fail
	// closed. 0 means DefaultMaxBody.
	MaxBody int
	// UpstreamErrors rewrites upstream 5xx responses into the dialect's TARGET_*
	// family.
	UpstreamErrors bool
	// Idempotency makes the route's requests idempotent with a client's key; its
	// entries live in Records.
	Idempotency *idempotency.Rule
	Records     state.Records
	// Login counts the upstream's answers against the account a login names, in the
	// credential lockout Lockout.
	Login   *login.Settings
	Lockout login.Lockout
	// Sign, when set, signs every response the client receives on the route (the last
	// step, on the upstream's response or on whatever replaced it).
	Sign *signature.Signer

	hooks []hook
	// needs are those of the features that act on every exchange of the route (upstream
	// errors, login, signature); needsFor adds idempotency's per exchange.
	needs needs
}

// needs are the phases a route's features read, beyond the request headers.
type needs struct {
	requestBody  bool // the complete request body before the request hooks
	response     bool // the response headers (status)
	responseBody bool // the complete response body before the response hooks
}

// build sets the route's hooks, in their fixed order, and the phases they need. The
// order: request hooks run first to last and the first reply ends the exchange;
// response hooks run first to last and each sees the response the earlier ones left
// (upstream errors come first, so that a hook storing or counting the response sees what
// the client receives); the signature is not a hook but the last step (Server.seal), on
// whatever the client receives.
func (r *Route) build() {
	r.hooks = r.hooks[:0]
	if r.MaxBody <= 0 {
		r.MaxBody = DefaultMaxBody
	}
	if r.UpstreamErrors {
		r.hooks = append(r.hooks, upstreamErrors{})
		r.needs.response = true
	}
	// A locked account is refused before an idempotency mark is made; the idempotency
	// hook stores the response the client receives (after a rewrite).
	if r.Login != nil && r.Lockout != nil {
		r.hooks = append(r.hooks, loginHook{s: r.Login, lock: r.Lockout})
		r.needs.requestBody = r.needs.requestBody || r.Login.Header == ""
		r.needs.response = true
	}
	// Idempotency's needs are the exchange's (needsFor): only a request of its methods
	// carrying a key has its bodies buffered.
	if r.Idempotency != nil && r.Records != nil {
		r.hooks = append(r.hooks, idempotencyHook{rule: r.Idempotency, rec: r.Records})
	}
	if r.Sign != nil {
		r.needs.response, r.needs.responseBody = true, true
	}
}

// needsFor returns the phases one exchange needs after its request headers: those of
// the features acting on every exchange, plus idempotency's (both bodies, the response)
// when the request is one of its methods and carries a key. The test is the idempotency
// hook's own, so a request it would act on is never left unbuffered; a required key that
// is missing is refused on the headers.
func (r *Route) needsFor(method string, h map[string]string) needs {
	n := r.needs
	if r.Idempotency != nil && r.Records != nil && r.Idempotency.Applies(method) {
		if _, ok := h[r.Idempotency.Header]; ok {
			n.requestBody, n.response, n.responseBody = true, true, true
		}
	}
	return n
}

// any reports whether the exchange needs any phase after its request headers.
func (n needs) any() bool { return n.requestBody || n.response || n.responseBody }

// active reports whether any feature runs on the route.
func (r *Route) active() bool { return len(r.hooks) > 0 || r.Sign != nil }

// Routes are the response-phase routes of one configuration snapshot, by app and
// endpoint. A nil *Routes has none.
type Routes struct {
	// DefaultDialect renders what Gatehouse answers on a route it never saw.
	DefaultDialect policy.Dialect
	byKey          map[routeKey]*Route
}

type routeKey struct{ app, endpoint string }

// NewRoutes returns an empty set of routes.
func NewRoutes(def policy.Dialect) *Routes {
	return &Routes{DefaultDialect: def, byKey: map[routeKey]*Route{}}
}

// Add compiles r and adds it; a route on which no feature runs is left out (its
// streams skip every phase).
func (rs *Routes) Add(r *Route) {
	r.build()
	if r.active() {
		rs.byKey[routeKey{r.App, r.Endpoint}] = r
	}
}

// find returns the route of app and endpoint, or nil.
func (rs *Routes) find(app, endpoint string) *Route {
	if rs == nil || app == "" {
		return nil
	}
	return rs.byKey[routeKey{app, endpoint}]
}

// Lookup returns the route of app and endpoint, nil when no feature runs there.
func (rs *Routes) Lookup(app, endpoint string) *Route { return rs.find(app, endpoint) }
