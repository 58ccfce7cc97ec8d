// Package device runs the device steps of the pipeline for one app (DESIGN section 2): the
// network step (3: IP and device block and allow lists), attestation (5: see package
// attest) and licenses (6: license keys and their device bindings).
//
// Device identity: the device id of a request is the one its attestation verified. A
// client's x-device-id header that disagrees with it is refused. An unattested
// x-device-id is never used as the device id when the endpoint requires attestation;
// elsewhere it is used only when the app opts in with TrustDeviceHeader (the default is
// not to trust it, so that a client cannot pick the key its throttles are counted under).
package device

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/policy/attest"
)

// Config is one app's compiled device settings.
type Config struct {
	App     string
	Dialect policy.Dialect // the app's dialect; an endpoint's own dialect overrides it
	// Providers are the attestation providers the app accepts, in priority order: the
	// first whose header is present is the one evaluated, with no fall back to a later
	// one if it fails (a downgrade).
	Providers []*attest.Provider
	// Required requires attestation on every endpoint that does not exempt itself.
	Required bool
	Cache    *policy.Cache // verdict cache; nil: no caching
	// DeviceHeader is the client's own device-id header (default x-device-id).
	DeviceHeader      string
	TrustDeviceHeader bool
	// BlockIPs and AllowIPs are matched against the client address; BlockDevices and
	// AllowDevices against the device id. A non-empty allow list refuses everything not
	// on it.
	BlockIPs, AllowIPs         *IPSet
	BlockDevices, AllowDevices IDSet
	Licenses                   *Licenses // nil: no license step
}

// Checker implements policy.DeviceChecker for one app. Immutable; safe for concurrent use.
type Checker struct {
	c      Config
	remove []string // credential headers consumed: every provider's, and the license key
}

var _ policy.DeviceChecker = (*Checker)(nil)

// New returns the checker of c.
func New(c Config) *Checker {
	if c.DeviceHeader == "" {
		c.DeviceHeader = "x-device-id"
	}
	ch := &Checker{c: c}
	for _, p := range c.Providers {
		ch.remove = append(ch.remove, p.Header())
	}
	if c.Licenses != nil {
		if c.Licenses.Header == "" {
			c.Licenses.Header = "x-license-key"
		}
		if c.Licenses.Catalog == nil {
			c.Licenses.Catalog = StaticCatalog{}
		}
		if c.Licenses.Bindings == nil {
			c.Licenses.Bindings = NewMemoryBindings() // callers wire a store; never panic without one
		}
		ch.remove = append(ch.remove, c.Licenses.Header)
	}
	return ch
}

// Network implements policy.DeviceChecker: step 3, the IP lists. ip is the client
// address as the pipeline determined it (Envoy's source address, or the trusted
// x-forwarded-for hop).
func (ch *Checker) Network(_ context.Context, _ time.Time, in *policy.Input, ip netip.Addr, _ *policy.Endpoint) policy.DeviceVerdict {
	if ch.c.BlockIPs.Len() == 0 && ch.c.AllowIPs.Len() == 0 {
		return policy.DeviceVerdict{}
	}
	if !ip.IsValid() {
		// The pipeline computes the client address only when something needs it. Without
		// x-forwarded-for the client address is Envoy's source address whatever the
		// trusted hops; with it, only the pipeline knows which hop to trust.
		if _, ok := in.Headers["x-forwarded-for"]; ok && in.Source.IsValid() {
			return policy.DeviceVerdict{Step: policy.StepNetwork, Err: fmt.Errorf("client address not determined for the IP lists of app %q", ch.c.App)}
		}
		ip = in.Source
	}
	if ch.c.BlockIPs.Contains(ip) || (ch.c.AllowIPs.Len() > 0 && !ch.c.AllowIPs.Contains(ip)) {
		return policy.DeviceVerdict{Step: policy.StepNetwork, Code: policy.Blocked}
	}
	return policy.DeviceVerdict{}
}

// Device implements policy.DeviceChecker: step 5 (attestation and device identity, with
// the device lists) and step 6 (licenses).
//
// An attestation that could not be verified (its keys unreachable) leaves the verdict
// undecided (Err) but does not end the steps: the device lists and the license still run
// as for a request with no verified device id, and a refusal of theirs is returned as
// the verdict (Code), which the pipeline applies whatever its fail mode. The device id an
// unverified token claims is never used.
func (ch *Checker) Device(ctx context.Context, now time.Time, in *policy.Input, ep *policy.Endpoint) policy.DeviceVerdict {
	required := ep.Attestation == policy.AttestRequire ||
		(ch.c.Required && ep.Attestation != policy.AttestExempt && ep.Attestation != policy.AttestOptional)
	dialect := ch.c.Dialect
	if ep.Dialect != nil {
		dialect = *ep.Dialect
	}

	// 5. attestation
	var v policy.DeviceVerdict
	claimed := ""  // the device id an unverifiable token names: for the block list only
	bound := false // the verified token is bound to the device header's value
	if ep.Attestation != policy.AttestExempt {
		v, claimed, bound = ch.attest(ctx, now, in, required)
		if ep.Heartbeat && heartbeatExpired(v.Code, ep.SDKAuth) {
			v.Code, v.Message = policy.SessionExpired, ""
		}
		if v.Code != "" {
			return v
		}
		if v.Err != nil {
			v.DeviceID = "" // unverified: never trusted
		}
	}
	id, code := ch.deviceID(in, v.DeviceID, required, dialect)
	if code != "" {
		v.Code, v.Step = code, policy.StepAttest
		return v
	}
	if ch.blockedDevice(in, id, claimed) {
		v.Code, v.Step = policy.Blocked, policy.StepNetwork
		return v
	}
	// The id is attested when an attestation named it, or when the verified token is bound
	// to the device header that carries it; else it is the client's claim (HeaderID).
	headerID := id != "" && id != v.DeviceID && !(bound && v.Err == nil)
	v.DeviceID, v.HeaderID, v.Attested = id, headerID, id != "" && !headerID

	// 6. license
	if ch.c.Licenses != nil {
		noDevice := policy.AttestationRequired
		if dialect == policy.License {
			noDevice = policy.HWIDMismatch
		}
		l := ch.c.Licenses.check(ctx, now, in, id, noDevice, v.License)
		switch {
		case l.Code != "":
			// The device id stays on the refusal for the lockout's device key; the
			// pipeline never forwards the id of a refused request.
			l.Provider, l.CacheHit, l.DeviceID = v.Provider, v.CacheHit, id
			return l
		case l.Err != nil && v.Err == nil:
			v.Err, v.Step = l.Err, l.Step
		}
		v.License = l.License
	}
	v.Remove = ch.remove
	return v
}

// heartbeatExpired reports whether a heartbeat answers code as SESSION_EXPIRED: an
// expired session credential; on an SDK heartbeat also a missing, malformed or
// unverifiable one, since 002 gives the SDK heartbeat session_expired alone for those.
func heartbeatExpired(code policy.Code, sdk bool) bool {
	switch code {
	case policy.AttestationExpired:
		return true
	case policy.InvalidToken, policy.InvalidAttestation, policy.AttestationFailed, policy.AttestationRequired:
		return sdk
	}
	return false
}

// attest evaluates the highest-priority credential present. claimed is the device id
// named by a token that could not be verified (Outcome.Claimed); bound reports that the
// token is bound to the device header's value (so that value is attested with it).
func (ch *Checker) attest(ctx context.Context, now time.Time, in *policy.Input, required bool) (v policy.DeviceVerdict, claimed string, bound bool) {
	v.Step = policy.StepAttest
	for _, p := range ch.c.Providers {
		tok, present, ok := attest.Credential(in, p.Header())
		if !present {
			continue
		}
		v.Provider = p.Name()
		if !ok {
			v.Code, v.Message = policy.InvalidAttestation, "The attestation header is empty or repeated"
			return v, "", false
		}
		o := p.Check(ctx, now, in, tok, ch.c.Cache)
		v.Code, v.Message, v.DeviceID, v.CacheHit, v.Err = o.Code, o.Message, o.DeviceID, o.CacheHit, o.Err
		v.License = o.License // a session's license, checked by the license step
		return v, o.Claimed, p.BindingHeader() != "" && p.BindingHeader() == ch.c.DeviceHeader
	}
	if required {
		v.Code = policy.AttestationRequired
	}
	return v, "", false
}

// deviceID settles the request's device id: the attested one, which a client's device
// header must not contradict, else the header when the app trusts it and the endpoint
// does not require attestation. A contradiction is HWID_MISMATCH in the license dialect
// and ATTESTATION_FAILED in the others.
func (ch *Checker) deviceID(in *policy.Input, attested string, required bool, dialect policy.Dialect) (string, policy.Code) {
	mismatch := policy.AttestationFailed
	if dialect == policy.License {
		mismatch = policy.HWIDMismatch
	}
	hdr, present, ok := attest.Credential(in, ch.c.DeviceHeader)
	switch {
	case attested != "":
		if present && (!ok || hdr != attested) {
			return "", mismatch
		}
		return attested, ""
	case !present || required || !ch.c.TrustDeviceHeader:
		return "", ""
	case !ok || !attest.ValidDeviceID(hdr):
		return "", mismatch
	}
	return hdr, ""
}

// blockedDevice applies the device lists. The block list also applies to a device id the
// client claims without proof (its device header, or a token that could not be verified:
// claimed): such a claim can only hurt the claimant. The allow list accepts only a device
// id Gatehouse trusts.
func (ch *Checker) blockedDevice(in *policy.Input, id, claimed string) bool {
	if len(ch.c.BlockDevices) > 0 {
		if ch.c.BlockDevices.Contains(id) || (claimed != "" && ch.c.BlockDevices.Contains(claimed)) {
			return true
		}
		if hdr, ok := in.Headers[ch.c.DeviceHeader]; ok {
			for c := range strings.SplitSeq(hdr, ",") {
				if ch.c.BlockDevices.Contains(strings.TrimSpace(c)) {
					return true
				}
			}
		}
	}
	return len(ch.c.AllowDevices) > 0 && !ch.c.AllowDevices.Contains(id)
}
