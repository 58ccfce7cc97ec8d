package policy_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/config"
	"github.com/gatehouse/gatehouse/policy"
)

const payloadConfig = `
apps:
  - {name: a, app_token_sha256: [HASH], endpoints: ["*"]}
endpoints:
  - {name: sized, path: /sized, methods: [POST], payload: {max_bytes: 16}}
  - {name: unsized, path: /unsized, methods: [POST], payload: {json_schema: {type: object}}}
  - name: typed
    path: /typed
    methods: [POST]
    payload:
      max_bytes: 4096
      json_schema:
        type: object
        required: [name]
        properties:
          name: {type: string}
          user:
            type: object
            required: [email]
            properties: {email: {type: string}}
        additionalProperties: {type: integer}
`

func payloadRules(t *testing.T) *policy.Rules {
	t.Helper()
	sum := sha256.Sum256([]byte("tok"))
	snap, err := config.LoadBytes([]byte(strings.ReplaceAll(payloadConfig, "HASH", hex.EncodeToString(sum[:]))), "payload.yaml", config.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	return snap.Rules
}

func post(path, body string, partial bool) *policy.Input {
	return &policy.Input{Method: "POST", Path: path, Source: netip.MustParseAddr("192.0.2.7"),
		Headers: map[string]string{"x-app-token": "tok"}, Body: body, HasBody: true,
		BodySize: int64(len(body)), BodyPartial: partial}
}

// TestPayloadPartialBody: a body Envoy truncated (x-envoy-auth-partial-body: true) is
// refused wherever a size limit applies, schema or not: the part Envoy sent may be under
// the limit while the body the upstream reads is not. The sizes are at the limit and one
// byte either side.
func TestPayloadPartialBody(t *testing.T) {
	rules := payloadRules(t)
	cases := []struct {
		name    string
		path    string
		body    string
		partial bool
		want    policy.Code
	}{
		{"sized, 15 bytes whole", "/sized", strings.Repeat("x", 15), false, ""},
		{"sized, 16 bytes whole", "/sized", strings.Repeat("x", 16), false, ""},
		{"sized, 17 bytes whole", "/sized", strings.Repeat("x", 17), false, "PAYLOAD_TOO_LARGE"},
		{"sized, 15 bytes truncated", "/sized", strings.Repeat("x", 15), true, "PAYLOAD_TOO_LARGE"},
		{"sized, 16 bytes truncated", "/sized", strings.Repeat("x", 16), true, "PAYLOAD_TOO_LARGE"},
		{"sized, empty truncated", "/sized", "", true, "PAYLOAD_TOO_LARGE"},
		{"schema only, truncated", "/unsized", `{"a":1`, true, "PAYLOAD_TOO_LARGE"},
		{"schema only, whole", "/unsized", `{"a":1}`, false, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := rules.Decide(context.Background(), time.Unix(1_750_000_000, 0), post(tc.path, tc.body, tc.partial))
			if d.Code != tc.want || (tc.want == "") != d.Allowed() {
				t.Fatalf("got %s (allowed %v), want %q", d.Code, d.Allowed(), tc.want)
			}
		})
	}
}

// TestPayloadMessagesEchoNothing: a refusal names only what the schema declares, never
// a key, value or fragment the client chose, whatever the dialect renders.
func TestPayloadMessagesEchoNothing(t *testing.T) {
	rules := payloadRules(t)
	const secret = "sk_live_51Hx9SECRETvalue"
	cases := []struct {
		name string
		body string
		code policy.Code
		msg  string // hand-typed: the only text a refusal may carry
	}{
		{"client key, wrong type", `{"name":"n","<script>":"` + secret + `"}`, "VALIDATION_ERROR", "Request body validation failed"},
		{"client key nested in declared", `{"name":"n","user":{"email":"e","<img src=x>":1}}`, "", ""},
		{"declared field, wrong type", `{"name":"` + secret + `","<script>":1,"user":{"email":7}}`, "INVALID_FIELD", "Field has an invalid value: user.email"},
		{"missing declared field", `{"<script>":1}`, "MISSING_FIELD", "Missing required field: name"},
		{"missing nested field", `{"name":"n","user":{"<script>":"` + secret + `"}}`, "MISSING_FIELD", "Missing required field: user.email"},
		{"not json", `{"<script>":"` + secret, "INVALID_JSON", "Request body is not valid JSON"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := rules.Decide(context.Background(), time.Unix(1_750_000_000, 0), post("/typed", tc.body, false))
			if d.Code != tc.code {
				t.Fatalf("code %s, want %q", d.Code, tc.code)
			}
			if tc.code == "" {
				return
			}
			if tc.msg != "" && d.Message != tc.msg {
				t.Errorf("message %q, want %q", d.Message, tc.msg)
			}
			for _, dl := range []policy.Dialect{policy.ProtectMyAPI, policy.Protekt, policy.License, policy.Generic} {
				d.Dialect = dl
				body := string(d.Render().Body)
				for _, bad := range []string{"<script>", "script", "<img", secret, "SECRET"} {
					if strings.Contains(body, bad) || strings.Contains(d.Message, bad) {
						t.Errorf("dialect %v: refusal echoes %q: %s", dl, bad, body)
					}
				}
			}
		})
	}
}
