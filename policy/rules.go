package policy

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gatehouse/gatehouse/signature"
)

// FailMode says what happens when Gatehouse cannot decide (a store or JWKS is unreachable).
type FailMode uint8

// The fail modes. The zero value inherits: an endpoint's FailModeInherit uses the app's,
// an app's uses closed.
const (
	FailModeInherit FailMode = iota
	FailClosed               // deny with SERVICE_UNAVAILABLE 503
	FailOpen                 // allow, and say so in a header and the trace
	FailError                // return a gRPC error so Envoy's failure_mode_allow decides
)

// ParseFailMode reads closed, open or error; the empty string inherits.
func ParseFailMode(s string) (FailMode, error) {
	switch s {
	case "":
		return FailModeInherit, nil
	case "closed":
		return FailClosed, nil
	case "open":
		return FailOpen, nil
	case "error":
		return FailError, nil
	}
	return 0, fmt.Errorf("unknown fail mode %q (want closed, open or error)", s)
}

// AccountState is the state of the account that owns an app.
type AccountState uint8

// The account states.
const (
	AccountActive AccountState = iota
	AccountStateDisabled
	AccountStatePendingDeletion
)

// MaintenanceWindow switches an app or endpoint to answer MAINTENANCE 503.
type MaintenanceWindow struct {
	Enabled bool
	Until   time.Time // zero: unknown end, no Retry-After
	Message string
}

func (m *MaintenanceWindow) active(now time.Time) bool {
	return m != nil && m.Enabled && (m.Until.IsZero() || now.Before(m.Until))
}

// Hash is the SHA-256 of a credential. Config stores credentials only as hashes.
type Hash = [sha256.Size]byte

// HashCredential returns the SHA-256 of a credential.
func HashCredential(s string) Hash { return sha256.Sum256([]byte(s)) }

// App is one configured client application.
type App struct {
	Name         string
	Dialect      Dialect
	TokenHashes  []Hash // app tokens (x-app-token)
	APIKeyHashes []Hash // API keys (x-api-key or Authorization: Bearer)
	Disabled     bool
	Account      string
	AccountState AccountState
	Org          string
	// Endpoints lists the names of the endpoints the app is linked to; AllEndpoints links
	// every endpoint.
	Endpoints    map[string]bool
	AllEndpoints bool
	FailMode     FailMode
	Maintenance  *MaintenanceWindow
	// Device holds the device steps (network lists, attestation, licenses); nil skips them.
	Device DeviceChecker
	// Sign signs responses on the app's endpoints (unless an endpoint says otherwise).
	Sign *signature.Signer
	// Caller asks for the caller id (Decision.Caller) on the app's allowed requests:
	// the response phase needs it. Off, no allowed request pays for it.
	Caller bool
}

// Endpoint is one configured API endpoint.
type Endpoint struct {
	Name string
	// Path is matched against the request path in normal form (see the path model in
	// path.go); a trailing '/' is ignored on both. With Prefix, a request path matches when
	// it equals Path or continues it after a '/'.
	Path   string
	Prefix bool
	// CaseInsensitive matches Path ignoring ASCII case. Without it, a path that matches only
	// when case is ignored is refused (ENDPOINT_NOT_FOUND), never left to a looser rule.
	CaseInsensitive bool
	Methods         []string // upper-case; empty allows every method
	Disabled        bool
	// Dialect, when set, overrides the app's dialect for this endpoint (for example the
	// license SDK auth endpoints).
	Dialect     *Dialect
	SDKAuth     bool // license SDK auth endpoint: denials are HTTP 200 {"status":"failed"}
	FailMode    FailMode
	Maintenance *MaintenanceWindow
	User        *UserAuth
	Payload     *Payload
	Inject      []Injection
	Cost        int64 // rate-limit units per request; 0 means 1
	// Attestation says whether the endpoint requires attestation (AttestRequire), exempts
	// itself (AttestExempt) or follows the app (AttestDefault).
	Attestation AttestMode
	// Heartbeat marks heartbeat-style endpoints: an expired license session there is
	// SESSION_EXPIRED.
	Heartbeat bool
	// ForwardClient puts the client address in an allowed request's Decision (Client),
	// for a response phase that counts by it (a login lockout).
	ForwardClient bool
	// Sign signs responses on this endpoint for every app; NoSign opts the endpoint out
	// of its apps' signing.
	Sign   *signature.Signer
	NoSign bool
	// Caller asks for the caller id on allowed requests to this endpoint (see App.Caller).
	Caller bool
	// Serve, when set, answers the endpoint: Gatehouse serves it itself once every step
	// passed, and the request never reaches an upstream.
	Serve Server

	route string // Path as matched; set by NewRules
}

func (e *Endpoint) allows(method string) bool {
	if len(e.Methods) == 0 {
		return true
	}
	for _, m := range e.Methods {
		if m == method {
			return true
		}
	}
	return false
}

// Options are server-wide settings of a rule set.
type Options struct {
	Version        string  // config version; part of every cache key
	DefaultDialect Dialect // used before an app is known
	AppTokenHeader string  // default x-app-token
	APIKeyHeader   string  // default x-api-key
	EndpointKey    string  // context_extensions key naming the endpoint; default "endpoint"
	TrustedHops    int     // x-forwarded-for hops to trust; 0 uses the Envoy source address
	FailMode       FailMode
	Limiter        Limiter // nil: no limits
	Lockout        Lockout // nil: no brute-force lockout
	Cache          *Cache  // verdict cache shared across snapshots; nil disables caching
	// IdentityHeaders adds x-gatehouse-* identity headers to allowed requests.
	IdentityHeaderPrefix string // default "x-gatehouse-"
	// CaseInsensitivePaths matches every path rule ignoring ASCII case, as if each endpoint
	// set CaseInsensitive.
	CaseInsensitivePaths bool
	// MethodOverride says what a method-override header does (x-http-method-override,
	// x-http-method, x-method-override): refuse the request (the default) or judge it as
	// the method the header names.
	MethodOverride MethodOverride
	// LockoutKeys are the kinds of keys Lockout counts (LockoutKinds); 0: all.
	LockoutKeys LockoutKinds
	// Nonces records the nonces of signed endpoints; nil: a signed endpoint cannot
	// decide (its fail mode applies).
	Nonces NonceMarks
}

// MethodOverride is the treatment of method-override headers.
type MethodOverride uint8

// The method-override treatments.
const (
	// OverrideRefuse refuses any request carrying a method-override header with
	// INVALID_METHOD: an upstream that honours it would run another method than the one
	// judged.
	OverrideRefuse MethodOverride = iota
	// OverrideFollow judges the request as the method the header names (one valid token;
	// anything else is refused). Only for upstreams that honour the header.
	OverrideFollow
)

// ParseMethodOverride reads refuse or follow; the empty string is refuse.
func ParseMethodOverride(s string) (MethodOverride, error) {
	switch s {
	case "", "refuse":
		return OverrideRefuse, nil
	case "follow":
		return OverrideFollow, nil
	}
	return 0, fmt.Errorf("unknown method override %q (want refuse or follow)", s)
}

// Rules is a compiled, immutable rule set: one config snapshot's view of apps and
// endpoints. It is safe for concurrent use.
type Rules struct {
	opt       Options
	apps      map[string]*App
	byToken   map[Hash]credential
	byKey     map[Hash]credential
	endpoints map[string]*Endpoint
	routes    []*Endpoint // path rules, most specific first
	hdr       identityHeaders
	idPrefix  string // IdentityHeaderPrefix in lower case with '-', to compare header names
	// cacheScope is part of every verdict-cache key: the config version and the rule set's
	// generation, so that no verdict outlives the rules that made it (a reload whose
	// referenced files changed between being read and being summed included).
	cacheScope string
}

// generations numbers the rule sets of this process.
var generations atomic.Uint64

type identityHeaders struct{ app, endpoint, device, failOpen, user string }

// NewRules indexes apps and endpoints. It reports duplicate credentials, names and
// unknown endpoint links; config validates the rest before calling it.
func NewRules(o Options, apps []*App, endpoints []*Endpoint) (*Rules, error) {
	if o.AppTokenHeader == "" {
		o.AppTokenHeader = "x-app-token"
	}
	if o.APIKeyHeader == "" {
		o.APIKeyHeader = "x-api-key"
	}
	if o.EndpointKey == "" {
		o.EndpointKey = "endpoint"
	}
	if o.IdentityHeaderPrefix == "" {
		o.IdentityHeaderPrefix = "x-gatehouse-"
	}
	if o.FailMode == FailModeInherit {
		o.FailMode = FailClosed
	}
	r := &Rules{
		opt:        o,
		cacheScope: o.Version + "." + strconv.FormatUint(generations.Add(1), 36),
		idPrefix:   strings.ReplaceAll(strings.ToLower(o.IdentityHeaderPrefix), "_", "-"),
		apps:       make(map[string]*App, len(apps)),
		byToken:    make(map[Hash]credential),
		byKey:      make(map[Hash]credential),
		endpoints:  make(map[string]*Endpoint, len(endpoints)),
		hdr: identityHeaders{
			app:      o.IdentityHeaderPrefix + "app",
			endpoint: o.IdentityHeaderPrefix + "endpoint",
			device:   o.IdentityHeaderPrefix + "device",
			failOpen: o.IdentityHeaderPrefix + "fail-open",
			user:     o.IdentityHeaderPrefix + "user",
		},
	}
	var errs []string
	for _, e := range endpoints {
		if _, dup := r.endpoints[e.Name]; dup {
			errs = append(errs, fmt.Sprintf("endpoint %q defined twice", e.Name))
		}
		r.endpoints[e.Name] = e
		if e.Path != "" {
			e.route = routePath(e.Path)
			r.routes = append(r.routes, e)
		}
	}
	// Most specific first: exact paths before prefixes, longer before shorter.
	sort.SliceStable(r.routes, func(i, j int) bool { return moreSpecific(r.routes[i], r.routes[j]) })
	for _, a := range apps {
		if _, dup := r.apps[a.Name]; dup {
			errs = append(errs, fmt.Sprintf("app %q defined twice", a.Name))
		}
		r.apps[a.Name] = a
		for _, h := range a.TokenHashes {
			if o, dup := r.byToken[h]; dup {
				errs = append(errs, fmt.Sprintf("apps %q and %q share an app token", o.app.Name, a.Name))
			}
			r.byToken[h] = credential{app: a, hash: h}
		}
		for _, h := range a.APIKeyHashes {
			if o, dup := r.byKey[h]; dup {
				errs = append(errs, fmt.Sprintf("apps %q and %q share an API key", o.app.Name, a.Name))
			}
			r.byKey[h] = credential{app: a, hash: h}
		}
		for name := range a.Endpoints {
			if _, ok := r.endpoints[name]; !ok {
				errs = append(errs, fmt.Sprintf("app %q links unknown endpoint %q", a.Name, name))
			}
		}
	}
	if len(errs) > 0 {
		sort.Strings(errs)
		return nil, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return r, nil
}

// Version returns the config version the rules were compiled from.
func (r *Rules) Version() string { return r.opt.Version }

// App returns a configured app by name.
func (r *Rules) App(name string) (*App, bool) {
	a, ok := r.apps[name]
	return a, ok
}

// Endpoint returns a configured endpoint by name; nil when there is none.
func (r *Rules) Endpoint(name string) *Endpoint { return r.endpoints[name] }

// credential is an index entry: the app a credential hash belongs to.
type credential struct {
	app  *App
	hash Hash
}

// lookup finds the app owning a credential hash. The map is keyed by the SHA-256 of the
// credential, so lookup timing reveals nothing usable about the secret; the final check
// compares the whole hash in constant time.
func lookup(m map[Hash]credential, h Hash) *App {
	c, ok := m[h]
	if !ok || subtle.ConstantTimeCompare(c.hash[:], h[:]) != 1 {
		return nil
	}
	return c.app
}
