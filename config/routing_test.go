package config

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy"
)

// TestPathOptionsCompile: case_insensitive (per endpoint), server.case_insensitive_paths
// and server.method_override reach the compiled rules.
func TestPathOptionsCompile(t *testing.T) {
	sum := sha256.Sum256([]byte("tok"))
	load := func(server, ci string) *policy.Rules {
		t.Helper()
		cfg := strings.NewReplacer("HASH", hex.EncodeToString(sum[:]), "SERVER", server, "CI", ci).Replace(`
server: {SERVER}
apps: [{name: a, app_token_sha256: [HASH], endpoints: ["*"]}]
endpoints:
  - {name: admin, path: /v1/admin, methods: [DELETE], case_insensitive: CI}
  - {name: list, path: /v1/admin, methods: [GET]}
`)
		s, err := LoadBytes([]byte(cfg), "t.yaml", testDeps())
		if err != nil {
			t.Fatal(err)
		}
		return s.Rules
	}
	decide := func(r *policy.Rules, method, path string, kv ...string) policy.Decision {
		in := &policy.Input{Method: method, Path: path, Headers: map[string]string{"x-app-token": "tok"}}
		for i := 0; i+1 < len(kv); i += 2 {
			in.Headers[kv[i]] = kv[i+1]
		}
		return r.Decide(context.Background(), time.Unix(1_700_000_000, 0), in)
	}
	cases := []struct {
		name, server, ci string
		method, path     string
		header           []string
		wantEndpoint     string
		wantCode         policy.Code
	}{
		{"sensitive by default", "", "false", "DELETE", "/v1/Admin", nil, "", policy.EndpointNotFound},
		{"endpoint case_insensitive", "", "true", "DELETE", "/v1/Admin", nil, "admin", ""},
		{"server case_insensitive_paths", "case_insensitive_paths: true", "false", "DELETE", "/v1/ADMIN", nil, "admin", ""},
		{"override refused by default", "", "false", "GET", "/v1/admin", []string{"x-http-method-override", "DELETE"}, "list", policy.InvalidMethod},
		{"override refused", "method_override: refuse", "false", "GET", "/v1/admin", []string{"x-http-method-override", "DELETE"}, "list", policy.InvalidMethod},
		{"override followed", "method_override: follow", "false", "GET", "/v1/admin", []string{"x-http-method-override", "DELETE"}, "admin", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := decide(load(tc.server, tc.ci), tc.method, tc.path, tc.header...)
			if d.Endpoint != tc.wantEndpoint || d.Code != tc.wantCode {
				t.Fatalf("got endpoint %q code %q, want %q %q", d.Endpoint, d.Code, tc.wantEndpoint, tc.wantCode)
			}
		})
	}
}
