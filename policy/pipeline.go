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
	// AttestOptional verifies a credential that is present (a bad one is refused) but
	// requires none, even if the app does: a session exchange, which checks itself that
	// some proof was verified.
	AttestOptional
)

// DeviceVerdict is the outcome of the device steps.
type DeviceVerdict struct {
	Code     Code // empty: passed
	Message  string
	Step     Step
	DeviceID string // verified device id
	// Attested is set when DeviceID was proven by an attestation credential, not taken
	// from a device header the app trusts: only such an id may name the caller.
	Attested bool
	// HeaderID: DeviceID is the client's device header, which the app trusts, not a
	// device id an attestation named.
	HeaderID bool
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
		if ep.Sign != nil {
			d.signWith(ep.Sign, in, now)
		}
	}
	ip := in.ClientIP(r.opt.TrustedHops)
	// 1. app. A locked-out client is refused whatever credential it sends now; the
	// app, when known, only picks the dialect of the refusal.
	app, credHeader, code := r.authenticate(in)
	if app != nil && (ep == nil || ep.Dialect == nil) {
		d.Dialect = app.Dialect
	}
	if app != nil && d.Signer == nil {
		if s := SignerOf(app, ep); s != nil {
			d.signWith(s, in, now)
		}
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
	if d.Signer != nil && !r.nonce(ctx, now, app, &d, fail) {
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
	if ep.Serve != nil {
		r.serve(ctx, now, in, ep, est, fail, &d)
		return d
	}
	r.allow(&d, in, credHeader, forged)
	if d.Outcome == Allow && (app.Caller || ep.Caller) {
		d.Caller = callerID(d.App, est, est.device)
	}
	if d.Outcome == Allow && ep.ForwardClient && ip.IsValid() {
		d.Client = clientKey(ip)
	}
	return d
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
	provider   string // the verified user JWT's provider and subject
	sub        string
	license    string // hash of the presented license key, for limits
	unverified bool   // the device steps could not establish a device id (a dependency failed)
	device     string // the attested device id (never a trusted header's claim)
	undecided  bool   // a device step could not decide (the fail mode let the request on)
	headerID   bool   // the device id is the client's trusted device header, not attested
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
		if sub != "" {
			est.provider, est.sub = ep.User.Verifier.Name, sub
			if lk != nil {
				r.addLockKey(lk, LockUser, "user:", ep.User.Verifier.Name+":"+sub)
			}
		}
	}
	if app.Device == nil {
		return est, true
	}
	v := app.Device.Device(ctx, now, in, ep)
	est.license, est.unverified, est.undecided = v.License, v.Err != nil && v.DeviceID == "", v.Err != nil
	est.headerID = v.HeaderID
	if v.Attested {
		est.device = v.DeviceID
	}
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
			if d.Remove == nil { // one allocation, with room for the app credential allow removes
				d.Remove = make([]string, 0, len(v.Remove)+1)
			}
			d.Remove = append(d.Remove, h)
		}
	}
	if v.Err != nil {
		return d.undecided(step, fail, v.Err.Error())
	}
	d.attested = d.attested || v.Provider != ""
	return true
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
		req.IP = clientKey(ip)
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
	ids, n := [4]Header{{Key: h.app, Value: d.App}, {Key: h.endpoint, Value: d.Endpoint}}, 2
	if d.DeviceID != "" {
		ids[n], n = Header{Key: h.device, Value: d.DeviceID}, n+1
	}
	if d.FailOpen {
		ids[n], n = Header{Key: h.failOpen, Value: "true"}, n+1
	}
	d.Upstream = append(d.Upstream, ids[:n]...) // one allocation for all
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
