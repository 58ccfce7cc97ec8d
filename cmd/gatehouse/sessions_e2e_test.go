package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/gatehouse/gatehouse/policy/attest/attesttest"
)

// sessConfig serves the session endpoints for two apps. {{T:x}} is an app-token digest
// (writeConfig), {{L}} the license key's digest, {{STORE}} the store section.
const sessConfig = `
{{STORE}}
sessions:
  keys:
    - {id: k1, file: k1.pem}
    - {id: k2, file: k2.pem}
  active_key: k2
  ttl: 10m
apps:
  - name: mobile
    dialect: protekt
    app_token_sha256: ["{{T:mobile}}"]
    endpoints: ["*"]
    attestation:
      providers:
        - type: session
        - type: firebase_app_check
          project_number: "424242"
          app_ids: ["1:424242:ios:abc"]
          replay_protection: true
          claims: {device_id: device_id}
          jwks: {file: fb.json}
    devices: {trust_device_header: true}
    licenses:
      required: false
      max_devices: 1
      keys: [{sha256: "{{L}}"}]
  - name: other
    dialect: protekt
    app_token_sha256: ["{{T:other}}"]
    endpoints: ["*"]
    attestation:
      providers:
        - type: session
endpoints:
  - {name: challenge, path: /v1/attest/challenge, methods: [POST], serve: challenge}
  - {name: exchange, path: /v1/attest/exchange, methods: [POST], serve: exchange}
  - {name: refresh, path: /v1/attest/refresh, methods: [POST], serve: refresh}
  - {name: heartbeat, path: /auth/heartbeat, methods: [POST], serve: heartbeat, dialect: license, sdk_auth: true}
  - {name: jwks, path: /.well-known/session-jwks.json, methods: [GET], serve: jwks}
  - {name: data, path: /v1/data, attestation: require}
  - {name: firebase-only, path: /v1/fb, attestation: require}
`

const (
	sessFBProject = "424242"
	sessFBApp     = "1:424242:ios:abc"
)

type sessEnv struct {
	t       *testing.T
	fb      *attesttest.Key
	license string
	jti     atomic.Int64
	run     string
}

// sessionsSetup writes the keys and the configuration into a new directory and returns
// the configuration's path.
func sessionsSetup(t *testing.T, store string) (*sessEnv, string) {
	dir := t.TempDir()
	e := &sessEnv{t: t, fb: attesttest.NewKey(t, "RS256", "fb-1"), run: fmt.Sprintf("%x", atRandBytes(t, 6))}
	e.license = "lic-" + e.run
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"k1.pem": pkcs8(t, ec), "k2.pem": pkcs8(t, ed), "fb.json": attesttest.JWKS(e.fb)}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := strings.NewReplacer("{{STORE}}", store, "{{L}}", sha(e.license)).Replace(sessConfig)
	return e, writeConfig(t, dir, cfg)
}

// writeSessionKey writes a fresh Ed25519 session signing key to dir/k1.pem.
func writeSessionKey(t *testing.T, dir string) {
	t.Helper()
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "k1.pem"), pkcs8(t, ed), 0o600); err != nil {
		t.Fatal(err)
	}
}

func pkcs8(t *testing.T, k any) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// firebase mints a fresh App Check token (a new jti) for device.
func (e *sessEnv) firebase(device string) string {
	now := time.Now()
	return attesttest.Sign(e.t, e.fb, attesttest.Claims{"iss": "https://firebaseappcheck.googleapis.com/" + sessFBProject,
		"aud": []string{"projects/" + sessFBProject}, "sub": sessFBApp, "device_id": device,
		"iat": now.Add(-time.Minute).Unix(), "exp": now.Add(time.Hour).Unix(),
		"jti": fmt.Sprintf("%s-%d", e.run, e.jti.Add(1))}, nil)
}

// served is the answer of a served endpoint.
type served struct {
	Status       string `json:"status"`
	SessionID    string `json:"session_id"`
	SessionToken string `json:"session_token"`
	RefreshToken string `json:"refresh_token"`
	ExpiresIn    int64  `json:"expires_in"`
	Challenge    string `json:"challenge"`
}

// sessPost sends a request for app with headers (name/value pairs) and returns the response.
func sessPost(t *testing.T, srv *testServer, app, path, body string, kv ...string) *authv3.CheckResponse {
	t.Helper()
	h := map[string]string{"x-app-token": "tok-" + app}
	for i := 0; i+1 < len(kv); i += 2 {
		h[kv[i]] = kv[i+1]
	}
	method := "POST"
	if strings.HasPrefix(path, "/v1/data") || strings.HasPrefix(path, "/v1/fb") || strings.HasPrefix(path, "/.well-known") {
		method = "GET"
	}
	resp, err := srv.check(t, request{method: method, path: path, headers: h, body: body})
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// answer decodes a served 200 answer.
func answer(t *testing.T, resp *authv3.CheckResponse) served {
	t.Helper()
	d := resp.GetDeniedResponse()
	if d == nil || d.GetStatus().GetCode() != 200 {
		t.Fatalf("want a served 200: %s", describe(resp))
	}
	if cc, _ := headerValue(d.GetHeaders(), "cache-control"); cc != "no-store" {
		t.Errorf("cache-control %q, want no-store", cc)
	}
	var a served
	if err := json.Unmarshal([]byte(d.GetBody()), &a); err != nil {
		t.Fatalf("body %s: %v", d.GetBody(), err)
	}
	return a
}

// refusal checks a protekt-dialect denial: HTTP status and error code, typed from 001.
func refusal(t *testing.T, resp *authv3.CheckResponse, status int, code string) {
	t.Helper()
	d := resp.GetDeniedResponse()
	if d == nil || int(d.GetStatus().GetCode()) != status {
		t.Fatalf("want HTTP %d %s: %s", status, code, describe(resp))
	}
	var b struct {
		Error      string `json:"error"`
		StatusCode int    `json:"statusCode"`
	}
	if err := json.Unmarshal([]byte(d.GetBody()), &b); err != nil || b.Error != code || b.StatusCode != status {
		t.Fatalf("body %s, want error %q statusCode %d", d.GetBody(), code, status)
	}
}

func allowedDevice(t *testing.T, resp *authv3.CheckResponse) string {
	t.Helper()
	ok := resp.GetOkResponse()
	if ok == nil {
		t.Fatalf("want allowed: %s", describe(resp))
	}
	v, _ := headerValue(ok.GetHeaders(), "x-gatehouse-device")
	return v
}

func adminPost(t *testing.T, srv *testServer, token, path, body string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+srv.adminAddr+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

const sessAdminToken = "session-admin-token-0123456789"

func adminTokenFile(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(p, []byte(sessAdminToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSessionsE2E: challenge → exchange (license key + HWID; Firebase App Check) → the
// session token as a credential → heartbeat → refresh (the old refresh token refused) →
// revocation through the admin API → session_revoked; another app's session refused; the
// JWKS on the served endpoint and the admin port.
func TestSessionsE2E(t *testing.T) {
	e, cfg := sessionsSetup(t, "")
	srv := startServer(t, "--config", cfg, "--admin-token-file", adminTokenFile(t))
	srv.waitReady(t)

	if c := answer(t, sessPost(t, srv, "mobile", "/v1/attest/challenge", "")); len(c.Challenge) != 43 || c.ExpiresIn != 300 {
		t.Errorf("challenge %+v: want 43 characters, 300s", c)
	}
	// No proof: nothing to exchange.
	resp := sessPost(t, srv, "mobile", "/v1/attest/exchange", "")
	if d := resp.GetDeniedResponse(); d == nil || d.GetStatus().GetCode() != 403 {
		t.Fatalf("exchange without a proof: %s", describe(resp))
	}

	// License key + HWID (the 002 SDK login).
	lic := answer(t, sessPost(t, srv, "mobile", "/v1/attest/exchange", "", "x-license-key", e.license, "x-device-id", "hwid-1"))
	if lic.SessionToken == "" || lic.RefreshToken == "" || lic.ExpiresIn != 600 {
		t.Fatalf("license exchange: %+v", lic)
	}
	ok := sessPost(t, srv, "mobile", "/v1/data", "", "x-session-token", lic.SessionToken)
	if dev := allowedDevice(t, ok); dev != "hwid-1" {
		t.Errorf("device forwarded %q, want hwid-1", dev)
	}
	if rm := ok.GetOkResponse().GetHeadersToRemove(); !slices.Contains(rm, "x-session-token") {
		t.Errorf("the session token is not removed before the upstream: %v", rm)
	}
	// A session is not a proof for another session, and a session cannot say another device.
	if d := sessPost(t, srv, "mobile", "/v1/attest/exchange", "", "x-session-token", lic.SessionToken).GetDeniedResponse(); d.GetStatus().GetCode() != 403 {
		t.Errorf("exchange of a session: %d %s, want 403", d.GetStatus().GetCode(), d.GetBody())
	}
	if d := sessPost(t, srv, "mobile", "/v1/data", "", "x-session-token", lic.SessionToken, "x-device-id", "hwid-2").GetDeniedResponse(); d.GetStatus().GetCode() != 403 {
		t.Errorf("session with another device id: %d %s, want 403", d.GetStatus().GetCode(), d.GetBody())
	}
	// Another app does not accept this app's session.
	refusal(t, sessPost(t, srv, "other", "/v1/data", "", "x-session-token", lic.SessionToken), 401, "invalid_token")
	refusal(t, sessPost(t, srv, "mobile", "/v1/data", "", "x-session-token", lic.SessionToken[:len(lic.SessionToken)-4]+"AAAA"), 401, "invalid_token")

	// Heartbeat (SDK envelope): the same session, extended.
	hb := answer(t, sessPost(t, srv, "mobile", "/auth/heartbeat", "", "x-session-token", lic.SessionToken))
	if hb.Status != "success" || hb.SessionID != lic.SessionID || hb.SessionToken == "" || hb.RefreshToken != "" {
		t.Fatalf("heartbeat: %+v", hb)
	}
	// Refresh: once.
	body := `{"refresh_token":"` + lic.RefreshToken + `"}`
	rf := answer(t, sessPost(t, srv, "mobile", "/v1/attest/refresh", body))
	if rf.SessionID != lic.SessionID || rf.RefreshToken == "" || rf.RefreshToken == lic.RefreshToken {
		t.Fatalf("refresh: %+v", rf)
	}
	refusal(t, sessPost(t, srv, "mobile", "/v1/attest/refresh", body), 401, "refresh_token_invalid")
	refusal(t, sessPost(t, srv, "other", "/v1/attest/refresh", `{"refresh_token":"`+rf.RefreshToken+`"}`), 401, "refresh_token_invalid")

	// Firebase App Check: a session for its device; revoked by device before first use.
	fb := answer(t, sessPost(t, srv, "mobile", "/v1/attest/exchange", "", "x-firebase-appcheck", e.firebase("fb-device-1")))
	if code := adminPost(t, srv, "wrong-token-0123456789", "/admin/sessions/revoke", `{"app":"mobile","device_id":"fb-device-1"}`); code != 401 {
		t.Fatalf("revocation without the admin token: %d", code)
	}
	if code := adminPost(t, srv, sessAdminToken, "/admin/sessions/revoke", `{"app":"mobile","device_id":"fb-device-1"}`); code != 200 {
		t.Fatalf("revoke device: %d", code)
	}
	refusal(t, sessPost(t, srv, "mobile", "/v1/data", "", "x-session-token", fb.SessionToken), 401, "session_revoked")
	// Revoke one session: the heartbeat sees it at once (SDK: session_expired, HTTP 200).
	if code := adminPost(t, srv, sessAdminToken, "/admin/sessions/revoke", `{"session_id":"`+lic.SessionID+`"}`); code != 200 {
		t.Fatalf("revoke session: %d", code)
	}
	d := sessPost(t, srv, "mobile", "/auth/heartbeat", "", "x-session-token", rf.SessionToken).GetDeniedResponse()
	if d.GetStatus().GetCode() != 200 || d.GetBody() != `{"status":"failed","error":"session_expired"}` {
		t.Fatalf("heartbeat of a revoked session: %d %s", d.GetStatus().GetCode(), d.GetBody())
	}
	refusal(t, sessPost(t, srv, "mobile", "/v1/attest/refresh", `{"refresh_token":"`+rf.RefreshToken+`"}`), 401, "refresh_token_invalid")
	if code := adminPost(t, srv, sessAdminToken, "/admin/sessions/revoke", `{"app":"mobile"}`); code != 400 {
		t.Errorf("revocation naming no target: %d, want 400", code)
	}

	// The JWKS: served, and on the admin port, with both kids.
	jw := sessPost(t, srv, "mobile", "/.well-known/session-jwks.json", "").GetDeniedResponse()
	if jw.GetStatus().GetCode() != 200 || !strings.Contains(jw.GetBody(), `"kid":"k1"`) || !strings.Contains(jw.GetBody(), `"kid":"k2"`) {
		t.Fatalf("served JWKS: %d %s", jw.GetStatus().GetCode(), jw.GetBody())
	}
	if adm := srv.body(t, "/-/session-jwks"); !bytes.Equal([]byte(adm), []byte(jw.GetBody())) {
		t.Errorf("admin JWKS %s differs from the served one %s", adm, jw.GetBody())
	}
	if strings.Contains(jw.GetBody(), `"d"`) {
		t.Error("the JWKS holds a private part")
	}
	// Served answers are counted as such, apart from allows and denials.
	counted := false
	for line := range strings.SplitSeq(srv.body(t, "/metrics"), "\n") {
		counted = counted || (strings.HasPrefix(line, "gatehouse_decisions_total{") &&
			strings.Contains(line, `decision="served"`) && strings.Contains(line, `endpoint="exchange"`))
	}
	if !counted {
		t.Error(`no gatehouse_decisions_total{decision="served",endpoint="exchange"}`)
	}
}

// TestSessionsReplicasE2E: two Gatehouse processes on one redis-server. A Firebase App
// Check token accepted by one replica is a replay on the other (the damper is in the
// store); a session begun on one works on the other, and a revocation made through one
// replica's admin API is refused by the other.
func TestSessionsReplicasE2E(t *testing.T) {
	addr, _ := redisServer(t)
	e, cfg := sessionsSetup(t, fmt.Sprintf("store: {type: redis, redis: {addrs: [%q], timeout: 1s}}", addr))
	token := adminTokenFile(t)
	a := startProcess(t, "--config", cfg, "--admin-token-file", token)
	b := startProcess(t, "--config", cfg, "--admin-token-file", token)
	a.waitReady(t)
	b.waitReady(t)

	fb := e.firebase("fb-device-2")
	if dev := allowedDevice(t, sessPost(t, a, "mobile", "/v1/fb", "", "x-firebase-appcheck", fb)); dev != "fb-device-2" {
		t.Fatalf("first use on replica a: device %q", dev)
	}
	for name, srv := range map[string]*testServer{"replica b": b, "replica a": a} {
		resp := sessPost(t, srv, "mobile", "/v1/fb", "", "x-firebase-appcheck", fb)
		if code := resp.GetDynamicMetadata().GetFields()["code"].GetStringValue(); code != "ATTESTATION_FAILED" || resp.GetDeniedResponse().GetStatus().GetCode() != 403 {
			t.Errorf("replayed to %s: %s (code %q), want 403 ATTESTATION_FAILED", name, describe(resp), code)
		}
	}

	s1 := answer(t, sessPost(t, a, "mobile", "/v1/attest/exchange", "", "x-license-key", e.license, "x-device-id", "hwid-9"))
	// A second session of the same device and license, refreshed on a.
	s2 := answer(t, sessPost(t, a, "mobile", "/v1/attest/exchange", "", "x-license-key", e.license, "x-device-id", "hwid-9"))
	s2 = answer(t, sessPost(t, a, "mobile", "/v1/attest/refresh", `{"refresh_token":"`+s2.RefreshToken+`"}`))
	if _, err := a.check(t, request{path: "/v1/attest/refresh", method: "POST", body: `{"refresh_token":"` + s1.RefreshToken + `"}`,
		headers: map[string]string{"x-app-token": "tok-mobile"}}); err != nil {
		t.Fatal(err) // s1's refresh token used once on a
	}
	if dev := allowedDevice(t, sessPost(t, b, "mobile", "/v1/data", "", "x-session-token", s1.SessionToken)); dev != "hwid-9" {
		t.Fatalf("a's session on b: device %q", dev)
	}
	refusal(t, sessPost(t, b, "mobile", "/v1/attest/refresh", `{"refresh_token":"`+s1.RefreshToken+`"}`), 401, "refresh_token_invalid")
	if code := adminPost(t, a, sessAdminToken, "/admin/sessions/revoke", `{"license_sha256":"`+sha(e.license)+`"}`); code != 200 {
		t.Fatalf("revoke license on a: %d", code)
	}
	// s2's session was never looked at on b: b sees the revocation at once.
	refusal(t, sessPost(t, b, "mobile", "/v1/data", "", "x-session-token", s2.SessionToken), 401, "session_revoked")
	refusal(t, sessPost(t, b, "mobile", "/v1/attest/refresh", `{"refresh_token":"`+s2.RefreshToken+`"}`), 401, "refresh_token_invalid")
}

// TestSessionsHeartbeatStatusesE2E: the heartbeat answers of 002_*.txt, each HTTP 200 with
// {"status":"failed","error":...}: a session begun on one replica is heartbeated on
// replicas (sharing its redis-server) whose configuration has since revoked or expired its
// license, disabled the app's account, or used up the heartbeat's credits.
func TestSessionsHeartbeatStatusesE2E(t *testing.T) {
	addr, _ := redisServer(t)
	store := fmt.Sprintf("store: {type: redis, redis: {addrs: [%q], timeout: 1s}}", addr)
	e, base := sessionsSetup(t, store)
	text, err := os.ReadFile(base)
	if err != nil {
		t.Fatal(err)
	}
	variant := func(name string, pairs ...string) string {
		cfg := strings.NewReplacer(pairs...).Replace(string(text))
		if cfg == string(text) {
			t.Fatalf("variant %s changes nothing", name)
		}
		p := filepath.Join(filepath.Dir(base), name+".yaml")
		if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	lic := `keys: [{sha256: "` + sha(e.license) + `"}]`
	hb := `serve: heartbeat, dialect: license, sdk_auth: true}`
	a := startProcess(t, "--config", base)
	a.waitReady(t)
	s := answer(t, sessPost(t, a, "mobile", "/v1/attest/exchange", "", "x-license-key", e.license, "x-device-id", "hwid-hb"))
	if got := answer(t, sessPost(t, a, "mobile", "/auth/heartbeat", "", "x-session-token", s.SessionToken)); got.Status != "success" {
		t.Fatalf("heartbeat on the first replica: %+v", got)
	}
	cases := []struct {
		name  string
		cfg   string
		beats int // heartbeats before the refused one
		want  string
	}{
		{"license revoked", variant("revoked", lic, `keys: [{sha256: "`+sha(e.license)+`", state: revoked}]`), 0, "revoked"},
		{"license expired", variant("expired", lic, `keys: [{sha256: "`+sha(e.license)+`", expires_at: 2001-01-01T00:00:00Z}]`), 0, "expired"},
		{"account disabled", variant("disabled", "apps:\n  - name: mobile\n", "accounts: [{name: acme, state: disabled}]\napps:\n  - name: mobile\n    account: acme\n"), 0, "app_disabled"},
		{"credits used up", variant("credits", hb, hb[:len(hb)-1]+`, limits: [{name: beats, key: [license], credits: true, requests: 1}]}`), 1, "no_credits"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := startProcess(t, "--config", tc.cfg)
			srv.waitReady(t)
			for range tc.beats {
				if got := answer(t, sessPost(t, srv, "mobile", "/auth/heartbeat", "", "x-session-token", s.SessionToken)); got.Status != "success" {
					t.Fatalf("heartbeat within the credits: %+v", got)
				}
			}
			d := sessPost(t, srv, "mobile", "/auth/heartbeat", "", "x-session-token", s.SessionToken).GetDeniedResponse()
			if want := `{"status":"failed","error":"` + tc.want + `"}`; d.GetStatus().GetCode() != 200 || d.GetBody() != want {
				t.Fatalf("heartbeat: %d %s, want 200 %s", d.GetStatus().GetCode(), d.GetBody(), want)
			}
		})
	}
}

// TestSessionsKeyRotationE2E: replicas on one redis-server, configured through a key
// rotation: a session signed with k1 verifies where k1 is still in the set (k2 active, new
// sessions signed by k2), and is refused (invalid_token) once k1 is removed.
func TestSessionsKeyRotationE2E(t *testing.T) {
	addr, _ := redisServer(t)
	e, base := sessionsSetup(t, fmt.Sprintf("store: {type: redis, redis: {addrs: [%q], timeout: 1s}}", addr))
	text, err := os.ReadFile(base)
	if err != nil {
		t.Fatal(err)
	}
	keys := "    - {id: k1, file: k1.pem}\n    - {id: k2, file: k2.pem}\n  active_key: k2\n"
	if !strings.Contains(string(text), keys) {
		t.Fatal("config template changed")
	}
	write := func(name, replacement string) string {
		p := filepath.Join(filepath.Dir(base), name+".yaml")
		if err := os.WriteFile(p, []byte(strings.Replace(string(text), keys, replacement, 1)), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	before := startProcess(t, "--config", write("before", "    - {id: k1, file: k1.pem}\n  active_key: k1\n"))
	during := startProcess(t, "--config", base)
	after := startProcess(t, "--config", write("after", "    - {id: k2, file: k2.pem}\n  active_key: k2\n"))
	for _, s := range []*testServer{before, during, after} {
		s.waitReady(t)
	}
	exchange := func(srv *testServer) string {
		return answer(t, sessPost(t, srv, "mobile", "/v1/attest/exchange", "", "x-firebase-appcheck", e.firebase("rot-dev-1"))).SessionToken
	}
	old, fresh := exchange(before), exchange(during)
	for tok, kid := range map[string]string{old: "k1", fresh: "k2"} {
		h, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
		if err != nil || !strings.Contains(string(h), `"kid":"`+kid+`"`) {
			t.Errorf("token header %s, want kid %s", h, kid)
		}
	}
	if dev := allowedDevice(t, sessPost(t, during, "mobile", "/v1/data", "", "x-session-token", old)); dev != "rot-dev-1" {
		t.Fatalf("k1 session while k1 is still in the set: device %q", dev)
	}
	refusal(t, sessPost(t, after, "mobile", "/v1/data", "", "x-session-token", old), 401, "invalid_token")
	if dev := allowedDevice(t, sessPost(t, after, "mobile", "/v1/data", "", "x-session-token", fresh)); dev != "rot-dev-1" {
		t.Fatalf("k2 session after the rotation: device %q", dev)
	}
}
