package policy

import (
	"context"
	"net/netip"
	"strings"
	"time"
)

// DeviceChecker runs the device steps of one app: the network step (3: IP and device
// block/allow lists) and the attestation and license steps (5 and 6). Config builds one
// per app; implementations are immutable and safe for concurrent use.
type DeviceChecker interface {
	// Network runs step 3.
	Network(ctx context.Context, now time.Time, in *Input, ip netip.Addr, ep *Endpoint) DeviceVerdict
	// Device runs steps 5 and 6; it returns the verified device id on success.
	Device(ctx context.Context, now time.Time, in *Input, ep *Endpoint) DeviceVerdict
}

// AttestMode is an endpoint's attestation requirement.
type AttestMode uint8

// The attestation modes.
const (
	AttestDefault AttestMode = iota // follow the app
	AttestRequire                   // require attestation even if the app does not
	AttestExempt                    // never require attestation here
)

// DeviceVerdict is the outcome of the device steps.
type DeviceVerdict struct {
	Code     Code // empty: passed
	Message  string
	Step     Step
	DeviceID string // verified device id
	License  string // hash of the presented license key, for limits
	Provider string // attestation provider evaluated
	CacheHit bool
	Remove   []string // credential headers consumed
	Err      error    // could not decide
}

// Decide runs the pipeline on one request. It never panics on any Input and never returns
// an error: a denial is a Decision, and "could not decide" is resolved by the fail mode.
func (r *Rules) Decide(ctx context.Context, now time.Time, in *Input) Decision {
	ep, epCode, forged := r.matchEndpoint(in)
	d := Decision{Dialect: r.opt.DefaultDialect}
	if ep != nil {
		d.Endpoint = ep.Name
		d.SDKAuth = ep.SDKAuth
		if ep.Dialect != nil {
			d.Dialect = *ep.Dialect
		}
	}
	ip := in.ClientIP(r.opt.TrustedHops)
	// 1. app. A locked-out client is refused whatever credential it sends now; the
	// app, when known, only picks the dialect of the refusal.
	app, credHeader, code := r.authenticate(in)
	if app != nil && (ep == nil || ep.Dialect == nil) {
		d.Dialect = app.Dialect
	}
	lk := r.newLockKeys(ip)
	if r.locked(ctx, now, lk, &d) {
		return d
	}
	if code != "" {
		d.deny(StepApp, code)
		r.failedCredential(ctx, now, lk, &d)
		return d
	}
	d.App = app.Name
	if code := app.state(); code != "" {
		return d.deny(StepApp, code)
	}
	if app.Maintenance.active(now) {
		return d.maintenance(StepApp, app.Maintenance, now)
	}

	// 2. endpoint
	if epCode != "" {
		d.deny(StepEndpoint, epCode)
		if epCode == InvalidMethod && len(ep.Methods) > 0 {
			d.Response = append(d.Response, Header{Key: "allow", Value: strings.Join(ep.Methods, ", ")})
		}
		return d
	}
	switch {
	case ep.Disabled:
		return d.deny(StepEndpoint, EndpointDisabled)
	case !app.AllEndpoints && !app.Endpoints[ep.Name]:
		return d.deny(StepEndpoint, EndpointNotLinked)
	case ep.Maintenance.active(now):
		return d.maintenance(StepEndpoint, ep.Maintenance, now)
	}
	fail := failMode(r.opt.FailMode, app.FailMode, ep.FailMode)

	// 3. network
	if app.Device != nil {
		if !r.device(&d, in, app.Device.Network(ctx, now, in, ip, ep), StepNetwork, fail) {
			return d
		}
	}
	// 4, 5, 6. identity, attestation and license; then the lockout of the user and
	// device they established
	est, ok := r.credentials(ctx, now, in, app, ep, fail, lk, &d)
	if !ok || r.locked(ctx, now, lk, &d) {
		return d
	}
	// 7. payload
	if ep.Payload != nil {
		if code, msg := ep.Payload.check(in); code != "" {
			d.Message = msg
			return d.deny(StepPayload, code)
		}
	}
	// 8. limits
	if r.opt.Limiter != nil && !r.limits(ctx, now, app, ep, ip, est, &d, fail) {
		return d
	}
	// 9. secrets
	for i := range ep.Inject {
		inj := &ep.Inject[i]
		v, code := inj.Secret.value(now)
		if code != "" {
			return d.deny(StepSecrets, code)
		}
		d.Upstream = append(d.Upstream, Header{Key: inj.Header, Value: inj.Prefix + v})
	}
	r.allow(&d, in, credHeader, forged)
	return d
}

// matchEndpoint finds the endpoint of a request: by the context_extensions slug when
// Envoy names one, else by path and method. It returns the endpoint and, when the request
// cannot be served by it, ENDPOINT_NOT_FOUND or INVALID_METHOD. Both ways see the path in
// its normal form and apply the same refusals (path.go). forged reports whether the client
// sent headers in Gatehouse's identity namespace, for allow to remove.
func (r *Rules) matchEndpoint(in *Input) (ep *Endpoint, code Code, forged bool) {
	h := r.scanHeaders(in)
	path, ok := normalizePath(in.Path)
	if !ok || h.rewritesPath {
		return nil, EndpointNotFound, h.forged
	}
	if slug, named := in.Ext[r.opt.EndpointKey]; named {
		ep, code = r.namedEndpoint(slug, path, h.method)
	} else {
		ep, code, _ = r.route(path, h.method)
	}
	if h.overrideRefused && ep != nil {
		code = InvalidMethod
	}
	return ep, code, h.forged
}

// namedEndpoint is the endpoint Envoy named, unless the path rules refuse the path (it
// matches a case-sensitive rule only when case is ignored) or give it to a more specific
// rule than the named endpoint's own path: one spelling, one rule, however the route that
// named the endpoint matched.
func (r *Rules) namedEndpoint(slug, path, method string) (*Endpoint, Code) {
	ep, ok := r.endpoints[slug]
	if !ok {
		return nil, EndpointNotFound
	}
	if len(r.routes) > 0 {
		claimed, _, refused := r.route(path, method)
		if refused || (ep.route != "" && claimed != nil && claimed != ep && moreSpecific(claimed, ep)) {
			return nil, EndpointNotFound
		}
	}
	if !ep.allows(method) {
		return ep, InvalidMethod
	}
	return ep, ""
}

// route matches a normal path against the path rules, most specific first. A rule that
// matches the path only when case is ignored ends the search: unless the rule (or the
// server) is case-insensitive, the path is refused (refused is true) rather than left to a
// looser rule, since many upstreams route case-insensitively. Likewise a method the most
// specific matching rule does not allow is INVALID_METHOD unless another rule for the same
// path allows it: a looser rule never takes it, as the upstream would serve it with the
// specific path's handler.
func (r *Rules) route(path, method string) (ep *Endpoint, code Code, refused bool) {
	var pathMatch *Endpoint
	for _, e := range r.routes {
		m := e.matchPath(path)
		if m == noMatch {
			continue
		}
		if pathMatch != nil && e.route != pathMatch.route {
			break // only another rule for the same path may take a method the first refused
		}
		if m == foldMatch {
			if r.spelledAlike(e, path) {
				continue // another rule, spelt in this case, takes it
			}
			if !e.CaseInsensitive && !r.opt.CaseInsensitivePaths {
				refused = true
				break
			}
		}
		if e.allows(method) {
			return e, "", false
		}
		if pathMatch == nil {
			pathMatch = e
		}
	}
	if pathMatch != nil {
		return pathMatch, InvalidMethod, refused
	}
	return nil, EndpointNotFound, refused
}

// spelledAlike reports whether another rule of the same shape as e, differing only in
// case, matches path as spelt.
func (r *Rules) spelledAlike(e *Endpoint, path string) bool {
	for _, o := range r.routes {
		if o != e && o.Prefix == e.Prefix && equalFoldASCII(o.route, e.route) && o.matchPath(path) == fullMatch {
			return true
		}
	}
	return false
}

// overrideHeaders are the method-override header names, and pathHeaders the headers that
// make some upstreams (Symfony, Laravel, IIS URL Rewrite) serve another path, in their
// canonical spelling.
var (
	overrideHeaders = [...]string{"x-http-method-override", "x-http-method", "x-method-override"}
	pathHeaders     = [...]string{"x-original-url", "x-rewrite-url"}
)

// headerScan is what the one pass over the request headers finds.
type headerScan struct {
	method          string // the method to judge the request as
	overrideRefused bool   // a method-override header refuses the request
	rewritesPath    bool   // a path-override header refuses the request
	forged          bool   // the client sent headers in Gatehouse's identity namespace
}

// scanHeaders is the one pass over the request headers that the pipeline makes. Header
// names match in any mix of case, '-' and '_' (CGI-style servers read them alike). Only
// OverrideFollow judges by the method-override headers, and only when every one of them
// names the same single token.
func (r *Rules) scanHeaders(in *Input) headerScan {
	h := headerScan{method: in.Method}
	named := ""
	for k, v := range in.Headers {
		if hasHeaderPrefix(k, r.idPrefix) {
			h.forged = true
			continue
		}
		if len(k) < len("x-http-method") || (k[0] != 'x' && k[0] != 'X') {
			continue
		}
		if oneOf(k, pathHeaders[:]) {
			h.rewritesPath = true
			continue
		}
		if h.overrideRefused || !oneOf(k, overrideHeaders[:]) {
			continue
		}
		v = strings.TrimSpace(v)
		if r.opt.MethodOverride != OverrideFollow || !isToken(v) || (named != "" && !strings.EqualFold(v, named)) {
			h.overrideRefused = true
			continue
		}
		named = v
	}
	if named != "" && !h.overrideRefused {
		h.method = strings.ToUpper(named)
	}
	return h
}

// oneOf reports whether header name k is one of the canonical names.
func oneOf(k string, names []string) bool {
	for _, n := range names {
		if sameHeaderName(k, n) {
			return true
		}
	}
	return false
}

// sameHeaderName compares a header name with a lower-case canonical one, ignoring ASCII
// case and treating '_' as '-'.
func sameHeaderName(k, canonical string) bool {
	return len(k) == len(canonical) && hasHeaderPrefix(k, canonical)
}

// hasHeaderPrefix reports whether header name k starts with the lower-case prefix,
// ignoring ASCII case and treating '_' as '-'.
func hasHeaderPrefix(k, prefix string) bool {
	if len(k) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		c := k[i]
		switch {
		case c == '_':
			c = '-'
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		if c != prefix[i] {
			return false
		}
	}
	return true
}

// isToken reports whether s is one RFC 9110 token (a method name).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0 {
			continue
		}
		return false
	}
	return true
}

// authenticate finds the app from its credential: the app token header, else the API key
// header, else an Authorization bearer value that is not a JWT (JWTs there are user tokens).
// It returns the header the credential came from, so that allow can remove it.
func (r *Rules) authenticate(in *Input) (*App, string, Code) {
	if v, present, ok := in.singleValue(r.opt.AppTokenHeader); present {
		if !ok {
			return nil, "", Unauthorized
		}
		if a := lookup(r.byToken, HashCredential(v)); a != nil {
			return a, r.opt.AppTokenHeader, ""
		}
		return nil, "", AppNotFound
	}
	if v, present, ok := in.singleValue(r.opt.APIKeyHeader); present {
		if !ok {
			return nil, "", Unauthorized
		}
		if a := lookup(r.byKey, HashCredential(v)); a != nil {
			return a, r.opt.APIKeyHeader, ""
		}
		return nil, "", Unauthorized
	}
	if v, ok := bearer(in); ok && strings.Count(v, ".") != 2 {
		if a := lookup(r.byKey, HashCredential(v)); a != nil {
			return a, "authorization", ""
		}
		return nil, "", Unauthorized
	}
	return nil, "", Unauthorized
}

// bearer returns the token of a single "Authorization: Bearer" header.
func bearer(in *Input) (string, bool) {
	v, _, ok := in.singleValue("authorization")
	if !ok || len(v) < 7 || !strings.EqualFold(v[:7], "bearer ") {
		return "", false
	}
	t := strings.TrimSpace(v[7:])
	return t, t != ""
}

func (a *App) state() Code {
	if a.Disabled {
		return AppDisabled
	}
	switch a.AccountState {
	case AccountStateDisabled:
		return AccountDisabled
	case AccountStatePendingDeletion:
		return AccountPendingDeletion
	}
	return ""
}

func failMode(modes ...FailMode) FailMode {
	m := FailClosed
	for _, x := range modes {
		if x != FailModeInherit {
			m = x
		}
	}
	return m
}

func (d *Decision) deny(s Step, c Code) Decision {
	d.Outcome, d.Step, d.Code = Deny, s, c
	return *d
}

func (d *Decision) maintenance(s Step, m *MaintenanceWindow, now time.Time) Decision {
	d.Message = m.Message
	if !m.Until.IsZero() {
		d.RetryAfter = m.Until.Sub(now)
	}
	return d.deny(s, Maintenance)
}

// undecided applies the fail mode to a step that could not decide. It reports whether
// the pipeline goes on (fail open).
func (d *Decision) undecided(s Step, fail FailMode, cause string) bool {
	d.Step, d.Cause = s, cause
	switch fail {
	case FailOpen:
		d.FailOpen = true
		return true
	case FailError:
		d.Outcome = Undecided
		return false
	}
	d.deny(s, ServiceUnavailable)
	return false
}

// established is what steps 4 to 6 tell the later steps.
type established struct {
	license    string // hash of the presented license key, for limits
	unverified bool   // the device steps could not establish a device id (a dependency failed)
}

// credentials runs steps 4 (identity), 5 and 6 (attestation and license), adding the
// user and device lockout keys as they become known, and reports whether the pipeline
// goes on.
func (r *Rules) credentials(ctx context.Context, now time.Time, in *Input, app *App, ep *Endpoint, fail FailMode, lk *lockKeys, d *Decision) (established, bool) {
	var est established
	if ep.User != nil {
		sub, ok := r.identity(ctx, now, in, app, ep.User, d, fail)
		if !ok {
			r.failedCredential(ctx, now, lk, d)
			return est, false
		}
		if sub != "" && lk != nil {
			r.addLockKey(lk, LockUser, "user:", ep.User.Verifier.Name+":"+sub)
		}
	}
	if app.Device == nil {
		return est, true
	}
	v := app.Device.Device(ctx, now, in, ep)
	est.license, est.unverified = v.License, v.Err != nil && v.DeviceID == ""
	if v.DeviceID != "" && lk != nil {
		r.addLockKey(lk, LockDevice, "device:", v.DeviceID)
	}
	if !r.device(d, in, v, StepAttest, fail) {
		r.failedCredential(ctx, now, lk, d)
		return est, false
	}
	return est, true
}

// device folds a DeviceVerdict into d and reports whether the pipeline goes on. A
// refusal wins over "could not decide": a verdict with both is a denial whatever the
// fail mode, so that failing open never lets through what a later step refused.
func (r *Rules) device(d *Decision, in *Input, v DeviceVerdict, step Step, fail FailMode) bool {
	if v.Step != "" {
		step = v.Step
	}
	if v.Provider != "" {
		d.AttestationProvider = v.Provider
	}
	d.CacheHit = d.CacheHit || v.CacheHit
	if v.Code != "" {
		d.Message = v.Message
		d.deny(step, v.Code)
		return false
	}
	if v.DeviceID != "" {
		d.DeviceID = v.DeviceID // verified, even before a step that could not decide
	}
	for _, h := range v.Remove { // only what the client sent
		if _, ok := in.Headers[h]; ok {
			d.Remove = append(d.Remove, h)
		}
	}
	if v.Err != nil {
		return d.undecided(step, fail, v.Err.Error())
	}
	return true
}

// lockKeys are a request's lockout keys, added as they become known (LockoutKinds);
// the first checked of them have been checked for a lock already.
type lockKeys struct {
	keys       [3]string
	n, checked int
}

// newLockKeys returns a request's lockout keys with its client address, or nil without a
// lockout (nothing to collect, nothing allocated).
func (r *Rules) newLockKeys(ip netip.Addr) *lockKeys {
	if r.opt.Lockout == nil {
		return nil
	}
	k := new(lockKeys)
	if ip.IsValid() {
		r.addLockKey(k, LockIP, "ip:", ip.String())
	}
	return k
}

// addLockKey adds the key prefix+v when the lockout counts keys of kind.
func (r *Rules) addLockKey(k *lockKeys, kind LockoutKinds, prefix, v string) {
	if (r.opt.LockoutKeys != 0 && r.opt.LockoutKeys&kind == 0) || k.n == len(k.keys) {
		return
	}
	k.keys[k.n] = prefix + v
	k.n++
}

// locked refuses the request with ACCOUNT_LOCKED when one of the keys not checked yet is
// locked out. A store error is "not locked".
func (r *Rules) locked(ctx context.Context, now time.Time, k *lockKeys, d *Decision) bool {
	if k == nil || k.checked == k.n {
		return false
	}
	keys := k.keys[k.checked:k.n]
	k.checked = k.n
	until, locked, err := r.opt.Lockout.Locked(ctx, now, keys...)
	if err != nil || !locked {
		return false
	}
	d.RetryAfter = until.Sub(now)
	d.Message = ""
	d.deny(StepApp, AccountLocked)
	return true
}

// failedCredential counts a refusal towards the lockout of every key known so far when
// it is a wrong credential (wrongCredential). A key that is locked out already turns the
// refusal into ACCOUNT_LOCKED, so that a locked client learns nothing from its guesses:
// the right credential and a wrong one get the same answer.
func (r *Rules) failedCredential(ctx context.Context, now time.Time, k *lockKeys, d *Decision) {
	if k == nil || k.n == 0 || d.Outcome != Deny || !wrongCredential(d.Step, d.Code) {
		return
	}
	if r.locked(ctx, now, k, d) {
		return
	}
	_ = r.opt.Lockout.Fail(ctx, now, k.keys[:k.n]...) // best effort: a lockout never denies on store errors
}

// wrongCredential reports whether a refusal is what guessing or replaying a credential
// produces: an unknown app token or API key, a user token or attestation that does not
// verify, an unknown or revoked license key, a license used beyond its devices or a
// device header that contradicts the attested device. Refusals of genuine credentials
// (expired tokens and attestations, a role or verdict the caller lacks, a lapsed license),
// of missing ones past the app step, and "could not decide" do not count: honest clients
// produce them, and counting them would lock honest clients out.
func wrongCredential(s Step, c Code) bool {
	switch c {
	case Unauthorized:
		return s == StepApp // no or an unknown API key; at the identity step: no user token
	case AppNotFound, InvalidToken, InvalidKey, LicenseRevoked, HWIDMismatch, InvalidAttestation, AttestationFailed:
		return true
	}
	return false
}

// limits runs step 8. A device throttle counts the verified device id only; when the
// device steps could not verify one (est.unverified: attestation keys unreachable and the
// fail mode open), the request is counted under a stand-in device named after the client
// address, so that rotating unverifiable tokens or claimed ids cannot escape a device
// throttle. The stand-in holds a space, which no device id can.
func (r *Rules) limits(ctx context.Context, now time.Time, app *App, ep *Endpoint, ip netip.Addr, est established, d *Decision, fail FailMode) bool {
	req := LimitRequest{App: app.Name, Endpoint: ep.Name, Org: app.Org, Device: d.DeviceID, License: est.license, Cost: ep.Cost}
	if req.Cost < 1 {
		req.Cost = 1
	}
	if ip.IsValid() {
		req.IP = ip.String()
	}
	if req.Device == "" && est.unverified {
		req.Device = UnverifiedDevicePrefix + req.IP
	}
	res, err := r.opt.Limiter.Limit(ctx, now, req)
	if err != nil {
		return d.undecided(StepLimits, fail, err.Error())
	}
	d.RateLimit = res
	if res.Code != "" {
		d.RetryAfter = res.RetryAfter
		d.deny(StepLimits, res.Code)
		return false
	}
	return true
}

// UnverifiedDevicePrefix starts the stand-in device key of a request whose device could
// not be verified because a dependency was unreachable; the client address follows.
const UnverifiedDevicePrefix = "unverified ip "

// allow completes an allowed decision: identity headers for the upstream, and removal
// of the credential Gatehouse consumed and of identity headers a client tried to set. A
// value Gatehouse would forward that is not plain visible ASCII (a JWT subject with control
// characters, say) turns the decision into a denial: it is never forwarded, and dropping
// it silently could leave the upstream to guess who called.
func (r *Rules) allow(d *Decision, in *Input, credHeader string, forged bool) {
	d.Outcome, d.Step = Allow, StepDone
	h := &r.hdr
	d.Upstream = append(d.Upstream,
		Header{Key: h.app, Value: d.App},
		Header{Key: h.endpoint, Value: d.Endpoint})
	if d.DeviceID != "" {
		d.Upstream = append(d.Upstream, Header{Key: h.device, Value: d.DeviceID})
	}
	if d.FailOpen {
		d.Upstream = append(d.Upstream, Header{Key: h.failOpen, Value: "true"})
	}
	for _, u := range d.Upstream {
		if !forwardable(u.Value) {
			r.unforwardable(d, u.Key)
			return
		}
	}
	// A client must not be able to pose as Gatehouse: drop identity headers it sent that
	// this decision does not set, in any mix of case, '-' and '_' (an upstream reading
	// CGI-style names sees x_gatehouse_user as x-gatehouse-user).
	if forged {
		for k := range in.Headers {
			if k = strings.ToLower(k); hasHeaderPrefix(k, r.idPrefix) && !d.setsUpstream(k) {
				d.Remove = append(d.Remove, k)
			}
		}
	}
	if credHeader != "" && !d.setsUpstream(credHeader) {
		d.Remove = append(d.Remove, credHeader)
	}
}

// forwardable reports whether a header value may be sent upstream as it is: visible ASCII
// and inner spaces only, so that no proxy or upstream reads it differently (a control
// byte, a line break, bytes another hop would re-encode, or edge spaces it would trim).
func forwardable(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' || c > '~' || (c == ' ' && (i == 0 || i == len(v)-1)) {
			return false
		}
	}
	return true
}

// unforwardable denies a decision whose upstream header key holds a value that may not
// be forwarded, with the code of the step the value came from.
func (r *Rules) unforwardable(d *Decision, key string) {
	d.Upstream, d.Remove = nil, nil
	switch key {
	case r.hdr.user:
		d.deny(StepIdentity, InvalidToken)
	case r.hdr.device:
		d.deny(StepAttest, InvalidAttestation)
	default: // an injected secret
		d.deny(StepSecrets, SecretDecryptionFailed)
	}
}

func (d *Decision) setsUpstream(key string) bool {
	for _, h := range d.Upstream {
		if h.Key == key {
			return true
		}
	}
	return false
}
