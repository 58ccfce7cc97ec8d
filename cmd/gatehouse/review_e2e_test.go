package main

// End-to-end cases of the review of the hardening: a blocked device that names itself
// only inside an attestation token that cannot be verified, and a client's own copy of
// x-envoy-auth-partial-body in Envoy's raw header list.

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/gatehouse/gatehouse/policy/attest/attesttest"
)

const reviewE2EConfig = `
server: {fail_mode: open}
apps:
  - name: main
    app_token_sha256: ["{{T:main}}"]
    endpoints: ["*"]
    attestation:
      providers:
        - {type: signed_token, issuer: https://attest.test, jwks: {url: "{{URL}}/attest", allow_http: true, min_refresh: 1h}}
    devices: {block: [stolen-device]}
endpoints:
  - {name: api, path: /v1/api}
  - {name: upload, path: /v1/upload, methods: [POST], payload: {max_bytes: 8}}
`

func TestEndToEndReview(t *testing.T) {
	keys := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "key service down", http.StatusInternalServerError)
	}))
	defer keys.Close()
	cfg := strings.ReplaceAll(reviewE2EConfig, "{{URL}}", keys.URL)
	srv := startServer(t, "--config", writeConfig(t, t.TempDir(), cfg))
	srv.waitReady(t)
	bogus := attesttest.NewKey(t, "ES256", "no-such-kid")
	attestation := func(id string) string {
		return attesttest.Sign(t, bogus, attesttest.Claims{"iss": "https://attest.test", "aud": "main",
			"exp": time.Now().Add(time.Hour).Unix(), "device_id": id}, nil)
	}

	t.Run("blocked device named only in an unverifiable token", func(t *testing.T) {
		resp, err := srv.check(t, request{path: "/v1/api", headers: with(app("main"), "x-attestation-token", attestation("stolen-device"))})
		if err != nil {
			t.Fatal(err)
		}
		// BLOCKED is spelt FORBIDDEN, 403, in the protectmyapi dialect (seed 000).
		if den := resp.GetDeniedResponse(); den == nil || den.GetStatus().GetCode() != 403 || bodyCode(t, den.GetBody()) != "FORBIDDEN" {
			t.Fatalf("got %s, want 403 FORBIDDEN", describe(resp))
		}
	})
	t.Run("client copy of the partial-body header in header_map", func(t *testing.T) {
		req := envoyRequest(request{method: "POST", path: "/v1/upload", headers: with(app("main"), "x-attestation-token", attestation("dev-1")), body: "1234"})
		h := req.GetAttributes().GetRequest().GetHttp()
		list := []*corev3.HeaderValue{{Key: "x-envoy-auth-partial-body", Value: "false"}} // the client's
		for k, v := range h.GetHeaders() {
			list = append(list, &corev3.HeaderValue{Key: k, RawValue: []byte(v)})
		}
		list = append(list, &corev3.HeaderValue{Key: "x-envoy-auth-partial-body", RawValue: []byte("true")}) // Envoy's
		h.Headers, h.HeaderMap = nil, &corev3.HeaderMap{Headers: list}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp, err := srv.auth.Check(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if den := resp.GetDeniedResponse(); den == nil || den.GetStatus().GetCode() != 413 || bodyCode(t, den.GetBody()) != "PAYLOAD_TOO_LARGE" {
			t.Fatalf("got %s, want 413 PAYLOAD_TOO_LARGE", describe(resp))
		}
	})
}
