package main

// End-to-end cases of the pipeline's lockout keys and payload rules, through the real
// gRPC server: a verified device guessing license keys is locked out across addresses,
// and payload refusals never echo what the client sent.

import (
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy/attest/attesttest"
)

const pipelineE2EConfig = `
lockout: {max_failures: 2, window: 1m, lock_for: 10m, key: [device]}
apps:
  - name: main
    dialect: protekt
    app_token_sha256: ["{{T:main}}"]
    endpoints: ["*"]
    attestation:
      providers:
        - {type: signed_token, issuer: https://attest.test, jwks: {inline: '{{JWKS}}'}}
    licenses:
      required: false
      max_devices: 0
      keys: [{sha256: "{{LIC}}"}]
endpoints:
  - {name: api, path: /v1/api}
  - {name: upload, path: /v1/upload, methods: [POST], dialect: protectmyapi, payload: {max_bytes: 64}}
  - name: items
    path: /v1/items
    methods: [POST]
    dialect: protectmyapi
    payload:
      json_schema:
        type: object
        required: [name]
        properties: {name: {type: string}}
        additionalProperties: {type: integer}
`

func TestEndToEndPipelineLockoutAndPayload(t *testing.T) {
	key := attesttest.NewKey(t, "ES256", "a1")
	cfg := strings.NewReplacer("{{JWKS}}", string(attesttest.JWKS(key)), "{{LIC}}", sha("lic-good")).Replace(pipelineE2EConfig)
	srv := startServer(t, "--config", writeConfig(t, t.TempDir(), cfg))
	srv.waitReady(t)
	att := func(id string) string {
		return attesttest.Sign(t, key, attesttest.Claims{"iss": "https://attest.test", "aud": "main",
			"exp": time.Now().Add(time.Hour).Unix(), "device_id": id}, nil)
	}
	const secret = "sk_live_51Hx9SECRETvalue"
	cases := []struct {
		name   string
		r      request
		status int    // 0: allowed
		code   string // hand-typed from the seeds: protekt for the app, protectmyapi for the payload endpoints
		never  []string
	}{
		{"device guesses a license (1)", request{path: "/v1/api", source: "10.0.0.1", headers: with(app("main"), "x-attestation-token", att("dev-1"), "x-license-key", "guess-1")}, 401, "invalid_credentials", nil},
		{"device guesses a license (2), another address", request{path: "/v1/api", source: "10.0.0.2", headers: with(app("main"), "x-attestation-token", att("dev-1"), "x-license-key", "guess-2")}, 401, "invalid_credentials", nil},
		{"locked device, right license, third address", request{path: "/v1/api", source: "10.0.0.3", headers: with(app("main"), "x-attestation-token", att("dev-1"), "x-license-key", "lic-good")}, 423, "account_locked", nil},
		{"another device from a used address", request{path: "/v1/api", source: "10.0.0.1", headers: with(app("main"), "x-attestation-token", att("dev-2"), "x-license-key", "lic-good")}, 0, "", nil},
		{"truncated body on a sized endpoint", request{method: "POST", path: "/v1/upload", headers: app("main"), body: "0123456789", partial: true}, 413, "PAYLOAD_TOO_LARGE", nil},
		{"client-chosen key of the wrong type", request{method: "POST", path: "/v1/items", headers: app("main"), body: `{"name":"n","<script>":"` + secret + `"}`}, 400, "VALIDATION_ERROR", []string{"script", secret, "SECRET"}},
		{"declared field of the wrong type", request{method: "POST", path: "/v1/items", headers: app("main"), body: `{"name":7,"<script>":1}`}, 400, "INVALID_FIELD", []string{"script"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := srv.check(t, tc.r)
			if err != nil {
				t.Fatal(err)
			}
			if tc.status == 0 {
				if resp.GetOkResponse() == nil {
					t.Fatalf("denied: %s", describe(resp))
				}
				return
			}
			den := resp.GetDeniedResponse()
			if den == nil || int(den.GetStatus().GetCode()) != tc.status || bodyCode(t, den.GetBody()) != tc.code {
				t.Fatalf("got %s, want %d %s", describe(resp), tc.status, tc.code)
			}
			for _, bad := range tc.never {
				if strings.Contains(den.GetBody(), bad) {
					t.Errorf("the denial echoes %q: %s", bad, den.GetBody())
				}
			}
		})
	}
}
