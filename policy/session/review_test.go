package session_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/policy/session"
	"github.com/golang-jwt/jwt/v5"
)

// TestExchangeRefusesAnUndecidedProof: a device step that could not decide (its keys
// unreachable, the fail mode open) leaves a provider name and a device id the client
// claimed on the request; the exchange answers "could not decide" and issues nothing.
func TestExchangeRefusesAnUndecidedProof(t *testing.T) {
	m := manager(t, keySet(t, "k1", edKey(t, "k1")), records())
	ep := &session.Endpoint{Kind: session.Exchange, Sessions: m}
	in := &policy.Input{Headers: map[string]string{}}
	cases := []struct {
		name string
		req  policy.ServeRequest
	}{
		{"attestation undecided, claimed device", policy.ServeRequest{In: in, App: "a", DeviceID: "victim", Provider: "signed_token", Undecided: true}},
		{"attestation undecided, license accepted", policy.ServeRequest{In: in, App: "a", DeviceID: "victim", License: "ab", Undecided: true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := ep.Serve(ctx, t0, &tc.req)
			if res.Direct != nil || res.Err == nil || res.Code != "" {
				t.Fatalf("got %+v, want no answer and an error (could not decide)", res)
			}
		})
	}
	// The same request, decided, is served: the refusal above is the undecided flag's.
	ok := policy.ServeRequest{In: in, App: "a", DeviceID: "victim", Provider: "signed_token"}
	if res := ep.Serve(ctx, t0, &ok); res.Direct == nil || res.Direct.Status != 200 {
		t.Fatalf("decided exchange: %+v, want a 200 answer", res)
	}
}

// TestHeartbeatExtendsOnlyTheVerifiedDevice: the device steps verify the credential in the
// app's session provider header; the heartbeat reads the token in the sessions header. A
// request carrying two live session tokens (its own, which passes the device steps, and
// another device's in the heartbeat header) must not extend the other device's session:
// its own device checks (block list, license state, device header) never ran.
func TestHeartbeatExtendsOnlyTheVerifiedDevice(t *testing.T) {
	m := manager(t, keySet(t, "k1", edKey(t, "k1")), records())
	other := start(t, m, "a", "dev-other", "")
	ep := &session.Endpoint{Kind: session.Heartbeat, Sessions: m, Header: "x-session-token"}
	in := &policy.Input{Headers: map[string]string{"x-session-token": other.Session}}
	at := t0.Add(time.Minute)
	res := ep.Serve(ctx, at, &policy.ServeRequest{In: in, App: "a", DeviceID: "dev-mine", Provider: "session"})
	if res.Direct != nil || res.Code != policy.InvalidToken {
		t.Fatalf("heartbeat of another device's session: %+v, want INVALID_TOKEN", res)
	}
	// On an SDK heartbeat, the one answer 002 gives for an invalid session.
	sdk := policy.ServeRequest{In: in, App: "a", DeviceID: "dev-mine", Provider: "session", SDKAuth: true}
	if res := ep.Serve(ctx, at, &sdk); res.Direct != nil || res.Code != policy.SessionExpired {
		t.Fatalf("SDK heartbeat of another device's session: %+v, want SESSION_EXPIRED", res)
	}
	// The session's own device is extended; and so is it when no device step ran (exempt).
	for _, dev := range []string{"dev-other", ""} {
		res := ep.Serve(ctx, at, &policy.ServeRequest{In: in, App: "a", DeviceID: dev, Provider: "session"})
		if res.Direct == nil || res.Direct.Status != 200 {
			t.Fatalf("heartbeat with device %q: %+v, want 200", dev, res)
		}
	}
}

// TestTokenConfusionHeld: tokens signed by a key of the set but dressed as another:
// the kid of the ES256 key on an EdDSA signature (and back), two audiences, another typ,
// no typ, and a refresh token where a session token goes. Each is INVALID_TOKEN.
func TestTokenConfusionHeld(t *testing.T) {
	ecPriv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, edPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	kEC, _ := session.NewKey("ec", ecPriv)
	kED, _ := session.NewKey("ed", edPriv)
	m := manager(t, keySet(t, "ed", kEC, kED), records())
	tk := start(t, m, "a", "dev-1", "")
	claims := jwt.MapClaims{"iss": "gatehouse", "sub": "dev-1", "aud": []string{"a"}, "sid": tk.SessionID,
		"iat": t0.Unix(), "exp": t0.Add(time.Minute).Unix(), "ath": t0.UnixNano()}
	sign := func(m jwt.SigningMethod, key any, kid, typ string, c jwt.MapClaims) string {
		tok := jwt.NewWithClaims(m, c)
		tok.Header["kid"] = kid
		if typ != "" {
			tok.Header["typ"] = typ
		} else {
			delete(tok.Header, "typ")
		}
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	twoAud := jwt.MapClaims{}
	for k, v := range claims {
		twoAud[k] = v
	}
	twoAud["aud"] = []string{"a", "b"}
	// The control: the same claims, honestly signed, verify.
	if o := m.VerifySession(ctx, t0, "a", sign(jwt.SigningMethodEdDSA, edPriv, "ed", session.TokenType, claims)); o.Code != "" || o.DeviceID != "dev-1" {
		t.Fatalf("control: %+v", o)
	}
	cases := map[string]string{
		"EdDSA signature under the ES256 kid": sign(jwt.SigningMethodEdDSA, edPriv, "ec", session.TokenType, claims),
		"ES256 signature under the EdDSA kid": sign(jwt.SigningMethodES256, ecPriv, "ed", session.TokenType, claims),
		"two audiences":                       sign(jwt.SigningMethodEdDSA, edPriv, "ed", session.TokenType, twoAud),
		"typ JWT":                             sign(jwt.SigningMethodEdDSA, edPriv, "ed", "JWT", claims),
		"no typ":                              sign(jwt.SigningMethodEdDSA, edPriv, "ed", "", claims),
		"a refresh token":                     tk.Refresh,
	}
	for name, tok := range cases {
		if o := m.VerifySession(ctx, t0, "a", tok); o.Code != policy.InvalidToken || o.DeviceID != "" {
			t.Errorf("%s: %+v, want INVALID_TOKEN", name, o)
		}
	}
	// And a session token where a refresh token goes.
	if _, code, _ := m.Refresh(ctx, t0, "a", tk.Session); code != policy.RefreshTokenInvalid {
		t.Errorf("session token as a refresh token: %q", code)
	}
}

// TestRevokeDeviceOrderNotClocks: a device or license revocation covers the sessions
// begun before it was written and none begun after, whatever the clocks of the replicas
// say: a session begun on a replica whose clock runs 2s ahead of the one that revokes is
// revoked (and its refresh token with it), and one begun after the revocation on a
// replica whose clock runs 2s behind is not.
func TestRevokeDeviceOrderNotClocks(t *testing.T) {
	const lic = "6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b"
	for _, target := range []session.Target{{App: "a", DeviceID: "dev-1"}, {License: lic}} {
		m := manager(t, keySet(t, "k1", edKey(t, "k1")), records())
		ahead, err := m.Start(ctx, t0.Add(2*time.Second), session.Grant{App: "a", DeviceID: "dev-1", License: lic, Provider: "license"})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Revoke(ctx, t0, target); err != nil {
			t.Fatal(err)
		}
		behind, err := m.Start(ctx, t0.Add(-2*time.Second), session.Grant{App: "a", DeviceID: "dev-1", License: lic, Provider: "license"})
		if err != nil {
			t.Fatal(err)
		}
		at := t0.Add(3 * time.Second)
		if o := m.VerifySession(ctx, at, "a", ahead.Session); o.Code != policy.SessionRevoked {
			t.Errorf("%+v: begun before the revocation, clock ahead: %+v, want SESSION_REVOKED", target, o)
		}
		if _, code, _ := m.Refresh(ctx, at, "a", ahead.Refresh); code != policy.RefreshTokenInvalid {
			t.Errorf("%+v: its refresh token: %q, want REFRESH_TOKEN_INVALID", target, code)
		}
		if o := m.VerifySession(ctx, at, "a", behind.Session); o.Code != "" || o.DeviceID != "dev-1" {
			t.Errorf("%+v: begun after the revocation, clock behind: %+v, want accepted", target, o)
		}
		if _, code, err := m.Refresh(ctx, at, "a", behind.Refresh); code != "" || err != nil {
			t.Errorf("%+v: its refresh token: %q %v, want a new session token", target, code, err)
		}
	}
}

// TestRevocationRecordExpiryRevokesNothingNew: the revocation record lives refresh_ttl +
// ttl (24h10m here); a session begun after the revocation and kept alive by refreshes
// past that stays live, and a new revocation still covers it.
func TestRevocationRecordExpiryRevokesNothingNew(t *testing.T) {
	m := manager(t, keySet(t, "k1", edKey(t, "k1")), records())
	target := session.Target{App: "a", DeviceID: "dev-1"}
	if err := m.Revoke(ctx, t0, target); err != nil {
		t.Fatal(err)
	}
	s, err := m.Start(ctx, t0.Add(time.Second), session.Grant{App: "a", DeviceID: "dev-1", Provider: "license"})
	if err != nil {
		t.Fatal(err)
	}
	rt := s.Refresh
	for _, at := range []time.Time{t0.Add(20 * time.Hour), t0.Add(24*time.Hour + 10*time.Minute), t0.Add(30 * time.Hour)} {
		next, code, err := m.Refresh(ctx, at, "a", rt)
		if code != "" || err != nil {
			t.Fatalf("refresh at +%v: %q %v", at.Sub(t0), code, err)
		}
		rt = next.Refresh
	}
	if err := m.Revoke(ctx, t0.Add(31*time.Hour), target); err != nil {
		t.Fatal(err)
	}
	if _, code, _ := m.Refresh(ctx, t0.Add(31*time.Hour), "a", rt); code != policy.RefreshTokenInvalid {
		t.Fatalf("refresh after the second revocation: %q, want REFRESH_TOKEN_INVALID", code)
	}
}

// TestExchangeRefusesAClaimedDevice: an attestation that names no device, with a device
// id the client claims, is not a proof of that device; a license key with its HWID is.
func TestExchangeRefusesAClaimedDevice(t *testing.T) {
	m := manager(t, keySet(t, "k1", edKey(t, "k1")), records())
	ep := &session.Endpoint{Kind: session.Exchange, Sessions: m}
	in := &policy.Input{Headers: map[string]string{}}
	claimed := policy.ServeRequest{In: in, App: "a", DeviceID: "victim", Provider: "firebase_app_check", DeviceClaimed: true}
	if res := ep.Serve(ctx, t0, &claimed); res.Direct != nil || res.Code != policy.AttestationRequired {
		t.Fatalf("claimed device: %+v, want ATTESTATION_REQUIRED", res)
	}
	lic := policy.ServeRequest{In: in, App: "a", DeviceID: "hwid-1", License: "ab", DeviceClaimed: true}
	if res := ep.Serve(ctx, t0, &lic); res.Direct == nil || res.Direct.Status != 200 {
		t.Fatalf("license with its HWID: %+v, want 200", res)
	}
}
