package session_test

import (
	"encoding/json"
	"testing"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/policy/session"
)

// TestExchangeProofs: which verified proofs an exchange accepts. An attestation whose
// provider names no device (Play Integrity) is a proof, and its session carries no device
// id; a provider evaluated but not verified (a dependency failed and the fail mode let the
// request on) is not, nor is a session, nor a device id alone.
func TestExchangeProofs(t *testing.T) {
	m := manager(t, keySet(t, "k1", ecKey(t, "k1")), records())
	e := &session.Endpoint{Kind: session.Exchange, Sessions: m}
	for _, tc := range []struct {
		name   string
		req    policy.ServeRequest
		code   policy.Code // "": a session
		device string      // the session's device id
	}{
		{"play integrity, no device id", policy.ServeRequest{App: "a", Provider: "play_integrity", Attested: true}, "", ""},
		{"firebase with a device id", policy.ServeRequest{App: "a", Provider: "firebase_app_check", Attested: true, DeviceID: "d1"}, "", "d1"},
		{"license with a device id", policy.ServeRequest{App: "a", License: "ab", DeviceID: "d1"}, "", "d1"},
		{"provider not verified, no device id", policy.ServeRequest{App: "a", Provider: "play_integrity"}, policy.AttestationRequired, ""},
		{"a session", policy.ServeRequest{App: "a", Provider: "session", Attested: true, DeviceID: "d1"}, policy.AttestationRequired, ""},
		{"a device id alone", policy.ServeRequest{App: "a", DeviceID: "d1"}, policy.AttestationRequired, ""},
		{"a license alone", policy.ServeRequest{App: "a", License: "ab"}, policy.AttestationRequired, ""},
		{"nothing", policy.ServeRequest{App: "a"}, policy.AttestationRequired, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.In = &policy.Input{}
			res := e.Serve(ctx, t0, &tc.req)
			if res.Code != tc.code || res.Err != nil {
				t.Fatalf("code %q err %v, want %q", res.Code, res.Err, tc.code)
			}
			if tc.code != "" {
				return
			}
			var a struct {
				SessionToken string `json:"session_token"`
			}
			if res.Direct == nil || json.Unmarshal(res.Direct.Body, &a) != nil || a.SessionToken == "" {
				t.Fatalf("answer %+v, want a session", res.Direct)
			}
			o := m.VerifySession(ctx, t0, "a", a.SessionToken)
			if o.Code != "" || o.Err != nil || o.DeviceID != tc.device {
				t.Fatalf("the session verifies as %+v, want device id %q", o, tc.device)
			}
		})
	}
}
