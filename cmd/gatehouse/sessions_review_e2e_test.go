package main

// End-to-end, adversarial: the session endpoints under conditions an attacker can choose
// or wait for (a failed dependency, fail_mode open, a replayed proof, two session tokens
// on one heartbeat).

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/gatehouse/gatehouse/policy/attest/attesttest"
)

const sessFailOpenConfig = `
server: {fail_mode: open}
sessions:
  keys: [{id: k1, file: k1.pem}]
  active_key: k1
apps:
  - name: mobile
    dialect: protekt
    app_token_sha256: ["{{T:mobile}}"]
    endpoints: ["*"]
    attestation:
      providers:
        - type: session
        - {type: signed_token, issuer: https://attest.test, jwks: {url: "{{URL}}/attest", allow_http: true, min_refresh: 1h}}
    devices: {trust_device_header: true}
endpoints:
  - {name: exchange, path: /v1/attest/exchange, methods: [POST], serve: exchange}
  - {name: data, path: /v1/data, attestation: require}
`

// TestSessionsExchangeFailOpenMintsNothingE2E: with fail_mode open and the attestation key
// set unreachable, a token no one can verify passes the attestation step (fail open), and
// the device id falls back to the client's x-device-id. The exchange must not take that
// for a proof: a session minted then would carry a device id the client chose, as
// verified, for the whole refresh lifetime (long after the outage).
func TestSessionsExchangeFailOpenMintsNothingE2E(t *testing.T) {
	keys := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "key service down", http.StatusInternalServerError)
	}))
	defer keys.Close()
	dir := t.TempDir()
	writeSessionKey(t, dir)
	srv := startServer(t, "--config", writeConfig(t, dir, strings.ReplaceAll(sessFailOpenConfig, "{{URL}}", keys.URL)))
	srv.waitReady(t)

	bogus := attesttest.NewKey(t, "ES256", "attacker-kid")
	tok := attesttest.Sign(t, bogus, attesttest.Claims{"iss": "https://attest.test", "aud": "mobile",
		"exp": time.Now().Add(time.Hour).Unix(), "device_id": "victim-device"}, nil)
	resp := sessPost(t, srv, "mobile", "/v1/attest/exchange", "", "x-attestation-token", tok, "x-device-id", "victim-device")
	d := resp.GetDeniedResponse()
	if d == nil || d.GetStatus().GetCode() != 503 {
		t.Fatalf("exchange on an unverifiable token under fail open: %s, want 503 (could not decide, nothing served)", describe(resp))
	}
	if strings.Contains(d.GetBody(), "session_token") {
		t.Fatalf("a session was minted: %s", d.GetBody())
	}
}

const sessHeartbeatConfig = `
sessions:
  keys: [{id: k1, file: k1.pem}]
  active_key: k1
apps:
  - name: mobile
    dialect: protekt
    app_token_sha256: ["{{T:mobile}}"]
    endpoints: ["*"]
    attestation:
      providers:
        - {type: session, header: x-app-session}
    devices: {trust_device_header: true}
    licenses:
      required: false
      keys: [{sha256: "{{L}}", max_devices: 2}]
endpoints:
  - {name: exchange, path: /v1/attest/exchange, methods: [POST], serve: exchange}
  - {name: heartbeat, path: /auth/heartbeat, methods: [POST], serve: heartbeat, dialect: license, sdk_auth: true}
`

// TestSessionsHeartbeatOtherDeviceE2E: the app's session provider reads x-app-session,
// the heartbeat x-session-token. A client holding its own session and another device's
// passes the device steps with its own and must not extend the other one.
func TestSessionsHeartbeatOtherDeviceE2E(t *testing.T) {
	dir := t.TempDir()
	writeSessionKey(t, dir)
	srv := startServer(t, "--config", writeConfig(t, dir, strings.ReplaceAll(sessHeartbeatConfig, "{{L}}", sha("lic-hb"))))
	srv.waitReady(t)
	mine := answer(t, sessPost(t, srv, "mobile", "/v1/attest/exchange", "", "x-license-key", "lic-hb", "x-device-id", "hwid-mine"))
	other := answer(t, sessPost(t, srv, "mobile", "/v1/attest/exchange", "", "x-license-key", "lic-hb", "x-device-id", "hwid-other"))

	resp := sessPost(t, srv, "mobile", "/auth/heartbeat", "", "x-app-session", mine.SessionToken, "x-session-token", other.SessionToken)
	d := resp.GetDeniedResponse()
	if d == nil || strings.Contains(d.GetBody(), "session_token") {
		t.Fatalf("heartbeat of another device's session: %s, want a refusal", describe(resp))
	}
	if a := answer(t, sessPost(t, srv, "mobile", "/auth/heartbeat", "", "x-app-session", mine.SessionToken, "x-session-token", mine.SessionToken)); a.Status != "success" || a.SessionToken == "" {
		t.Fatalf("heartbeat of its own session: %+v", a)
	}
}

// TestSessionsHeartbeatInvalidTokenE2E: 002 lists one heartbeat refusal for a session
// token that is invalid or expired, session_expired in a 200 envelope: a missing,
// malformed, forged or foreign session token is that, never the developer API's 401.
func TestSessionsHeartbeatInvalidTokenE2E(t *testing.T) {
	dir := t.TempDir()
	writeSessionKey(t, dir)
	srv := startServer(t, "--config", writeConfig(t, dir, strings.ReplaceAll(sessHeartbeatConfig, "{{L}}", sha("lic-hb"))))
	srv.waitReady(t)
	mine := answer(t, sessPost(t, srv, "mobile", "/v1/attest/exchange", "", "x-license-key", "lic-hb", "x-device-id", "hwid-mine"))
	other := answer(t, sessPost(t, srv, "mobile", "/v1/attest/exchange", "", "x-license-key", "lic-hb", "x-device-id", "hwid-other"))
	parts := strings.Split(mine.SessionToken, ".")
	forged := parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2]))
	cases := []struct {
		name string
		kv   []string
	}{
		{"no token", nil},
		{"malformed", []string{"x-app-session", "not-a-token", "x-session-token", "not-a-token"}},
		{"forged signature", []string{"x-app-session", forged, "x-session-token", forged}},
		{"another device's session", []string{"x-app-session", mine.SessionToken, "x-session-token", other.SessionToken}},
	}
	const want = `{"status":"failed","error":"session_expired"}`
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := sessPost(t, srv, "mobile", "/auth/heartbeat", "", tc.kv...).GetDeniedResponse()
			if d.GetStatus().GetCode() != 200 || d.GetBody() != want {
				t.Fatalf("heartbeat: %d %s, want 200 %s", d.GetStatus().GetCode(), d.GetBody(), want)
			}
		})
	}
}

const sessExchangeLimitConfig = `
sessions:
  keys: [{id: k1, file: k1.pem}]
  active_key: k1
apps:
  - name: mobile
    dialect: protekt
    app_token_sha256: ["{{T:mobile}}"]
    endpoints: ["*"]
    attestation:
      providers: [{type: session}]
    devices: {trust_device_header: true}
    licenses:
      required: false
      max_devices: 0
      keys: [{sha256: "{{L}}"}]
endpoints:
  - name: exchange
    path: /v1/attest/exchange
    methods: [POST]
    serve: exchange
    limits:
      - {name: exchanges-per-device, key: [device], requests: 3, per: 1h}
      - {name: exchanges-per-license, key: [license], requests: 5, per: 1h}
`

// TestSessionsExchangeReplayBoundedE2E: a license key with its device id is a static
// proof: replayed, each exchange mints a session (two records for refresh_ttl). The limits
// the README gives the exchange bound it, per device and, for a license not bound to
// devices (any device id the client names), per license.
func TestSessionsExchangeReplayBoundedE2E(t *testing.T) {
	dir := t.TempDir()
	writeSessionKey(t, dir)
	srv := startServer(t, "--config", writeConfig(t, dir, strings.ReplaceAll(sessExchangeLimitConfig, "{{L}}", sha("lic-x"))))
	srv.waitReady(t)
	exchange := func(hwid string) (served, bool) {
		resp := sessPost(t, srv, "mobile", "/v1/attest/exchange", "", "x-license-key", "lic-x", "x-device-id", hwid)
		if d := resp.GetDeniedResponse(); d != nil && d.GetStatus().GetCode() == 429 {
			if strings.Contains(d.GetBody(), "session_token") {
				t.Fatalf("a refused exchange carries a session: %s", d.GetBody())
			}
			return served{}, false
		}
		return answer(t, resp), true
	}
	for i := range 3 { // the limit per device, exactly
		if _, ok := exchange("hwid-1"); !ok {
			t.Fatalf("exchange %d of 3 of one device refused", i+1)
		}
	}
	if _, ok := exchange("hwid-1"); ok {
		t.Fatal("a 4th exchange of one device within the hour minted a session")
	}
	// Rotating the device id: the license's limit (5, the refused one not counted) holds.
	for i, hwid := range []string{"hwid-2", "hwid-3"} {
		if _, ok := exchange(hwid); !ok {
			t.Fatalf("exchange %d of the license refused", 4+i)
		}
	}
	if _, ok := exchange("hwid-4"); ok {
		t.Fatal("a 6th exchange of one license within the hour minted a session")
	}
}

// TestSessionsStoreDownFailsClosedE2E: with the shared store gone and the default fail
// mode (closed), a session token the replica has not looked up yet is not accepted, and
// no refresh, heartbeat, exchange or revocation answers as if it had worked.
func TestSessionsStoreDownFailsClosedE2E(t *testing.T) {
	addr, kill := redisServer(t)
	e, cfg := sessionsSetup(t, fmt.Sprintf("store: {type: redis, redis: {addrs: [%q], timeout: 1s}}", addr))
	srv := startServer(t, "--config", cfg, "--admin-token-file", adminTokenFile(t))
	srv.waitReady(t)
	s := answer(t, sessPost(t, srv, "mobile", "/v1/attest/exchange", "", "x-license-key", e.license, "x-device-id", "hwid-down"))
	kill()

	for name, resp := range map[string]*authv3.CheckResponse{
		"session on a request": sessPost(t, srv, "mobile", "/v1/data", "", "x-session-token", s.SessionToken),
		"refresh":              sessPost(t, srv, "mobile", "/v1/attest/refresh", `{"refresh_token":"`+s.RefreshToken+`"}`),
		"exchange":             sessPost(t, srv, "mobile", "/v1/attest/exchange", "", "x-license-key", e.license, "x-device-id", "hwid-down"),
	} {
		if d := resp.GetDeniedResponse(); d == nil || d.GetStatus().GetCode() != 503 || strings.Contains(d.GetBody(), "session_token") {
			t.Errorf("%s with the store down: %s, want 503", name, describe(resp))
		}
	}
	hb := sessPost(t, srv, "mobile", "/auth/heartbeat", "", "x-session-token", s.SessionToken).GetDeniedResponse()
	if hb == nil || strings.Contains(hb.GetBody(), "success") || strings.Contains(hb.GetBody(), "session_token") {
		t.Errorf("heartbeat with the store down: %v", hb)
	}
	if code := adminPost(t, srv, sessAdminToken, "/admin/sessions/revoke", `{"session_id":"`+s.SessionID+`"}`); code != 503 {
		t.Errorf("revocation with the store down: %d, want 503", code)
	}
}

const sessChallengeLimitConfig = `
sessions:
  keys: [{id: k1, file: k1.pem}]
  active_key: k1
apps:
  - name: mobile
    dialect: protekt
    app_token_sha256: ["{{T:mobile}}"]
    endpoints: ["*"]
endpoints:
  - name: challenge
    path: /v1/attest/challenge
    methods: [POST]
    serve: challenge
    limits: [{name: challenges-per-ip, key: [ip], requests: 3, per: 1m}]
`

// TestSessionsChallengeBoundedE2E: a challenge needs only the app credential, which ships
// inside the app, and each holds a record for challenge_ttl: unbounded, a client fills
// the store. The per-address limit the README gives bounds it: exactly 3 a minute from one
// address, and another address is not affected.
func TestSessionsChallengeBoundedE2E(t *testing.T) {
	dir := t.TempDir()
	writeSessionKey(t, dir)
	srv := startServer(t, "--config", writeConfig(t, dir, sessChallengeLimitConfig))
	srv.waitReady(t)
	challenge := func(src string) int {
		resp, err := srv.check(t, request{method: "POST", path: "/v1/attest/challenge", headers: app("mobile"), source: src})
		if err != nil {
			t.Fatal(err)
		}
		d := resp.GetDeniedResponse()
		if d == nil {
			t.Fatalf("not served: %s", describe(resp))
		}
		if d.GetStatus().GetCode() != 200 && strings.Contains(d.GetBody(), "challenge\"") {
			t.Fatalf("a refusal carries a challenge: %s", d.GetBody())
		}
		return int(d.GetStatus().GetCode())
	}
	for i := range 3 {
		if code := challenge("198.51.100.7"); code != 200 {
			t.Fatalf("challenge %d of 3: %d", i+1, code)
		}
	}
	if code := challenge("198.51.100.7"); code != 429 {
		t.Fatalf("4th challenge from one address: %d, want 429", code)
	}
	if code := challenge("198.51.100.8"); code != 200 {
		t.Fatalf("another address: %d, want 200", code)
	}
}

// TestSessionsExchangeClaimedDeviceE2E: a genuine App Check token that names no device,
// with the device id the client claims in x-device-id (which the app trusts): the exchange
// must not sign that id into a session as attested. A license key with its HWID (002) is
// the one proof whose device id is the client's by design.
func TestSessionsExchangeClaimedDeviceE2E(t *testing.T) {
	e, cfg := sessionsSetup(t, "")
	srv := startServer(t, "--config", cfg)
	srv.waitReady(t)
	resp := sessPost(t, srv, "mobile", "/v1/attest/exchange", "", "x-firebase-appcheck", e.firebase(""), "x-device-id", "victim-device")
	if d := resp.GetDeniedResponse(); d == nil || strings.Contains(d.GetBody(), "session_token") {
		t.Fatalf("exchange of a token naming no device, device claimed: %s", describe(resp))
	}
	refusal(t, resp, 403, "access_denied") // ATTESTATION_REQUIRED in protekt (001)
	// The same token kind naming its device is a proof; and so is a license with its HWID.
	if s := answer(t, sessPost(t, srv, "mobile", "/v1/attest/exchange", "", "x-firebase-appcheck", e.firebase("fb-dev-7"))); s.SessionToken == "" {
		t.Fatal("exchange of a token naming its device")
	}
	if s := answer(t, sessPost(t, srv, "mobile", "/v1/attest/exchange", "", "x-license-key", e.license, "x-device-id", "hwid-7")); s.SessionToken == "" {
		t.Fatal("exchange of a license with its HWID")
	}
}

const sessBoundDeviceConfig = `
sessions:
  keys: [{id: k1, file: k1.pem}]
  active_key: k1
apps:
  - name: mobile
    dialect: protekt
    app_token_sha256: ["{{T:mobile}}"]
    endpoints: ["*"]
    attestation:
      providers:
        - {type: approov, secret_file: approov.key, binding_header: x-device-id}
    devices: {trust_device_header: true}
endpoints:
  - {name: exchange, path: /v1/attest/exchange, methods: [POST], serve: exchange}
`

// TestSessionsExchangeBoundDeviceE2E: an attestation that names no device but binds the
// device header (an Approov token without did, binding_header: x-device-id; Play
// Integrity's request hash and App Attest's client data can do the same) attests that id: the exchange accepts it, and a
// proxy that swaps the id breaks the binding.
func TestSessionsExchangeBoundDeviceE2E(t *testing.T) {
	dir := t.TempDir()
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	secret := atRandBytes(t, 32)
	for name, b := range map[string][]byte{"k1.pem": pkcs8(t, ed), "approov.key": []byte(base64.StdEncoding.EncodeToString(secret) + "\n")} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	srv := startServer(t, "--config", writeConfig(t, dir, sessBoundDeviceConfig))
	srv.waitReady(t)
	tok := attesttest.SignHS256(t, secret, attesttest.Claims{"exp": time.Now().Add(time.Hour).Unix(), "pay": attesttest.Pay("dev-bound")}, nil)
	s := answer(t, sessPost(t, srv, "mobile", "/v1/attest/exchange", "", "approov-token", tok, "x-device-id", "dev-bound"))
	if s.SessionToken == "" {
		t.Fatal("no session for a bound device id")
	}
	resp := sessPost(t, srv, "mobile", "/v1/attest/exchange", "", "approov-token", tok, "x-device-id", "victim-device")
	if d := resp.GetDeniedResponse(); d == nil || d.GetStatus().GetCode() != 403 || strings.Contains(d.GetBody(), "session_token") {
		t.Fatalf("swapped device id: %s, want 403", describe(resp))
	}
}
