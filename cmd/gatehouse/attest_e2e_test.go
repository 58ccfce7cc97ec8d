package main

// End-to-end tests of the attestation and device steps: every row of the failure mapping
// (policy/attest/README.md) per provider, licenses, device and IP lists, the verdict cache
// and the demo, through the real gRPC server started by run(), with requests shaped as
// Envoy sends them. The unit tests in policy/attest cover the same rows through Decide;
// these prove the wiring: config keys, key sources over TLS, the stores, the response
// (status, dialect body, gRPC status class, upstream headers, dynamic metadata).

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/policy/attest/attesttest"
	"google.golang.org/grpc/codes"
)

const (
	atIssuer     = "https://attest.e2e.test"
	atFBProject  = "123456"
	atFBApp      = "1:123456:android:abc"
	atCert       = "aa11bb22cc33dd44ee55ff6600112233445566778899aabbccddeeff00112233"
	atBearer     = "Bearer user-session-token"
	atMaxDevices = 3 // the licensed app's max_devices
)

// attestConfig has one app per provider, a license-dialect app with licenses and lists,
// and the endpoints of every attestation mode. {{URL}} is the loopback TLS JWKS server,
// {{T:x}} an app-token digest (writeConfig), {{L:x}} a license-key digest, {{N}} the
// licenses' max_devices (atMaxDevices).
const attestConfig = `
server:
  fail_mode: closed
  trusted_hops: 1
apps:
  # signed_token, JWKS from a file; lists in the protectmyapi dialect.
  - name: signed
    app_token_sha256: ["{{T:signed}}"]
    endpoints: ["*"]
    attestation:
      required: true
      providers:
        - type: signed_token
          issuer: ` + atIssuer + `
          jwks: {file: keys.json}
          max_age: 10m
          min_app_version: 2.0.0
          signing_certs: ["` + atCert + `"]
    devices: {block: [stolen-device]}
    network: {block: [203.0.113.0/24, "2001:db8:bad::/48"]}
  # signed_token, JWKS over loopback TLS (rotation, unknown kid refresh).
  - name: rotating
    app_token_sha256: ["{{T:rotating}}"]
    endpoints: ["*"]
    attestation:
      required: true
      providers:
        - type: signed_token
          issuer: ` + atIssuer + `
          jwks: {url: "{{URL}}/signed", ca_file: ca.pem, min_refresh: 100ms}
  # signed_token whose keys cannot be fetched: could not decide.
  - name: keysdown
    app_token_sha256: ["{{T:keysdown}}"]
    endpoints: ["*"]
    attestation:
      required: true
      providers:
        - type: signed_token
          issuer: ` + atIssuer + `
          jwks: {url: "https://127.0.0.1:1/jwks", min_refresh: 1ms}
  # signed_token, attestation optional.
  - name: optional
    app_token_sha256: ["{{T:optional}}"]
    endpoints: ["*"]
    attestation:
      providers:
        - type: signed_token
          issuer: ` + atIssuer + `
          jwks: {file: keys.json}
  - name: firebase
    app_token_sha256: ["{{T:firebase}}"]
    endpoints: ["*"]
    attestation:
      required: true
      providers:
        - type: firebase_app_check
          project_number: "` + atFBProject + `"
          app_ids: ["` + atFBApp + `"]
          replay_protection: true
          claims: {device_id: device_id}
          jwks: {url: "{{URL}}/firebase", ca_file: ca.pem, min_refresh: 100ms}
  - name: approov
    app_token_sha256: ["{{T:approov}}"]
    endpoints: ["*"]
    attestation:
      required: true
      providers:
        - type: approov
          secret_file: approov.key
          binding_header: authorization
  - name: licensed
    dialect: license
    app_token_sha256: ["{{T:licensed}}"]
    endpoints: ["*"]
    attestation:
      providers:
        - type: signed_token
          issuer: ` + atIssuer + `
          jwks: {file: keys.json}
    devices: {block: [stolen-device]}
    network: {block: [203.0.113.0/24, "2001:db8:bad::/48"]}
    licenses:
      max_devices: {{N}}
      keys:
        - {sha256: "{{L:race}}"}
        - {sha256: "{{L:good}}"}
        - {sha256: "{{L:one}}", max_devices: 1}
        - {sha256: "{{L:revoked}}", state: revoked}
        - {sha256: "{{L:expired}}", state: expired}
        - {sha256: "{{L:lapsed}}", expires_at: 2020-01-01T00:00:00Z}
endpoints:
  - {name: secure, path: /v1/secure, methods: [GET]}
  - {name: must, path: /v1/must, attestation: require}
  - {name: open, path: /v1/open, attestation: exempt}
  - {name: heartbeat, path: /v1/heartbeat, heartbeat: true}
  - {name: validate, path: /auth/validate, methods: [POST], sdk_auth: true}
  - {name: sdk-heartbeat, path: /auth/heartbeat, methods: [POST], sdk_auth: true, heartbeat: true}
`

// attestEnv is a server running attestConfig, and the keys to mint tokens for it.
type attestEnv struct {
	t        *testing.T
	srv      *testServer
	run      string          // unique per env: jti values, license keys
	es, rs   *attesttest.Key // signed_token keys in keys.json
	impostor *attesttest.Key // ES256 under es's kid, in no key set
	rot1     *attesttest.Key // ES256, served at /signed from the start
	rot2     *attesttest.Key // ES256, served at /signed only after a rotation
	fb1, fb2 *attesttest.Key // RS256 Firebase keys; fb2 served only after a rotation
	secret   []byte          // Approov HS256 secret
	jti      atomic.Int64

	mu      sync.Mutex
	served  map[string][]byte // JWKS path → document
	fetches map[string]int
}

func newAttestEnv(t *testing.T) *attestEnv {
	t.Helper()
	e := &attestEnv{
		t:        t,
		run:      hex.EncodeToString(atRandBytes(t, 6)),
		es:       attesttest.NewKey(t, "ES256", "es-1"),
		rs:       attesttest.NewKey(t, "RS256", "rs-1"),
		impostor: attesttest.NewKey(t, "ES256", "es-1"),
		rot1:     attesttest.NewKey(t, "ES256", "rot-1"),
		rot2:     attesttest.NewKey(t, "ES256", "rot-2"),
		fb1:      attesttest.NewKey(t, "RS256", "fb-1"),
		fb2:      attesttest.NewKey(t, "RS256", "fb-2"),
		secret:   atRandBytes(t, 32),
		fetches:  map[string]int{},
	}
	e.served = map[string][]byte{"/signed": attesttest.JWKS(e.rot1), "/firebase": attesttest.JWKS(e.fb1)}
	jwksSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		doc, ok := e.served[r.URL.Path]
		e.fetches[r.URL.Path]++
		e.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("content-type", "application/json")
		w.Write(doc)
	}))
	jwksSrv.Config.ErrorLog = log.New(io.Discard, "", 0)
	t.Cleanup(jwksSrv.Close)

	dir := t.TempDir()
	for name, b := range map[string][]byte{
		"keys.json":   attesttest.JWKS(e.es, e.rs),
		"ca.pem":      pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: jwksSrv.Certificate().Raw}),
		"approov.key": []byte(base64.StdEncoding.EncodeToString(e.secret) + "\n"),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := strings.NewReplacer("{{URL}}", jwksSrv.URL, "{{N}}", strconv.Itoa(atMaxDevices)).Replace(attestConfig)
	for strings.Contains(cfg, "{{L:") {
		i := strings.Index(cfg, "{{L:")
		j := strings.Index(cfg[i:], "}}") + i
		cfg = cfg[:i] + sha(e.license(cfg[i+4:j])) + cfg[j+2:]
	}
	e.srv = startServer(t, "--config", writeConfig(t, dir, cfg))
	e.srv.waitReady(t)
	return e
}

func atRandBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// license is the license key named name (unique to this env: bindings outlive servers
// when the store is process memory).
func (e *attestEnv) license(name string) string { return "lic-" + e.run + "-" + name }

// serve replaces the JWKS served at path (a key rotation).
func (e *attestEnv) serve(path string, keys ...*attesttest.Key) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.served[path] = attesttest.JWKS(keys...)
}

func (e *attestEnv) fetched(path string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.fetches[path]
}

// signedClaims are valid claims for a signed_token provider of app aud.
func (e *attestEnv) signedClaims(aud, device string) attesttest.Claims {
	now := time.Now()
	return attesttest.Claims{"iss": atIssuer, "aud": aud, "iat": now.Add(-time.Minute).Unix(), "exp": now.Add(5 * time.Minute).Unix(),
		"device_id": device, "app_version": "2.3.1", "signing_cert": atCert}
}

// fbClaims are valid App Check claims with a fresh jti.
func (e *attestEnv) fbClaims() attesttest.Claims {
	now := time.Now()
	return attesttest.Claims{"iss": "https://firebaseappcheck.googleapis.com/" + atFBProject,
		"aud": []string{"projects/" + atFBProject}, "sub": atFBApp, "device_id": "fb-device-1",
		"iat": now.Add(-time.Minute).Unix(), "exp": now.Add(time.Hour).Unix(),
		"jti": fmt.Sprintf("%s-%d", e.run, e.jti.Add(1))} // the replay damper outlives servers
}

// approovClaims are valid Approov claims bound to atBearer.
func (e *attestEnv) approovClaims() attesttest.Claims {
	return attesttest.Claims{"exp": time.Now().Add(5 * time.Minute).Unix(), "did": "approov-device", "pay": attesttest.Pay(atBearer)}
}

func (e *attestEnv) sign(k *attesttest.Key, c attesttest.Claims) string {
	return attesttest.Sign(e.t, k, c, nil)
}

// rsaPublicDER and rsaPublicPEM are what an alg-confusion attacker uses as an HMAC
// secret: the RSA key's public half.
func (e *attestEnv) rsaPublicDER(k *attesttest.Key) []byte {
	der, err := x509.MarshalPKIXPublicKey(k.Private.Public())
	if err != nil {
		e.t.Fatal(err)
	}
	return der
}

func (e *attestEnv) rsaPublicPEM(k *attesttest.Key) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: e.rsaPublicDER(k)})
}

// attestCase is one request and what the client and Envoy must see.
type attestCase struct {
	name string
	req  request
	// dup holds repeated header entries (name/value pairs) added to the request, which is
	// then sent as Envoy's header_map (one entry per header line) instead of headers.
	dup      []string
	status   int        // HTTP status; 0: allowed
	code     string     // the dialect's code string in the body
	grpc     codes.Code // gRPC status class of a denial
	internal policy.Code
	device   string // allowed: the verified device id (empty: none)
}

// attestHeaders are the credential headers the server consumes on an allowed request.
var attestHeaders = []string{"x-attestation-token", "x-firebase-appcheck", "approov-token", "x-license-key"}

// headerMapRequest re-shapes a request as Envoy sends it with raw header maps: one entry
// per header line, repeated names included.
func headerMapRequest(r request, dup []string) *authv3.CheckRequest {
	req := envoyRequest(r)
	hr := req.GetAttributes().GetRequest().GetHttp()
	var hm []*corev3.HeaderValue
	for k, v := range hr.GetHeaders() {
		hm = append(hm, &corev3.HeaderValue{Key: k, RawValue: []byte(v)})
	}
	for i := 0; i+1 < len(dup); i += 2 {
		hm = append(hm, &corev3.HeaderValue{Key: dup[i], RawValue: []byte(dup[i+1])})
	}
	hr.Headers = nil
	hr.HeaderMap = &corev3.HeaderMap{Headers: hm}
	return req
}

func (s *testServer) checkHeaderMap(t testing.TB, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.auth.Check(ctx, req)
}

// send runs one case's request.
func (tc attestCase) send(t *testing.T, srv *testServer) *authv3.CheckResponse {
	t.Helper()
	var (
		resp *authv3.CheckResponse
		err  error
	)
	if tc.dup != nil {
		resp, err = srv.checkHeaderMap(t, headerMapRequest(tc.req, tc.dup))
	} else {
		resp, err = srv.check(t, tc.req)
	}
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	return resp
}

// verify asserts what the client and Envoy see for tc.
func (tc attestCase) verify(t *testing.T, resp *authv3.CheckResponse) {
	t.Helper()
	md := resp.GetDynamicMetadata().GetFields()
	if tc.status == 0 {
		ok := resp.GetOkResponse()
		if ok == nil || resp.GetStatus().GetCode() != int32(codes.OK) {
			t.Fatalf("want allowed, got %s", describe(resp))
		}
		dev, found := headerValue(ok.GetHeaders(), "x-gatehouse-device")
		if tc.device == "" && found {
			t.Errorf("x-gatehouse-device %q on a request without a verified device", dev)
		}
		if tc.device != "" && dev != tc.device {
			t.Errorf("x-gatehouse-device %q, want %q", dev, tc.device)
		}
		if got := md["device_id"].GetStringValue(); got != tc.device {
			t.Errorf("metadata device_id %q, want %q", got, tc.device)
		}
		if md["decision"].GetStringValue() != "allow" {
			t.Errorf("metadata decision %v", md["decision"])
		}
		for _, h := range attestHeaders {
			if _, sent := tc.req.headers[h]; !sent {
				continue
			}
			removed := false
			for _, r := range ok.GetHeadersToRemove() {
				removed = removed || r == h
			}
			if !removed {
				t.Errorf("credential header %s not removed (removed %v)", h, ok.GetHeadersToRemove())
			}
		}
		return
	}
	den := resp.GetDeniedResponse()
	if den == nil {
		t.Fatalf("want denied %d %s, got %s", tc.status, tc.code, describe(resp))
	}
	if got := int(den.GetStatus().GetCode()); got != tc.status {
		t.Errorf("HTTP status %d, want %d (%s)", got, tc.status, den.GetBody())
	}
	if got := bodyCode(t, den.GetBody()); got != tc.code {
		t.Errorf("body code %q, want %q: %s", got, tc.code, den.GetBody())
	}
	if got := codes.Code(resp.GetStatus().GetCode()); got != tc.grpc {
		t.Errorf("gRPC status %v, want %v", got, tc.grpc)
	}
	if ct, _ := headerValue(den.GetHeaders(), "content-type"); ct != "application/json" {
		t.Errorf("content-type %q", ct)
	}
	if md["decision"].GetStringValue() != "deny" {
		t.Errorf("metadata decision %v", md["decision"])
	}
	if tc.internal != "" && md["code"].GetStringValue() != string(tc.internal) {
		t.Errorf("metadata code %q, want %s", md["code"].GetStringValue(), tc.internal)
	}
}

func runAttestCases(t *testing.T, srv *testServer, cases []attestCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.verify(t, tc.send(t, srv))
		})
	}
}

// Shorthands for the denials of the protectmyapi dialect.
func atDeny(name string, r request, code policy.Code) attestCase {
	return attestCase{name: name, req: r, status: 403, code: string(code), grpc: codes.PermissionDenied, internal: code}
}

func atAllow(name string, r request, device string) attestCase {
	return attestCase{name: name, req: r, device: device}
}

// get is a GET of path by app with header name/value pairs.
func atGet(appName, path string, kv ...string) request {
	return request{path: path, headers: with(app(appName), kv...)}
}

// TestAttestE2ESignedToken: the failure mapping of signed_token (JWKS file), with alg
// confusion, malformed, oversized and duplicated tokens, the verdict claims, the device
// header, endpoint modes, a heartbeat endpoint and the IP and device lists.
func TestAttestE2ESignedToken(t *testing.T) {
	e := newAttestEnv(t)
	h := "x-attestation-token"
	ok := e.signedClaims("signed", "device-1")
	tok := e.sign(e.es, ok)
	sreq := func(token string, kv ...string) request {
		return atGet("signed", "/v1/secure", append([]string{h, token}, kv...)...)
	}
	past := time.Now().Add(-time.Hour).Unix()
	segs := strings.Split(tok, ".")
	cases := []attestCase{
		atAllow("ok/ES256", sreq(tok), "device-1"),
		atAllow("ok/RS256", sreq(e.sign(e.rs, ok)), "device-1"),
		atAllow("ok/no_device_id_claim", sreq(e.sign(e.es, attesttest.With(ok, "device_id", nil))), ""),
		atAllow("ok/device_header_agrees", sreq(tok, "x-device-id", "device-1"), "device-1"),
		atAllow("ok/verdict_flags_false", sreq(e.sign(e.es, attesttest.With(ok, "emulator", false, "compromised", "false", "debugger", 0))), "device-1"),
		atAllow("ok/spoofed_identity_header_replaced", sreq(tok, "x-gatehouse-device", "someone-else"), "device-1"),

		atDeny("1_required/no_credential", atGet("signed", "/v1/secure"), policy.AttestationRequired),
		atDeny("1_required/other_providers_header_ignored", atGet("signed", "/v1/secure", "approov-token", tok), policy.AttestationRequired),
		atDeny("1_required/endpoint_require_on_optional_app", atGet("optional", "/v1/must"), policy.AttestationRequired),

		atDeny("2_invalid/empty_header", sreq(""), policy.InvalidAttestation),
		atDeny("2_invalid/duplicated_header_merged_by_envoy", sreq(tok+","+tok), policy.InvalidAttestation),
		{name: "2_invalid/duplicated_header_in_header_map", req: atGet("signed", "/v1/secure", h, tok), dup: []string{h, tok},
			status: 403, code: "INVALID_ATTESTATION", grpc: codes.PermissionDenied},
		atDeny("2_invalid/oversized", sreq(e.sign(e.es, attesttest.With(ok, "pad", strings.Repeat("x", 9000)))), policy.InvalidAttestation),
		atDeny("2_invalid/oversized_garbage", sreq(strings.Repeat("A", 64<<10)), policy.InvalidAttestation),
		atDeny("2_invalid/not_a_jwt", sreq("not-a-token"), policy.InvalidAttestation),
		atDeny("2_invalid/two_segments", sreq(segs[0]+"."+segs[1]), policy.InvalidAttestation),
		atDeny("2_invalid/four_segments", sreq(tok+"."+segs[2]), policy.InvalidAttestation),
		atDeny("2_invalid/bad_base64", sreq("e30.e30.!!!"), policy.InvalidAttestation),
		atDeny("2_invalid/padded_base64", sreq(segs[0]+"."+segs[1]+"=."+segs[2]), policy.InvalidAttestation),
		atDeny("2_invalid/bad_json_header", sreq(base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"ES256",`))+"."+segs[1]+"."+segs[2]), policy.InvalidAttestation),
		atDeny("2_invalid/alg_none", sreq(attesttest.Unsigned(t, ok, map[string]any{"kid": "es-1"})), policy.InvalidAttestation),
		atDeny("2_invalid/alg_none_with_signature", sreq(attesttest.Unsigned(t, ok, map[string]any{"kid": "es-1"})+segs[2]), policy.InvalidAttestation),
		atDeny("2_invalid/alg_HS256_public_key_DER_as_secret", sreq(attesttest.SignHS256(t, e.rsaPublicDER(e.rs), ok, map[string]any{"kid": "rs-1"})), policy.InvalidAttestation),
		atDeny("2_invalid/alg_HS256_public_key_PEM_as_secret", sreq(attesttest.SignHS256(t, e.rsaPublicPEM(e.rs), ok, map[string]any{"kid": "rs-1"})), policy.InvalidAttestation),
		atDeny("2_invalid/alg_ES256_claims_RSA_key", sreq(attesttest.Sign(t, e.es, ok, map[string]any{"kid": "rs-1"})), policy.InvalidAttestation),
		atDeny("2_invalid/unknown_kid", sreq(attesttest.Sign(t, e.es, ok, map[string]any{"kid": "nobody"})), policy.InvalidAttestation),
		atDeny("2_invalid/missing_exp", sreq(e.sign(e.es, attesttest.With(ok, "exp", nil))), policy.InvalidAttestation),
		atDeny("2_invalid/exp_not_a_number", sreq(e.sign(e.es, attesttest.With(ok, "exp", "tomorrow"))), policy.InvalidAttestation),
		atDeny("2_invalid/nbf_not_a_number", sreq(e.sign(e.es, attesttest.With(ok, "nbf", "soon"))), policy.InvalidAttestation),
		atDeny("2_invalid/missing_iat_with_max_age", sreq(e.sign(e.es, attesttest.With(ok, "iat", nil))), policy.InvalidAttestation),
		atDeny("2_invalid/device_id_with_space", sreq(e.sign(e.es, attesttest.With(ok, "device_id", "a b"))), policy.InvalidAttestation),
		atDeny("2_invalid/device_id_with_comma", sreq(e.sign(e.es, attesttest.With(ok, "device_id", "a,b"))), policy.InvalidAttestation),
		atDeny("2_invalid/device_id_header_injection", sreq(e.sign(e.es, attesttest.With(ok, "device_id", "a\r\nx-evil: 1"))), policy.InvalidAttestation),
		atDeny("2_invalid/device_id_non_ascii", sreq(e.sign(e.es, attesttest.With(ok, "device_id", "dévice"))), policy.InvalidAttestation),
		atDeny("2_invalid/device_id_129_bytes", sreq(e.sign(e.es, attesttest.With(ok, "device_id", strings.Repeat("d", 129)))), policy.InvalidAttestation),
		atAllow("ok/device_id_128_bytes", sreq(e.sign(e.es, attesttest.With(ok, "device_id", strings.Repeat("d", 128)))), strings.Repeat("d", 128)),

		atDeny("3_failed/bad_signature", sreq(e.sign(e.impostor, ok)), policy.AttestationFailed),
		atDeny("3_failed/signature_of_other_token", sreq(segs[0]+"."+segs[1]+"."+strings.Split(e.sign(e.es, attesttest.With(ok, "device_id", "x")), ".")[2]), policy.AttestationFailed),
		atDeny("3_failed/forged_with_malformed_exp", sreq(e.sign(e.impostor, attesttest.With(ok, "exp", "tomorrow"))), policy.AttestationFailed),
		atDeny("3_failed/wrong_issuer", sreq(e.sign(e.es, attesttest.With(ok, "iss", "https://evil.test"))), policy.AttestationFailed),
		atDeny("3_failed/wrong_issuer_beats_expired", sreq(e.sign(e.es, attesttest.With(ok, "iss", "https://evil.test", "exp", past))), policy.AttestationFailed),
		atDeny("3_failed/audience_of_other_app", sreq(e.sign(e.es, attesttest.With(ok, "aud", "optional"))), policy.AttestationFailed),
		atDeny("3_failed/issued_in_future", sreq(e.sign(e.es, attesttest.With(ok, "iat", time.Now().Add(2*time.Minute).Unix()))), policy.AttestationFailed),
		atDeny("3_failed/not_valid_yet", sreq(e.sign(e.es, attesttest.With(ok, "nbf", time.Now().Add(2*time.Minute).Unix()))), policy.AttestationFailed),

		atDeny("4_expired/exp_past", sreq(e.sign(e.es, attesttest.With(ok, "exp", past))), policy.AttestationExpired),
		atDeny("4_expired/too_old_max_age", sreq(e.sign(e.es, attesttest.With(ok, "iat", time.Now().Add(-11*time.Minute).Unix()))), policy.AttestationExpired),
		atDeny("4_expired/beats_verdict", sreq(e.sign(e.es, attesttest.With(ok, "exp", past, "emulator", true))), policy.AttestationExpired),
		{name: "4_expired/heartbeat_is_session_expired", req: atGet("signed", "/v1/heartbeat", h, e.sign(e.es, attesttest.With(ok, "exp", past))),
			status: 401, code: "TOKEN_EXPIRED", grpc: codes.Unauthenticated, internal: policy.SessionExpired},

		atDeny("5_verdict/compromised", sreq(e.sign(e.es, attesttest.With(ok, "compromised", true))), policy.DeviceCompromised),
		atDeny("5_verdict/compromised_beats_emulator", sreq(e.sign(e.es, attesttest.With(ok, "compromised", true, "emulator", true))), policy.DeviceCompromised),
		atDeny("5_verdict/emulator", sreq(e.sign(e.es, attesttest.With(ok, "emulator", true))), policy.EmulatorDetected),
		atDeny("5_verdict/emulator_string_1", sreq(e.sign(e.es, attesttest.With(ok, "emulator", "1"))), policy.EmulatorDetected),
		atDeny("5_verdict/debugger", sreq(e.sign(e.es, attesttest.With(ok, "debugger", 1))), policy.DebuggerDetected),
		atDeny("5_verdict/tampered", sreq(e.sign(e.es, attesttest.With(ok, "tampered", true))), policy.AppTampered),
		atDeny("5_verdict/unknown_signing_cert", sreq(e.sign(e.es, attesttest.With(ok, "signing_cert", strings.Repeat("0", 64)))), policy.AppTampered),
		atDeny("5_verdict/missing_signing_cert", sreq(e.sign(e.es, attesttest.With(ok, "signing_cert", nil))), policy.AppTampered),
		atDeny("5_verdict/app_version_below_minimum", sreq(e.sign(e.es, attesttest.With(ok, "app_version", "1.9.9"))), policy.AttestationFailed),
		atDeny("5_verdict/app_version_prerelease_of_minimum", sreq(e.sign(e.es, attesttest.With(ok, "app_version", "2.0.0-rc.1"))), policy.AttestationFailed),
		atDeny("5_verdict/app_version_missing", sreq(e.sign(e.es, attesttest.With(ok, "app_version", nil))), policy.AttestationFailed),

		atDeny("7_device/header_disagrees", sreq(tok, "x-device-id", "device-2"), policy.AttestationFailed),
		atDeny("7_device/header_repeated_merged", sreq(tok, "x-device-id", "device-1,device-1"), policy.AttestationFailed),
		{name: "7_device/header_repeated_in_header_map", req: sreq(tok, "x-device-id", "device-1"), dup: []string{"x-device-id", "device-1"},
			status: 403, code: "ATTESTATION_FAILED", grpc: codes.PermissionDenied},

		{name: "lists/blocked_device_attested", req: sreq(e.sign(e.es, attesttest.With(ok, "device_id", "stolen-device"))),
			status: 403, code: "FORBIDDEN", grpc: codes.PermissionDenied, internal: policy.Blocked},
		{name: "lists/blocked_ipv4_source", req: request{path: "/v1/secure", source: "203.0.113.77", headers: with(app("signed"), h, tok)},
			status: 403, code: "FORBIDDEN", grpc: codes.PermissionDenied, internal: policy.Blocked},
		{name: "lists/blocked_ipv6_source", req: request{path: "/v1/secure", source: "2001:db8:bad:42::1", headers: with(app("signed"), h, tok)},
			status: 403, code: "FORBIDDEN", grpc: codes.PermissionDenied, internal: policy.Blocked},
		{name: "lists/blocked_ipv4_trusted_xff_hop", req: sreq(tok, "x-forwarded-for", "198.51.100.20, 203.0.113.9"),
			status: 403, code: "FORBIDDEN", grpc: codes.PermissionDenied, internal: policy.Blocked},
		{name: "lists/blocked_ipv6_trusted_xff_hop", req: sreq(tok, "x-forwarded-for", "2001:db8:bad::99"),
			status: 403, code: "FORBIDDEN", grpc: codes.PermissionDenied, internal: policy.Blocked},
		atAllow("lists/untrusted_xff_hop_ignored", sreq(tok, "x-forwarded-for", "203.0.113.9, 198.51.100.20"), "device-1"),
		atAllow("lists/ipv6_outside_range", request{path: "/v1/secure", source: "2001:db8:bae::1", headers: with(app("signed"), h, tok)}, "device-1"),

		atAllow("mode/exempt_endpoint_skips_step", atGet("signed", "/v1/open"), ""),
		atAllow("mode/exempt_endpoint_ignores_bad_credential", atGet("signed", "/v1/open", h, "garbage"), ""),
		atAllow("mode/optional_app_no_credential", atGet("optional", "/v1/secure"), ""),
		atDeny("mode/optional_app_bad_credential_refused", atGet("optional", "/v1/secure", h, "garbage"), policy.InvalidAttestation),
		atAllow("mode/optional_app_good_credential", atGet("optional", "/v1/secure", h, e.sign(e.es, e.signedClaims("optional", "device-9"))), "device-9"),
	}
	runAttestCases(t, e.srv, cases)

	t.Run("no_credential_in_logs", func(t *testing.T) {
		out := e.srv.out.String()
		for _, tc := range cases {
			if v := tc.req.headers[h]; len(v) > 20 && strings.Contains(out, v) {
				t.Errorf("%s: the token appears in the log", tc.name)
			}
		}
		if strings.Contains(out, "tok-signed") {
			t.Error("the app token appears in the log")
		}
	})
}

// TestAttestE2EClockSkew: exp, nbf, iat and max_age at the edges of the default 30 s
// leeway. Tokens are minted just before they are sent, relative to the wall clock the
// server also reads; a "within" row has 5 s of margin, an "at" row is at the boundary or
// up to the request's latency past it.
func TestAttestE2EClockSkew(t *testing.T) {
	e := newAttestEnv(t)
	const leeway = 30
	maxAge := int64((10 * time.Minute).Seconds())
	for _, tc := range []struct {
		name string
		kv   func(now int64) []any
		code policy.Code
	}{
		{"exp_within_leeway", func(n int64) []any { return []any{"exp", n - leeway + 5} }, ""},
		{"exp_at_leeway", func(n int64) []any { return []any{"exp", n - leeway} }, policy.AttestationExpired},
		{"exp_past_leeway", func(n int64) []any { return []any{"exp", n - leeway - 5} }, policy.AttestationExpired},
		{"nbf_at_leeway", func(n int64) []any { return []any{"nbf", n + leeway} }, ""},
		{"nbf_past_leeway", func(n int64) []any { return []any{"nbf", n + leeway + 5} }, policy.AttestationFailed},
		{"iat_at_leeway", func(n int64) []any { return []any{"iat", n + leeway} }, ""},
		{"iat_past_leeway", func(n int64) []any { return []any{"iat", n + leeway + 5} }, policy.AttestationFailed},
		{"max_age_within_leeway", func(n int64) []any { return []any{"iat", n - maxAge - leeway + 5} }, ""},
		{"max_age_at_leeway", func(n int64) []any { return []any{"iat", n - maxAge - leeway} }, policy.AttestationExpired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Now().Unix()
			tok := e.sign(e.es, attesttest.With(e.signedClaims("signed", "device-1"), tc.kv(now)...))
			c := attestCase{req: atGet("signed", "/v1/secure", "x-attestation-token", tok), device: "device-1"}
			if tc.code != "" {
				c = atDeny("", c.req, tc.code)
			}
			c.verify(t, c.send(t, e.srv))
		})
	}
}

// TestAttestE2ERotation: signed_token keys over loopback TLS (url + ca_file): a token with
// an unknown kid triggers a refresh and is INVALID_ATTESTATION while the key is not
// published; after a rotation the new key verifies and the retired one does not; keys that
// cannot be fetched at all are "could not decide" (SERVICE_UNAVAILABLE, fail closed).
func TestAttestE2ERotation(t *testing.T) {
	e := newAttestEnv(t)
	h := "x-attestation-token"
	mint := func(k *attesttest.Key) request {
		return atGet("rotating", "/v1/secure", h, e.sign(k, e.signedClaims("rotating", "rot-device")))
	}
	ok := func(name string, k *attesttest.Key) attestCase { return atAllow(name, mint(k), "rot-device") }
	invalid := func(name string, k *attesttest.Key) attestCase {
		return atDeny(name, mint(k), policy.InvalidAttestation)
	}
	runAttestCases(t, e.srv, []attestCase{
		ok("first_key", e.rot1),
		invalid("unknown_kid_after_refresh", e.rot2),
		atDeny("keys_of_other_app_not_trusted", mint(e.es), policy.InvalidAttestation),
	})
	e.serve("/signed", e.rot2) // rot-1 retired, rot-2 published
	before := e.fetched("/signed")
	awaitAllowed(t, e.srv, func() attestCase { return ok("", e.rot2) }) // once min_refresh has passed
	runAttestCases(t, e.srv, []attestCase{ok("rotated_key", e.rot2), invalid("retired_key", e.rot1)})
	if e.fetched("/signed") <= before {
		t.Error("the unknown kid did not trigger a fetch")
	}
	runAttestCases(t, e.srv, []attestCase{
		{name: "keys_unavailable_fail_closed", req: atGet("keysdown", "/v1/secure", h, e.sign(e.es, e.signedClaims("keysdown", "d"))),
			status: 503, code: "SERVICE_UNAVAILABLE", grpc: codes.Unavailable, internal: policy.ServiceUnavailable},
	})
}

// TestAttestE2EFirebase: the failure mapping of firebase_app_check (RS256, typ JWT, JWKS
// over loopback TLS, replay protection), replay and key rotation.
func TestAttestE2EFirebase(t *testing.T) {
	e := newAttestEnv(t)
	h := "x-firebase-appcheck"
	freq := func(tok string, kv ...string) request {
		return atGet("firebase", "/v1/secure", append([]string{h, tok}, kv...)...)
	}
	fb := func(c attesttest.Claims, hdr map[string]any) string { return attesttest.Sign(t, e.fb1, c, hdr) }
	es := attesttest.NewKey(t, "ES256", "fb-1")
	past := time.Now().Add(-time.Hour).Unix()
	good := fb(e.fbClaims(), nil)
	runAttestCases(t, e.srv, []attestCase{
		atAllow("ok", freq(good), "fb-device-1"),
		atAllow("ok/device_header_agrees", freq(fb(e.fbClaims(), nil), "x-device-id", "fb-device-1"), "fb-device-1"),
		atAllow("ok/no_device_claim", freq(fb(attesttest.With(e.fbClaims(), "device_id", nil), nil)), ""),
		atAllow("ok/verdict_claims_not_read_by_default", freq(fb(attesttest.With(e.fbClaims(), "emulator", true), nil)), "fb-device-1"),

		atDeny("1_required/no_credential", atGet("firebase", "/v1/secure"), policy.AttestationRequired),
		atDeny("1_required/signed_token_header_ignored", atGet("firebase", "/v1/secure", "x-attestation-token", e.sign(e.es, e.signedClaims("firebase", "d"))), policy.AttestationRequired),

		atDeny("2_invalid/empty_header", freq(""), policy.InvalidAttestation),
		atDeny("2_invalid/duplicated_header", freq(fb(e.fbClaims(), nil)+", "+fb(e.fbClaims(), nil)), policy.InvalidAttestation),
		{name: "2_invalid/duplicated_header_in_header_map", req: freq(fb(e.fbClaims(), nil)), dup: []string{h, fb(e.fbClaims(), nil)},
			status: 403, code: "INVALID_ATTESTATION", grpc: codes.PermissionDenied},
		atDeny("2_invalid/oversized", freq(fb(attesttest.With(e.fbClaims(), "pad", strings.Repeat("x", 9000)), nil)), policy.InvalidAttestation),
		atDeny("2_invalid/not_a_jwt", freq("abc.def"), policy.InvalidAttestation),
		atDeny("2_invalid/typ_not_JWT", freq(fb(e.fbClaims(), map[string]any{"typ": "at+jwt"})), policy.InvalidAttestation),
		atDeny("2_invalid/typ_missing", freq(fb(e.fbClaims(), map[string]any{"typ": nil})), policy.InvalidAttestation),
		atDeny("2_invalid/alg_ES256", freq(attesttest.Sign(t, es, e.fbClaims(), nil)), policy.InvalidAttestation),
		atDeny("2_invalid/alg_none", freq(attesttest.Unsigned(t, e.fbClaims(), map[string]any{"kid": "fb-1"})), policy.InvalidAttestation),
		atDeny("2_invalid/alg_HS256_public_key_as_secret", freq(attesttest.SignHS256(t, e.rsaPublicDER(e.fb1), e.fbClaims(), map[string]any{"kid": "fb-1"})), policy.InvalidAttestation),
		atDeny("2_invalid/unknown_kid_after_refresh", freq(attesttest.Sign(t, e.fb2, e.fbClaims(), nil)), policy.InvalidAttestation),
		atDeny("2_invalid/missing_jti_with_replay_protection", freq(fb(attesttest.With(e.fbClaims(), "jti", nil), nil)), policy.InvalidAttestation),
		atDeny("2_invalid/missing_exp", freq(fb(attesttest.With(e.fbClaims(), "exp", nil), nil)), policy.InvalidAttestation),
		atDeny("2_invalid/device_id_malformed", freq(fb(attesttest.With(e.fbClaims(), "device_id", "a b"), nil)), policy.InvalidAttestation),

		atDeny("3_failed/bad_signature", freq(attesttest.Sign(t, &attesttest.Key{ID: "fb-1", Alg: "RS256", Private: e.rs.Private}, e.fbClaims(), nil)), policy.AttestationFailed),
		atDeny("3_failed/wrong_issuer", freq(fb(attesttest.With(e.fbClaims(), "iss", "https://firebaseappcheck.googleapis.com/999"), nil)), policy.AttestationFailed),
		atDeny("3_failed/wrong_audience", freq(fb(attesttest.With(e.fbClaims(), "aud", []string{"projects/999"}), nil)), policy.AttestationFailed),
		atDeny("3_failed/app_id_not_allowed", freq(fb(attesttest.With(e.fbClaims(), "sub", "1:123456:ios:zzz"), nil)), policy.AttestationFailed),
		atDeny("3_failed/not_valid_yet", freq(fb(attesttest.With(e.fbClaims(), "iat", time.Now().Add(2*time.Minute).Unix()), nil)), policy.AttestationFailed),

		atDeny("4_expired/exp_past", freq(fb(attesttest.With(e.fbClaims(), "exp", past), nil)), policy.AttestationExpired),

		atDeny("6_replay/same_token_again", freq(good), policy.AttestationFailed),
		atDeny("7_device/header_disagrees", freq(fb(e.fbClaims(), nil), "x-device-id", "other"), policy.AttestationFailed),
	})

	t.Run("6_replay/same_jti_new_signature", func(t *testing.T) {
		c := e.fbClaims()
		first := atAllow("", freq(fb(c, nil)), "fb-device-1")
		first.verify(t, first.send(t, e.srv))
		again := atDeny("", freq(fb(attesttest.With(c, "iat", time.Now().Unix()), nil)), policy.AttestationFailed)
		again.verify(t, again.send(t, e.srv))
	})
	t.Run("6_replay/concurrent_uses_one_passes", func(t *testing.T) {
		req := freq(fb(e.fbClaims(), nil))
		var allowed atomic.Int32
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				if resp, err := e.srv.check(t, req); err == nil && resp.GetOkResponse() != nil {
					allowed.Add(1)
				}
			})
		}
		wg.Wait()
		if allowed.Load() != 1 {
			t.Fatalf("%d concurrent uses of one token allowed, want 1", allowed.Load())
		}
	})
	t.Run("rotation", func(t *testing.T) {
		e.serve("/firebase", e.fb1, e.fb2)
		before := e.fetched("/firebase")
		awaitAllowed(t, e.srv, func() attestCase { // once min_refresh has passed
			return atAllow("", freq(attesttest.Sign(t, e.fb2, e.fbClaims(), nil)), "fb-device-1")
		})
		c := atAllow("", freq(attesttest.Sign(t, e.fb2, e.fbClaims(), nil)), "fb-device-1")
		c.verify(t, c.send(t, e.srv))
		if e.fetched("/firebase") <= before {
			t.Error("the unknown kid did not trigger a fetch")
		}
	})
}

// TestAttestE2EApproov: the failure mapping of approov (HS256 secret file, token bound to
// the authorization header).
func TestAttestE2EApproov(t *testing.T) {
	e := newAttestEnv(t)
	h := "approov-token"
	ok := e.approovClaims()
	sign := func(c attesttest.Claims) string { return attesttest.SignHS256(t, e.secret, c, nil) }
	tok := sign(ok)
	areq := func(token string, kv ...string) request {
		return atGet("approov", "/v1/secure", append([]string{h, token, "authorization", atBearer}, kv...)...)
	}
	past := time.Now().Add(-time.Hour).Unix()
	runAttestCases(t, e.srv, []attestCase{
		atAllow("ok", areq(tok), "approov-device"),
		atAllow("ok/device_header_agrees", areq(tok, "x-device-id", "approov-device"), "approov-device"),

		atDeny("1_required/no_credential", atGet("approov", "/v1/secure", "authorization", atBearer), policy.AttestationRequired),

		atDeny("2_invalid/empty_header", areq(""), policy.InvalidAttestation),
		atDeny("2_invalid/duplicated_header", areq(tok+","+tok), policy.InvalidAttestation),
		{name: "2_invalid/duplicated_header_in_header_map", req: areq(tok), dup: []string{h, tok},
			status: 403, code: "INVALID_ATTESTATION", grpc: codes.PermissionDenied},
		atDeny("2_invalid/oversized", areq(sign(attesttest.With(ok, "pad", strings.Repeat("x", 9000)))), policy.InvalidAttestation),
		atDeny("2_invalid/not_a_jwt", areq("...."), policy.InvalidAttestation),
		atDeny("2_invalid/alg_RS256", areq(e.sign(e.rs, ok)), policy.InvalidAttestation),
		atDeny("2_invalid/alg_ES256", areq(e.sign(e.es, ok)), policy.InvalidAttestation),
		atDeny("2_invalid/alg_none", areq(attesttest.Unsigned(t, ok, nil)), policy.InvalidAttestation),
		atDeny("2_invalid/missing_exp", areq(sign(attesttest.With(ok, "exp", nil))), policy.InvalidAttestation),
		atDeny("2_invalid/device_id_malformed", areq(sign(attesttest.With(ok, "did", "a,b"))), policy.InvalidAttestation),

		atDeny("3_failed/bad_signature_failed_device", areq(attesttest.SignHS256(t, atRandBytes(t, 32), ok, nil)), policy.AttestationFailed),
		atDeny("3_failed/binding_mismatch", atGet("approov", "/v1/secure", h, tok, "authorization", "Bearer someone-else"), policy.AttestationFailed),
		atDeny("3_failed/binding_header_missing", atGet("approov", "/v1/secure", h, tok), policy.AttestationFailed),
		atDeny("3_failed/binding_header_repeated", atGet("approov", "/v1/secure", h, tok, "authorization", atBearer+", "+atBearer), policy.AttestationFailed),
		{name: "3_failed/binding_header_repeated_in_header_map", req: areq(tok), dup: []string{"authorization", atBearer},
			status: 403, code: "ATTESTATION_FAILED", grpc: codes.PermissionDenied},
		atDeny("3_failed/pay_claim_missing", areq(sign(attesttest.With(ok, "pay", nil))), policy.AttestationFailed),
		atDeny("3_failed/pay_claim_not_base64", areq(sign(attesttest.With(ok, "pay", "%%%"))), policy.AttestationFailed),
		atDeny("3_failed/binding_beats_expired", atGet("approov", "/v1/secure", h, sign(attesttest.With(ok, "exp", past)), "authorization", "Bearer x"), policy.AttestationFailed),
		atDeny("3_failed/not_valid_yet", areq(sign(attesttest.With(ok, "nbf", time.Now().Add(2*time.Minute).Unix()))), policy.AttestationFailed),

		atDeny("4_expired/exp_past", areq(sign(attesttest.With(ok, "exp", past))), policy.AttestationExpired),

		atDeny("7_device/header_disagrees", areq(tok, "x-device-id", "other"), policy.AttestationFailed),
	})
}

// licenseSDK is a POST to the licensed app's SDK validate endpoint.
func (e *attestEnv) licenseSDK(license, token string, kv ...string) request {
	h := app("licensed")
	if license != "" {
		h["x-license-key"] = license
	}
	if token != "" {
		h["x-attestation-token"] = token
	}
	return request{method: "POST", path: "/auth/validate", headers: with(h, kv...)}
}

// sdkDeny is a license-dialect SDK denial: HTTP 200 {"status":"failed","error":code}, with
// the gRPC status class of the code's canonical HTTP status.
func atSDKDeny(name string, r request, code string, grpc codes.Code, internal policy.Code) attestCase {
	return attestCase{name: name, req: r, status: 200, code: code, grpc: grpc, internal: internal}
}

// TestAttestE2ELicenses: the license dialect: license states, device binding, the device
// header, device and IP lists (IPv4, IPv6, trusted x-forwarded-for hop), and a heartbeat.
func TestAttestE2ELicenses(t *testing.T) {
	e := newAttestEnv(t)
	tokFor := func(device string) string { return e.sign(e.es, e.signedClaims("licensed", device)) }
	good, one := e.license("good"), e.license("one")
	past := time.Now().Add(-time.Hour).Unix()
	runAttestCases(t, e.srv, []attestCase{
		atAllow("ok/bound_device", e.licenseSDK(good, tokFor("lic-dev-a")), "lic-dev-a"),
		atAllow("ok/bound_device_again", e.licenseSDK(good, tokFor("lic-dev-a")), "lic-dev-a"),

		atSDKDeny("invalid_key/absent", e.licenseSDK("", tokFor("lic-dev-a")), "invalid_key", codes.Unauthenticated, policy.InvalidKey),
		atSDKDeny("invalid_key/unknown", e.licenseSDK("lic-nobody", tokFor("lic-dev-a")), "invalid_key", codes.Unauthenticated, policy.InvalidKey),
		atSDKDeny("invalid_key/repeated", e.licenseSDK(good+","+good, tokFor("lic-dev-a")), "invalid_key", codes.Unauthenticated, policy.InvalidKey),
		atSDKDeny("revoked", e.licenseSDK(e.license("revoked"), tokFor("lic-dev-a")), "revoked", codes.PermissionDenied, policy.LicenseRevoked),
		atSDKDeny("expired/state", e.licenseSDK(e.license("expired"), tokFor("lic-dev-a")), "expired", codes.PermissionDenied, policy.LicenseExpired),
		atSDKDeny("expired/expires_at_past", e.licenseSDK(e.license("lapsed"), tokFor("lic-dev-a")), "expired", codes.PermissionDenied, policy.LicenseExpired),
		{name: "revoked/outside_sdk_endpoint", req: request{path: "/v1/open", headers: with(app("licensed"), "x-license-key", e.license("revoked"))},
			status: 403, code: "forbidden", grpc: codes.PermissionDenied, internal: policy.LicenseRevoked},

		atSDKDeny("hwid_mismatch/no_verified_device", e.licenseSDK(good, ""), "hwid_mismatch", codes.PermissionDenied, policy.HWIDMismatch),
		atSDKDeny("hwid_mismatch/unattested_device_header_not_trusted", e.licenseSDK(good, "", "x-device-id", "lic-dev-a"), "hwid_mismatch", codes.PermissionDenied, policy.HWIDMismatch),
		atSDKDeny("hwid_mismatch/device_header_disagrees", e.licenseSDK(good, tokFor("lic-dev-a"), "x-device-id", "lic-dev-b"), "hwid_mismatch", codes.PermissionDenied, policy.HWIDMismatch),
		{name: "hwid_mismatch/device_header_disagrees_outside_sdk_endpoint", req: request{path: "/v1/secure", headers: with(app("licensed"), "x-license-key", good, "x-attestation-token", tokFor("lic-dev-a"), "x-device-id", "lic-dev-b")},
			status: 403, code: "forbidden", grpc: codes.PermissionDenied, internal: policy.HWIDMismatch},
		atAllow("max_devices_1/first_device_binds", e.licenseSDK(one, tokFor("one-a")), "one-a"),
		atSDKDeny("max_devices_1/second_device", e.licenseSDK(one, tokFor("one-b")), "hwid_mismatch", codes.PermissionDenied, policy.HWIDMismatch),
		atAllow("max_devices_1/first_device_again", e.licenseSDK(one, tokFor("one-a")), "one-a"),

		// Attestation failures have no SDK spelling: the developer-API refusal.
		{name: "attestation_failed_on_sdk_endpoint", req: e.licenseSDK(good, e.sign(e.impostor, e.signedClaims("licensed", "lic-dev-a"))),
			status: 403, code: "forbidden", grpc: codes.PermissionDenied, internal: policy.AttestationFailed},
		atSDKDeny("heartbeat/expired_attestation_is_session_expired",
			request{method: "POST", path: "/auth/heartbeat", headers: with(app("licensed"), "x-license-key", good, "x-attestation-token", e.sign(e.es, attesttest.With(e.signedClaims("licensed", "lic-dev-a"), "exp", past)))},
			"session_expired", codes.Unauthenticated, policy.SessionExpired),
		atAllow("heartbeat/ok", request{method: "POST", path: "/auth/heartbeat", headers: with(app("licensed"), "x-license-key", good, "x-attestation-token", tokFor("lic-dev-a"))}, "lic-dev-a"),

		atSDKDeny("blocked/device_attested", e.licenseSDK(good, tokFor("stolen-device")), "blocked", codes.PermissionDenied, policy.Blocked),
		atSDKDeny("blocked/device_claimed_in_header", e.licenseSDK(good, "", "x-device-id", "stolen-device"), "blocked", codes.PermissionDenied, policy.Blocked),
		atSDKDeny("blocked/device_claimed_among_repeated_header", e.licenseSDK(good, "", "x-device-id", "x,stolen-device"), "blocked", codes.PermissionDenied, policy.Blocked),
		{name: "blocked/ipv4_cidr_source", req: func() request { r := e.licenseSDK(good, tokFor("lic-dev-a")); r.source = "203.0.113.1"; return r }(),
			status: 200, code: "blocked", grpc: codes.PermissionDenied, internal: policy.Blocked},
		{name: "blocked/ipv6_cidr_source", req: func() request { r := e.licenseSDK(good, tokFor("lic-dev-a")); r.source = "2001:db8:bad::5"; return r }(),
			status: 200, code: "blocked", grpc: codes.PermissionDenied, internal: policy.Blocked},
		atSDKDeny("blocked/ipv4_trusted_xff_hop", e.licenseSDK(good, tokFor("lic-dev-a"), "x-forwarded-for", "10.0.0.1, 203.0.113.200"), "blocked", codes.PermissionDenied, policy.Blocked),
		atSDKDeny("blocked/ipv6_trusted_xff_hop", e.licenseSDK(good, tokFor("lic-dev-a"), "x-forwarded-for", "2001:db8:bad:ffff::1"), "blocked", codes.PermissionDenied, policy.Blocked),
		atAllow("blocked/spoofed_xff_hop_ignored", e.licenseSDK(good, tokFor("lic-dev-a"), "x-forwarded-for", "203.0.113.200, 10.0.0.1"), "lic-dev-a"),
	})

	// N+5 devices race to bind one license from several goroutines: exactly N win; the
	// others are hwid_mismatch, now and on a second try, while the winners stay bound.
	t.Run("concurrent_binding", func(t *testing.T) {
		lic := e.license("race")
		const n = atMaxDevices + 5
		toks := make([]string, n)
		for i := range toks {
			toks[i] = tokFor(fmt.Sprintf("race-%d", i))
		}
		type outcome struct {
			allowed bool
			code    string
		}
		results := make([]outcome, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		const workers = 4
		for w := range workers {
			wg.Go(func() {
				<-start
				for i := w; i < n; i += workers {
					resp, err := e.srv.check(t, e.licenseSDK(lic, toks[i]))
					if err != nil {
						results[i].code = "grpc error: " + err.Error()
						continue
					}
					if resp.GetOkResponse() != nil {
						results[i].allowed = true
						continue
					}
					results[i].code = fmt.Sprintf("%d %s", resp.GetDeniedResponse().GetStatus().GetCode(), bodyCode(t, resp.GetDeniedResponse().GetBody()))
				}
			})
		}
		close(start)
		wg.Wait()
		var winners []int
		for i, r := range results {
			switch {
			case r.allowed:
				winners = append(winners, i)
			case r.code != "200 hwid_mismatch":
				t.Errorf("device %d: %s, want allowed or 200 hwid_mismatch", i, r.code)
			}
		}
		if len(winners) != atMaxDevices {
			t.Fatalf("%d devices bound (%v), want exactly %d", len(winners), winners, atMaxDevices)
		}
		for i := range toks {
			resp, err := e.srv.check(t, e.licenseSDK(lic, toks[i]))
			if err != nil {
				t.Fatal(err)
			}
			won := results[i].allowed
			if got := resp.GetOkResponse() != nil; got != won {
				t.Errorf("device %d: allowed %v on the second try, want %v (%s)", i, got, won, describe(resp))
			}
		}
	})
}

// metric reads one unlabelled sample of /metrics.
// awaitAllowed sends fresh cases (each a new token, so that no cached refusal answers)
// until one is allowed: key refreshes are at most one per min_refresh on the server's
// clock. The deadline only catches a server that never refreshes.
func awaitAllowed(t *testing.T, srv *testServer, next func() attestCase) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if next().send(t, srv).GetOkResponse() != nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the rotated key was never accepted")
		}
	}
}

func atMetric(t *testing.T, srv *testServer, name string) float64 {
	t.Helper()
	for line := range strings.SplitSeq(srv.body(t, "/metrics"), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("metric %s: %q", name, line)
			}
			return f
		}
	}
	t.Fatalf("/metrics has no %s", name)
	return 0
}

// TestAttestE2ECache: the second identical request is a verdict-cache hit (counted on
// /metrics) with the same answer; a refused token is cached too; binding is still checked
// on a hit; a token verified (and cached) for one app is refused for another and never
// hits the first app's entry.
func TestAttestE2ECache(t *testing.T) {
	e := newAttestEnv(t)
	hits := func() float64 { return atMetric(t, e.srv, "gatehouse_cache_hits_total") }
	misses := func() float64 { return atMetric(t, e.srv, "gatehouse_cache_misses_total") }
	cost := func() float64 { return atMetric(t, e.srv, "gatehouse_cache_cost_bytes") }
	// awaitCached waits until the cache holds more than it did (c0): ristretto applies
	// writes asynchronously. The deadline only catches a write that is never applied.
	awaitCached := func(t *testing.T, c0 float64) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); cost() <= c0; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("the verdict was never cached")
			}
		}
	}
	// twice sends c twice, letting the cache apply the first verdict in between, and
	// returns the hit and miss counts each request added.
	twice := func(t *testing.T, c attestCase) (hit1, hit2, miss1 float64) {
		h0, m0, c0 := hits(), misses(), cost()
		c.verify(t, c.send(t, e.srv))
		h1, m1 := hits(), misses()
		awaitCached(t, c0)
		c.verify(t, c.send(t, e.srv))
		return h1 - h0, hits() - h1, m1 - m0
	}
	tok := e.sign(e.es, e.signedClaims("signed", "device-1"))
	t.Run("verified_token", func(t *testing.T) {
		h1, h2, m1 := twice(t, atAllow("", atGet("signed", "/v1/secure", "x-attestation-token", tok), "device-1"))
		if h1 != 0 || m1 != 1 || h2 != 1 {
			t.Fatalf("first request: %v hits %v misses; second: %v hits; want 0, 1, 1", h1, m1, h2)
		}
	})
	t.Run("refused_token", func(t *testing.T) {
		bad := e.sign(e.impostor, e.signedClaims("signed", "device-1"))
		if h1, h2, _ := twice(t, atDeny("", atGet("signed", "/v1/secure", "x-attestation-token", bad), policy.AttestationFailed)); h1 != 0 || h2 != 1 {
			t.Fatalf("hits %v then %v, want 0 then 1", h1, h2)
		}
	})
	t.Run("token_of_app_A_refused_for_app_B", func(t *testing.T) {
		h0 := hits()
		for _, other := range []string{"optional", "licensed", "rotating"} {
			c := atDeny("", atGet(other, "/v1/secure", "x-attestation-token", tok), policy.AttestationFailed)
			if other == "licensed" {
				c = attestCase{req: c.req, status: 403, code: "forbidden", grpc: codes.PermissionDenied, internal: policy.AttestationFailed}
			}
			if other == "rotating" { // keys served over TLS: es-1 is not among them
				c = atDeny("", c.req, policy.InvalidAttestation)
			}
			c.verify(t, c.send(t, e.srv))
		}
		if d := hits() - h0; d != 0 {
			t.Fatalf("%v cache hits: app B used app A's verdict", d)
		}
		a := atAllow("", atGet("signed", "/v1/secure", "x-attestation-token", tok), "device-1")
		a.verify(t, a.send(t, e.srv)) // still good for app A
	})
	t.Run("binding_checked_on_a_hit", func(t *testing.T) {
		ap := attesttest.SignHS256(t, e.secret, e.approovClaims(), nil)
		c := atAllow("", atGet("approov", "/v1/secure", "approov-token", ap, "authorization", atBearer), "approov-device")
		c0 := cost()
		c.verify(t, c.send(t, e.srv))
		awaitCached(t, c0)
		h0 := hits()
		stolen := atDeny("", atGet("approov", "/v1/secure", "approov-token", ap, "authorization", "Bearer stolen"), policy.AttestationFailed)
		stolen.verify(t, stolen.send(t, e.srv))
		if hits()-h0 != 1 {
			t.Fatal("the stolen token's refusal was not decided on a cache hit")
		}
	})
}

// TestAttestE2EDemoToken: tokens printed by `gatehouse demo-token` pass the embedded demo
// configuration's GET /v1/secure, its refusal flags are refused for the documented reason,
// and --count prints one working token per device.
func TestAttestE2EDemoToken(t *testing.T) {
	srv := startServer(t, "--demo")
	srv.waitReady(t)
	mint := func(args ...string) string {
		var out, errOut bytes.Buffer
		if err := demoToken(args, &out, &errOut); err != nil {
			t.Fatalf("demo-token %v: %v %s", args, err, errOut.String())
		}
		return strings.TrimSpace(out.String())
	}
	demo := func(tok string) request {
		h := map[string]string{"x-app-token": "demo-app-token"}
		if tok != "" {
			h["x-attestation-token"] = tok
		}
		return request{path: "/v1/secure", headers: h}
	}
	good := mint()
	i := len(good) - 10 // inside the signature, not its last character
	flip := byte('A')
	if good[i] == 'A' {
		flip = 'B'
	}
	cases := []attestCase{
		atAllow("default_device", demo(good), "demo-device-1"),
		atAllow("device_flag", demo(mint("--device", "my-phone")), "my-phone"),
		atDeny("no_token", demo(""), policy.AttestationRequired),
		atDeny("emulator", demo(mint("--emulator")), policy.EmulatorDetected),
		atDeny("expired", demo(mint("--expired")), policy.AttestationExpired),
		atDeny("tampered", demo(mint("--tampered")), policy.AppTampered),
		atDeny("signature_changed", demo(good[:i]+string(flip)+good[i+1:]), policy.AttestationFailed),
	}
	lines := strings.Split(mint("--count", "3", "--device", "load"), "\n")
	if len(lines) != 3 {
		t.Fatalf("--count 3 printed %d lines", len(lines))
	}
	for i, line := range lines {
		id, tok, ok := strings.Cut(line, "\t")
		if want := fmt.Sprintf("load-%d", i); !ok || id != want {
			t.Fatalf("line %d: %q, want %q<TAB>token", i, line, want)
		}
		cases = append(cases, atAllow("count/"+id, demo(tok), id))
	}
	runAttestCases(t, srv, cases)
}
