package main

import "testing"

// envoyxConfig: apps in each dialect, an endpoint that overrides its app's dialect, and a
// server default other than protectmyapi for requests whose app is unknown.
const envoyxConfig = `
server:
  default_dialect: license
apps:
  - {name: plain, app_token_sha256: ["{{T:plain}}"], endpoints: ["*"]}
  - {name: pk, dialect: protekt, app_token_sha256: ["{{T:pk}}"], endpoints: ["*"]}
  - {name: gen, dialect: generic, app_token_sha256: ["{{T:gen}}"], endpoints: ["*"]}
endpoints:
  - {name: hello, path: /v1/hello, methods: [GET]}
  - {name: legacy, path: /v1/legacy, methods: [GET], dialect: generic}
`

// TestEnvoyLocalReplyDialect: Check names, in its dynamic metadata, the dialect it spoke to
// the client, allowed or denied, over a real gRPC connection. Envoy's local_reply_config
// selects its mappers on this value (envoy/envoy_test.go runs them), so Envoy's own failures
// after Check reach the client in the app's format.
func TestEnvoyLocalReplyDialect(t *testing.T) {
	srv := startServer(t, "--config", writeConfig(t, t.TempDir(), envoyxConfig))
	srv.waitReady(t)
	cases := []struct {
		name     string
		req      request
		decision string
		want     string // typed from the configuration above
	}{
		{"app without a dialect", request{path: "/v1/hello", headers: app("plain")}, "allow", "protectmyapi"},
		{"protekt app", request{path: "/v1/hello", headers: app("pk")}, "allow", "protekt"},
		{"generic app", request{path: "/v1/hello", headers: app("gen")}, "allow", "generic"},
		{"endpoint overrides the app", request{path: "/v1/legacy", headers: app("pk")}, "allow", "generic"},
		{"denied, app known", request{method: "POST", path: "/v1/hello", headers: app("pk")}, "deny", "protekt"},
		{"unknown app: the server default", request{path: "/v1/hello", headers: app("nobody")}, "deny", "license"},
		{"no credential: the server default", request{path: "/v1/hello"}, "deny", "license"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := srv.check(t, tc.req)
			if err != nil {
				t.Fatal(err)
			}
			md := resp.GetDynamicMetadata().GetFields()
			if got := md["decision"].GetStringValue(); got != tc.decision {
				t.Fatalf("decision %q, want %q: %s", got, tc.decision, describe(resp))
			}
			if got := md["dialect"].GetStringValue(); got != tc.want {
				t.Errorf("metadata dialect %q, want %q", got, tc.want)
			}
		})
	}
}
