package policy

import (
	"context"
	"time"
)

// Direct is an answer Gatehouse gives the client itself, for an endpoint it serves: a
// status, a JSON body and response headers. The adapter sends it as the whole response.
type Direct struct {
	Status  int
	Body    []byte // JSON
	Headers []Header
}

// ServeRequest is what the pipeline established about a request to a served endpoint,
// once every step before the upstream (app, endpoint, device, payload, limits) passed.
type ServeRequest struct {
	In       *Input
	App      string
	Endpoint string
	Dialect  Dialect
	SDKAuth  bool
	DeviceID string // verified device id; "" when none was established
	License  string // hex SHA-256 of the license key the license step accepted; "" when none
	Provider string // the attestation provider that verified the device; "" when none
	// Attested is set when Provider verified its credential (not let on by a fail mode
	// after a dependency failed); some providers name no device (Play Integrity).
	Attested bool
	// Undecided: a device step could not decide (a dependency failed) and the fail mode
	// let the request on, so DeviceID, License and Provider prove nothing.
	Undecided bool
	// DeviceClaimed: DeviceID is the client's device header (trusted by the app), not a
	// device id an attestation named.
	DeviceClaimed bool
}

// ServeResult is a served endpoint's answer: a Direct response, a refusal (Code, rendered
// in the request's dialect like any denial), or Err when it could not decide (a store
// unreachable), which the fail mode resolves (never "open": nothing was served).
type ServeResult struct {
	Direct  *Direct
	Code    Code
	Message string // client-safe; empty: the catalogue's
	Err     error
}

// Server answers an endpoint Gatehouse serves itself. Implementations are immutable and
// safe for concurrent use.
type Server interface {
	Serve(ctx context.Context, now time.Time, req *ServeRequest) ServeResult
}

// serve completes the decision of a request to a served endpoint (the last step, in place
// of the upstream).
func (r *Rules) serve(ctx context.Context, now time.Time, in *Input, ep *Endpoint, est established, fail FailMode, d *Decision) {
	req := ServeRequest{In: in, App: d.App, Endpoint: d.Endpoint, Dialect: d.Dialect, SDKAuth: d.SDKAuth,
		DeviceID: d.DeviceID, License: est.license, Provider: d.AttestationProvider, Attested: d.attested,
		Undecided: est.undecided, DeviceClaimed: est.headerID}
	res := ep.Serve.Serve(ctx, now, &req)
	switch {
	case res.Code != "":
		d.Message = res.Message
		d.deny(StepServe, res.Code)
	case res.Err != nil || res.Direct == nil:
		if fail == FailOpen {
			fail = FailClosed // there is no upstream to fail open to
		}
		cause := "served endpoint gave no answer"
		if res.Err != nil {
			cause = res.Err.Error()
		}
		d.undecided(StepServe, fail, cause)
	default:
		d.Outcome, d.Step, d.Direct = Served, StepDone, res.Direct
	}
}
