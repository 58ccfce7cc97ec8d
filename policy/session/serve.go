package session

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/policy/attest/appattest"
	"github.com/gatehouse/gatehouse/policy/challenge"
)

// Kind is what a served endpoint does.
type Kind uint8

// The served endpoints.
const (
	Exchange  Kind = iota + 1 // a verified device proof → a session
	Refresh                   // a refresh token → a new session token and refresh token
	Heartbeat                 // a session token → the same session, extended
	JWKS                      // the session keys' public JWKS
	Challenge                 // a one-time challenge for App Attest
)

var kindNames = map[string]Kind{"exchange": Exchange, "refresh": Refresh, "heartbeat": Heartbeat, "jwks": JWKS, "challenge": Challenge}

// ParseKind reads a configuration spelling: exchange, refresh, heartbeat, jwks or challenge.
func ParseKind(s string) (Kind, bool) {
	k, ok := kindNames[s]
	return k, ok
}

// Endpoint implements policy.Server for one served endpoint.
type Endpoint struct {
	Kind     Kind
	Sessions *Manager
	// Header is the session token's header (heartbeat), the session provider's.
	Header string
	// RefreshHeader carries the refresh token when the body does not (refresh).
	RefreshHeader string
	Challenges    *challenge.Issuer // challenge
	// Enrol holds each app's App Attest keys (by app name), for enrolments at the
	// exchange; config fills it while it compiles the apps, before the rules are used.
	Enrol map[string]*appattest.Keys
}

var _ policy.Server = (*Endpoint)(nil)

// errUndecided refuses an exchange whose proof a device step could not verify.
var errUndecided = errors.New("session exchange: a device step could not decide, no session is issued")

// errUndecidedHeartbeat refuses a heartbeat whose device steps could not decide.
var errUndecidedHeartbeat = errors.New("session heartbeat: a device step could not decide, the session is not extended")

// answer is the JSON body of a served endpoint. SDK endpoints add status "success", the
// envelope of 002_*.txt.
type answer struct {
	Status       string          `json:"status,omitempty"`
	SessionID    string          `json:"session_id,omitempty"`
	SessionToken string          `json:"session_token,omitempty"`
	TokenType    string          `json:"token_type,omitempty"`
	ExpiresAt    int64           `json:"expires_at,omitempty"`
	ExpiresIn    int64           `json:"expires_in,omitempty"`
	RefreshToken string          `json:"refresh_token,omitempty"`
	Challenge    string          `json:"challenge,omitempty"`
	Keys         json.RawMessage `json:"keys,omitempty"`
}

// Serve implements policy.Server.
func (e *Endpoint) Serve(ctx context.Context, now time.Time, req *policy.ServeRequest) policy.ServeResult {
	var (
		t    Tokens
		code policy.Code
		err  error
	)
	switch e.Kind {
	case JWKS:
		return policy.ServeResult{Direct: &policy.Direct{Status: 200, Body: e.Sessions.Keys().JWKS()}}
	case Challenge:
		return e.challenge(ctx, now, req)
	case Exchange:
		g, res, ok := e.grant(ctx, now, req)
		if !ok {
			return res
		}
		t, err = e.Sessions.Start(ctx, now, g)
	case Refresh:
		t, code, err = e.Sessions.Refresh(ctx, now, req.App, e.refreshToken(req.In))
	case Heartbeat:
		if req.Undecided { // a new token outlives the outage, as an exchange's would
			return policy.ServeResult{Err: errUndecidedHeartbeat}
		}
		tok, _ := req.In.Header(e.Header)
		t, code, err = e.Sessions.HeartbeatOf(ctx, now, req.App, req.DeviceID, strings.TrimSpace(tok))
		if code == policy.InvalidToken && req.SDKAuth {
			code = policy.SessionExpired // 002: the SDK heartbeat's one answer for an invalid session
		}
	}
	if err != nil || code != "" {
		return policy.ServeResult{Code: code, Err: err}
	}
	a := answer{SessionID: t.SessionID, SessionToken: t.Session, TokenType: "Bearer", ExpiresAt: t.Expires.Unix(),
		ExpiresIn: int64(e.Sessions.TTL() / time.Second), RefreshToken: t.Refresh}
	return reply(req, &a)
}

// grant is what an exchange verified: the proof the device steps verified (an
// attestation provider's, or a license key bound to the device id), else an App Attest
// enrolment in the body.
func (e *Endpoint) grant(ctx context.Context, now time.Time, req *policy.ServeRequest) (Grant, policy.ServeResult, bool) {
	if req.Undecided {
		// Failing open lets a request on, never mints a credential that outlives the
		// outage: the device id would be whatever the client claimed.
		return Grant{}, policy.ServeResult{Err: errUndecided}, false
	}
	code, msg := exchangeable(req)
	if code == "" {
		prv := req.Provider
		if prv == "" {
			prv = "license"
		}
		return Grant{App: req.App, DeviceID: req.DeviceID, License: req.License, Provider: prv, Verdicts: verdicts(req)}, policy.ServeResult{}, true
	}
	if req.DeviceID == "" && req.Provider == "" {
		if dev, res, tried := e.enrol(ctx, now, req); tried {
			if res.Code != "" || res.Err != nil {
				return Grant{}, res, false
			}
			return Grant{App: req.App, DeviceID: dev, License: req.License, Provider: "app_attest", Verdicts: []string{"enrolled"}}, res, true
		}
	}
	return Grant{}, policy.ServeResult{Code: code, Message: msg}, false
}

// exchangeable checks that the device steps verified a proof: an attestation provider
// other than a session verified its credential (with a device id, or without one for a
// provider that names none, such as Play Integrity), or a license key bound to a device
// id. A provider evaluated but not verified (a dependency failed and the fail mode let the
// request on) is a proof only with the device id it did verify.
func exchangeable(req *policy.ServeRequest) (policy.Code, string) {
	switch {
	case req.Provider == "session":
		return policy.AttestationRequired, "A session is not a proof: use the refresh token"
	case req.DeviceClaimed && req.License == "":
		// Only a license key comes with a device id of the client's own (002); a verified
		// provider that names no device must not lend its proof to a claimed id.
		return policy.AttestationRequired, "The attestation names no device: a claimed device id is not a proof"
	case req.Attested && req.Provider != "":
	case req.DeviceID == "" || (req.Provider == "" && req.License == ""):
		return policy.AttestationRequired, "The exchange needs a proof: an attestation, or a license key with its device id"
	}
	return "", ""
}

// verdicts lists what the exchange verified.
func verdicts(req *policy.ServeRequest) []string {
	var v []string
	if req.Provider != "" {
		v = append(v, "attested")
	}
	if req.License != "" {
		v = append(v, "license")
	}
	return v
}

// refreshToken reads the refresh token: the JSON body's refresh_token, else the header.
func (e *Endpoint) refreshToken(in *policy.Input) string {
	if in.HasBody && !in.BodyPartial && len(in.Body) <= 4096 {
		var b struct {
			RefreshToken string `json:"refresh_token"`
		}
		if json.Unmarshal([]byte(in.Body), &b) == nil && b.RefreshToken != "" {
			return b.RefreshToken
		}
	}
	if e.RefreshHeader != "" {
		if v, ok := in.Header(e.RefreshHeader); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func (e *Endpoint) challenge(ctx context.Context, now time.Time, req *policy.ServeRequest) policy.ServeResult {
	if e.Challenges == nil {
		return policy.ServeResult{Code: policy.ServiceUnavailable}
	}
	c, err := e.Challenges.Issue(ctx, now, req.App)
	if err != nil {
		return policy.ServeResult{Err: err}
	}
	ttl := e.Challenges.TTL()
	return reply(req, &answer{Challenge: c, ExpiresAt: now.Add(ttl).Unix(), ExpiresIn: int64(ttl / time.Second)})
}

func reply(req *policy.ServeRequest, a *answer) policy.ServeResult {
	if req.SDKAuth {
		a.Status = "success"
	}
	b, _ := json.Marshal(a)
	return policy.ServeResult{Direct: &policy.Direct{Status: 200, Body: b}}
}
