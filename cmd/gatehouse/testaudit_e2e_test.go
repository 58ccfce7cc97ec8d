package main

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy/attest/attesttest"
)

// testauditConfig: one app per dialect, a license SDK endpoint, two limits of different
// lengths on one endpoint, and an app that trusts the device header.
const testauditConfig = `
apps:
  - {name: pma, app_token_sha256: ["{{T:pma}}"], endpoints: ["*"]}
  - {name: pk, dialect: protekt, app_token_sha256: ["{{T:pk}}"], endpoints: ["*"]}
  - {name: lic, dialect: license, app_token_sha256: ["{{T:lic}}"], endpoints: ["*"], licenses: {required: true, keys: [{sha256: "{{T:good-license}}"}]}}
  - {name: gen, dialect: generic, app_token_sha256: ["{{T:gen}}"], endpoints: ["*"]}
  - name: trusting
    app_token_sha256: ["{{T:trusting}}"]
    endpoints: ["*"]
    devices: {trust_device_header: true}
    attestation:
      providers:
        - {type: signed_token, issuer: https://attest.test, jwks: {inline: '{{JWKS}}'}}
endpoints:
  - {name: open, path: /v1/open}
  - {name: twolimits, path: /v1/two, limits: [{name: per_minute, key: [app], requests: 1, per: 1m}, {name: per_hour, key: [app], requests: 1, per: 1h}]}
  - {name: validate, path: /auth/validate, methods: [POST], sdk_auth: true, dialect: license}
  - {name: must, path: /v1/must, attestation: require}
`

// startTestauditServer starts a server on testauditConfig and returns the attestation key
// the trusting app's provider trusts.
func startTestauditServer(t *testing.T) (*testServer, *attesttest.Key) {
	t.Helper()
	k := attesttest.NewKey(t, "ES256", "k1")
	cfg := strings.ReplaceAll(testauditConfig, "{{JWKS}}", string(attesttest.JWKS(k)))
	srv := startServer(t, "--config", writeConfig(t, t.TempDir(), cfg))
	srv.waitReady(t)
	return srv, k
}

// TestTestauditGoldenOverGRPC: denials as a client receives them through Envoy, status and
// exact body typed by hand from the seeds, one per dialect and the license SDK surface.
func TestTestauditGoldenOverGRPC(t *testing.T) {
	srv, _ := startTestauditServer(t)
	for _, tc := range []struct {
		name   string
		req    request
		status int
		body   string
	}{
		{"protectmyapi_endpoint_not_found", request{path: "/v1/nowhere", headers: app("pma")}, 404,
			`{"success":false,"error":{"code":"ENDPOINT_NOT_FOUND","message":"Endpoint slug doesn’t exist"}}`},
		{"protekt_endpoint_not_found", request{path: "/v1/nowhere", headers: app("pk")}, 404,
			`{"error":"access_denied","message":"Endpoint slug doesn’t exist","statusCode":404}`},
		{"license_endpoint_not_found", request{path: "/v1/nowhere", headers: app("lic")}, 404,
			`{"error":"not_found","message":"Endpoint slug doesn’t exist"}`},
		{"generic_endpoint_not_found", request{path: "/v1/nowhere", headers: app("gen")}, 404,
			`{"code":"NOTFOUND-404","title":"Resource Not Found","message":"Endpoint slug doesn’t exist"}`},
		{"protectmyapi_unknown_app", request{path: "/v1/open", headers: app("nobody")}, 404,
			`{"success":false,"error":{"code":"APP_NOT_FOUND","message":"App ID doesn’t exist"}}`},
		{"license_sdk_invalid_key", request{method: "POST", path: "/auth/validate", headers: with(app("lic"), "x-license-key", "wrong")}, 200,
			`{"status":"failed","error":"invalid_key"}`},
		{"license_sdk_missing_key", request{method: "POST", path: "/auth/validate", headers: app("lic")}, 200,
			`{"status":"failed","error":"invalid_key"}`},
		{"license_api_invalid_key", request{path: "/v1/open", headers: with(app("lic"), "x-license-key", "wrong")}, 401,
			`{"error":"invalid_api_key","message":"Invalid license key"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := srv.check(t, tc.req)
			if err != nil {
				t.Fatal(err)
			}
			den := resp.GetDeniedResponse()
			if den == nil || resp.GetStatus().GetCode() == 0 {
				t.Fatalf("not denied: %s", describe(resp))
			}
			if int(den.GetStatus().GetCode()) != tc.status || den.GetBody() != tc.body {
				t.Fatalf("got %d %s\nwant %d %s", den.GetStatus().GetCode(), den.GetBody(), tc.status, tc.body)
			}
		})
	}
}

// TestTestauditRetryAfterOverGRPC: two limits refuse the second request; the client is
// told to wait for the later reset (the hour's), with that limit's X-RateLimit-Reset. The
// check is an inequality that load cannot break: the response was produced no later than
// after, so after+Retry-After reaches the reset it names.
func TestTestauditRetryAfterOverGRPC(t *testing.T) {
	srv, _ := startTestauditServer(t)
	req := request{path: "/v1/two", headers: app("pma")}
	if resp, err := srv.check(t, req); err != nil || resp.GetOkResponse() == nil {
		t.Fatalf("first request: %v %s", err, describe(resp))
	}
	// One request an hour passes: a second allowed one means an hour began in between
	// (the server's clock is the wall clock); the next is refused then.
	resp, err := srv.check(t, req)
	if err == nil && resp.GetOkResponse() != nil {
		resp, err = srv.check(t, req)
	}
	after := time.Now()
	if err != nil || resp.GetDeniedResponse().GetStatus().GetCode() != 429 {
		t.Fatalf("second request: %v %s", err, describe(resp))
	}
	hs := resp.GetDeniedResponse().GetHeaders()
	ra, _ := headerValue(hs, "retry-after")
	rs, _ := headerValue(hs, "x-ratelimit-reset")
	wait, err1 := strconv.ParseInt(ra, 10, 64)
	reset, err2 := strconv.ParseInt(rs, 10, 64)
	if err1 != nil || err2 != nil || wait < 1 {
		t.Fatalf("retry-after %q, x-ratelimit-reset %q", ra, rs)
	}
	if reset%3600 != 0 {
		t.Errorf("x-ratelimit-reset %d is not the hour limit's reset (a whole hour)", reset)
	}
	if after.Unix()+wait < reset {
		t.Errorf("retry-after %ds ends before the reset %d it names: the client would be refused again", wait, reset)
	}
}

// TestTestauditUnattestedDeviceHeader: on an endpoint that requires attestation, an app
// that trusts x-device-id still refuses a request carrying only the header, and forwards no
// device; elsewhere the trusted header is the device.
func TestTestauditUnattestedDeviceHeader(t *testing.T) {
	srv, k := startTestauditServer(t)
	resp, err := srv.check(t, request{path: "/v1/must", headers: with(app("trusting"), "x-device-id", "phone-1")})
	if err != nil || resp.GetDeniedResponse().GetStatus().GetCode() != 403 || bodyCode(t, resp.GetDeniedResponse().GetBody()) != "ATTESTATION_REQUIRED" {
		t.Fatalf("header only, attestation required: %v %s", err, describe(resp))
	}
	// A genuine attestation that names no device: the header must not fill the gap.
	tok := attesttest.Sign(t, k, attesttest.Claims{"iss": "https://attest.test", "aud": "trusting", "exp": time.Now().Add(time.Hour).Unix()}, nil)
	resp, err = srv.check(t, request{path: "/v1/must", headers: with(app("trusting"), "x-attestation-token", tok, "x-device-id", "phone-1")})
	if err != nil || resp.GetOkResponse() == nil {
		t.Fatalf("attested without a device id: %v %s", err, describe(resp))
	}
	if v, ok := headerValue(resp.GetOkResponse().GetHeaders(), "x-gatehouse-device"); ok {
		t.Errorf("x-gatehouse-device %q forwarded from an unattested header", v)
	}
	resp, err = srv.check(t, request{path: "/v1/open", headers: with(app("trusting"), "x-device-id", "phone-1")})
	if err != nil || resp.GetOkResponse() == nil {
		t.Fatalf("trusted header where attestation is optional: %v %s", err, describe(resp))
	}
	if v, _ := headerValue(resp.GetOkResponse().GetHeaders(), "x-gatehouse-device"); v != "phone-1" {
		t.Errorf("x-gatehouse-device %q, want phone-1", v)
	}
}
