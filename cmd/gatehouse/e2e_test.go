package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gatehouse/gatehouse/internal/sealtest"
)

func sha(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// idp is an identity provider for the tests: ECDSA keys, a JWKS served over loopback
// TLS, and key rotation.
type idp struct {
	mu     sync.Mutex
	keys   map[string]*ecdsa.PrivateKey
	served []string // kids in the JWKS
	srv    *httptest.Server
	hits   int
}

func newIDP(t *testing.T) *idp {
	p := &idp{keys: map[string]*ecdsa.PrivateKey{}}
	p.addKey(t, "k1", true)
	p.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.hits++
		var keys []map[string]string
		for _, kid := range p.served {
			pub := p.keys[kid].PublicKey
			keys = append(keys, map[string]string{"kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig",
				"x": b64(pub.X.FillBytes(make([]byte, 32))), "y": b64(pub.Y.FillBytes(make([]byte, 32)))})
		}
		json.NewEncoder(w).Encode(map[string]any{"keys": keys})
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func (p *idp) addKey(t *testing.T, kid string, serve bool) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.keys[kid] = k
	if serve {
		p.served = append(p.served, kid)
	}
}

func (p *idp) serve(kids ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.served = kids
}

func (p *idp) caFile(t *testing.T, dir string) string {
	f := filepath.Join(dir, "idp-ca.pem")
	cert := p.srv.Certificate()
	if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// token mints a user JWT signed with kid; claims override the defaults.
func (p *idp) token(t *testing.T, kid string, claims jwt.MapClaims) string {
	now := time.Now()
	c := jwt.MapClaims{"iss": "https://id.test", "aud": "api", "sub": "user-1", "iat": now.Unix(),
		"exp": now.Add(time.Hour).Unix(), "roles": []string{"reader"}, "scope": "read write",
		"email_verified": true, "org_id": "org-1", "org_role": "member"}
	for k, v := range claims {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, c)
	tok.Header["kid"] = kid
	p.mu.Lock()
	key := p.keys[kid]
	p.mu.Unlock()
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

const e2eConfig = `
server:
  default_dialect: protectmyapi
jwt_providers:
  - name: users
    issuer: https://id.test
    audiences: [api]
    algorithms: [ES256]
    jwks: {url: "{{IDP}}", ca_file: "{{CA}}", min_refresh: 1ms}
  - name: down
    issuer: https://id.test
    audiences: [api]
    algorithms: [ES256]
    jwks: {url: "https://127.0.0.1:1/jwks", min_refresh: 1ms}
secrets:
  - {name: upstream, file: upstream.key}
  - {name: stale, file: upstream.key, expires_at: 2020-01-01T00:00:00Z}
  - {name: absent, file: does-not-exist.key}
  - {name: sealed, file: sealed.enc, encrypted: true, key_file: aes.key}
  - {name: broken, file: broken.enc, encrypted: true, key_file: aes.key}
accounts:
  - {name: acme}
  - {name: gone, state: disabled}
  - {name: leaving, state: pending_deletion}
apps:
  - {name: main, app_token_sha256: ["{{T:main}}"], api_key_sha256: ["{{T:main-key}}"], account: acme, organization: org-1, endpoints: ["*"]}
  - {name: off, app_token_sha256: ["{{T:off}}"], disabled: true, endpoints: ["*"]}
  - {name: acct-off, app_token_sha256: ["{{T:acct-off}}"], account: gone, endpoints: ["*"]}
  - {name: acct-del, app_token_sha256: ["{{T:acct-del}}"], account: leaving, endpoints: ["*"]}
  - {name: narrow, app_token_sha256: ["{{T:narrow}}"], endpoints: [hello]}
  - {name: pk, dialect: protekt, app_token_sha256: ["{{T:pk}}"], endpoints: ["*"]}
  - {name: lic, dialect: license, app_token_sha256: ["{{T:lic}}"], endpoints: ["*"]}
  - {name: gen, dialect: generic, app_token_sha256: ["{{T:gen}}"], endpoints: ["*"]}
  - {name: paused, app_token_sha256: ["{{T:paused}}"], endpoints: ["*"], maintenance: {enabled: true, until: "2999-01-01T00:00:00Z"}}
  - {name: opener, app_token_sha256: ["{{T:opener}}"], endpoints: ["*"], fail_mode: open}
  - {name: erring, app_token_sha256: ["{{T:erring}}"], endpoints: ["*"], fail_mode: error}
endpoints:
  - {name: hello, path: /v1/hello, methods: [GET, HEAD]}
  - {name: files, path: /v1/files, prefix: true, methods: [GET]}
  - {name: closed, path: /v1/closed, disabled: true}
  - {name: maint, path: /v1/maint, maintenance: {enabled: true}}
  - {name: profile, path: /v1/profile, user: {provider: users, roles: [reader]}}
  - {name: admin, path: /v1/admin, user: {provider: users, roles: [admin]}}
  - {name: writer, path: /v1/writer, user: {provider: users, scopes: [write, delete]}}
  - {name: verified, path: /v1/verified, user: {provider: users, require_email_verified: true}}
  - {name: org, path: /v1/org, user: {provider: users, require_org: true}}
  - {name: orgadmin, path: /v1/orgadmin, user: {provider: users, org_roles: [owner]}}
  - {name: ext-only, user: {provider: users}}
  - {name: downstream, path: /v1/down, user: {provider: down}}
  - {name: upload, path: /v1/upload, methods: [POST], payload: {max_bytes: 100}}
  - name: items
    path: /v1/items
    methods: [POST]
    payload:
      max_bytes: 4096
      json_schema:
        type: object
        required: [name]
        additionalProperties: false
        properties:
          name: {type: string}
          count: {type: integer, minimum: 1}
  - {name: proxy, path: /v1/proxy, inject: [{header: authorization, prefix: "Bearer ", secret: upstream}]}
  - {name: stale, path: /v1/stale, inject: [{header: authorization, secret: stale}]}
  - {name: absent, path: /v1/absent, inject: [{header: authorization, secret: absent}]}
  - {name: sealed, path: /v1/sealed, inject: [{header: x-provider-key, secret: sealed}]}
  - {name: broken, path: /v1/broken, inject: [{header: x-provider-key, secret: broken}]}
  - {name: validate, path: /auth/validate, methods: [POST], sdk_auth: true, payload: {json_schema: {type: object, required: [key]}}}
`

// writeE2EConfig renders e2eConfig into dir with its secret files.
func writeE2EConfig(t *testing.T, dir string, p *idp) string {
	key := make([]byte, 32)
	rand.Read(key)
	sealed, err := sealtest.Seal("sealed-provider-key", key, make([]byte, 12))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"upstream.key": "provider-secret-123\n",
		"aes.key":      base64.StdEncoding.EncodeToString(key),
		"sealed.enc":   sealed,
		"broken.enc":   base64.StdEncoding.EncodeToString(make([]byte, 40)),
	}
	for name, v := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := strings.NewReplacer("{{IDP}}", p.srv.URL+"/jwks", "{{CA}}", p.caFile(t, dir)).Replace(e2eConfig)
	return writeConfig(t, dir, cfg)
}

func app(name string) map[string]string { return map[string]string{"x-app-token": "tok-" + name} }

func with(h map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range h {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

// TestEndToEndCodes drives every code of the core pipeline through a real gRPC server
// with requests shaped as Envoy sends them.
func TestEndToEndCodes(t *testing.T) {
	p := newIDP(t)
	dir := t.TempDir()
	srv := startServer(t, "--config", writeE2EConfig(t, dir, p))
	srv.waitReady(t)

	bearer := func(claims jwt.MapClaims) map[string]string {
		return with(app("main"), "authorization", "Bearer "+p.token(t, "k1", claims))
	}
	past := time.Now().Add(-2 * time.Hour).Unix()
	cases := []struct {
		name   string
		req    request
		status int    // HTTP status the client receives
		code   string // the dialect's code string
		grpc   codes.Code
	}{
		{"missing credentials", request{path: "/v1/hello"}, 401, "UNAUTHORIZED", codes.Unauthenticated},
		{"repeated app token is ambiguous", request{path: "/v1/hello", headers: map[string]string{"x-app-token": "tok-main,tok-main"}}, 401, "UNAUTHORIZED", codes.Unauthenticated},
		{"unknown app token", request{path: "/v1/hello", headers: app("nobody")}, 404, "APP_NOT_FOUND", codes.NotFound},
		{"unknown api key", request{path: "/v1/hello", headers: map[string]string{"x-api-key": "nope"}}, 401, "UNAUTHORIZED", codes.Unauthenticated},
		{"disabled app", request{path: "/v1/hello", headers: app("off")}, 403, "APP_DISABLED", codes.PermissionDenied},
		{"disabled account", request{path: "/v1/hello", headers: app("acct-off")}, 403, "ACCOUNT_DISABLED", codes.PermissionDenied},
		{"account pending deletion", request{path: "/v1/hello", headers: app("acct-del")}, 403, "ACCOUNT_PENDING_DELETION", codes.PermissionDenied},
		{"app in maintenance", request{path: "/v1/hello", headers: app("paused")}, 503, "MAINTENANCE", codes.Unavailable},
		{"unknown path", request{path: "/v1/nothing", headers: app("main")}, 404, "ENDPOINT_NOT_FOUND", codes.NotFound},
		{"unknown slug", request{path: "/v1/hello", headers: app("main"), ext: map[string]string{"endpoint": "nope"}}, 404, "ENDPOINT_NOT_FOUND", codes.NotFound},
		{"dot segments never match", request{path: "/v1/hello/../admin", headers: app("main")}, 404, "ENDPOINT_NOT_FOUND", codes.NotFound},
		{"encoded dots never match", request{path: "/v1/files/%2e%2e/secret", headers: app("main")}, 404, "ENDPOINT_NOT_FOUND", codes.NotFound},
		{"prefix is not a string prefix", request{path: "/v1/filesystem", headers: app("main")}, 404, "ENDPOINT_NOT_FOUND", codes.NotFound},
		{"disabled endpoint", request{path: "/v1/closed", headers: app("main")}, 403, "ENDPOINT_DISABLED", codes.PermissionDenied},
		{"endpoint not linked", request{path: "/v1/proxy", headers: app("narrow")}, 403, "ENDPOINT_NOT_LINKED", codes.PermissionDenied},
		{"wrong method", request{method: "DELETE", path: "/v1/hello", headers: app("main")}, 405, "INVALID_METHOD", codes.InvalidArgument},
		{"endpoint maintenance", request{path: "/v1/maint", headers: app("main")}, 503, "MAINTENANCE", codes.Unavailable},
		{"user token missing", request{path: "/v1/profile", headers: app("main")}, 401, "UNAUTHORIZED", codes.Unauthenticated},
		{"user token malformed", request{path: "/v1/profile", headers: with(app("main"), "authorization", "Bearer a.b.c")}, 401, "INVALID_TOKEN", codes.Unauthenticated},
		{"user token not bearer", request{path: "/v1/profile", headers: with(app("main"), "authorization", "Basic dXNlcjpwdw==")}, 401, "INVALID_TOKEN", codes.Unauthenticated},
		{"user token expired", request{path: "/v1/profile", headers: bearer(jwt.MapClaims{"exp": past, "iat": past - 60})}, 401, "TOKEN_EXPIRED", codes.Unauthenticated},
		{"user token wrong audience", request{path: "/v1/profile", headers: bearer(jwt.MapClaims{"aud": "other"})}, 401, "INVALID_TOKEN", codes.Unauthenticated},
		{"user token wrong issuer", request{path: "/v1/profile", headers: bearer(jwt.MapClaims{"iss": "https://evil.test"})}, 401, "INVALID_TOKEN", codes.Unauthenticated},
		{"user token without exp", request{path: "/v1/profile", headers: bearer(jwt.MapClaims{"exp": nil})}, 401, "INVALID_TOKEN", codes.Unauthenticated},
		{"user lacks role", request{path: "/v1/admin", headers: bearer(nil)}, 403, "FORBIDDEN", codes.PermissionDenied},
		{"user lacks scope", request{path: "/v1/writer", headers: bearer(nil)}, 403, "FORBIDDEN", codes.PermissionDenied},
		{"email not verified", request{path: "/v1/verified", headers: bearer(jwt.MapClaims{"email_verified": false})}, 403, "EMAIL_NOT_VERIFIED", codes.PermissionDenied},
		{"not an org member", request{path: "/v1/org", headers: bearer(jwt.MapClaims{"org_id": "org-2"})}, 403, "NOT_ORG_MEMBER", codes.PermissionDenied},
		{"org member without access", request{path: "/v1/orgadmin", headers: bearer(nil)}, 403, "ORG_ACCESS_DENIED", codes.PermissionDenied},
		{"keys unreachable fails closed", request{path: "/v1/down", headers: bearer(nil)}, 503, "SERVICE_UNAVAILABLE", codes.Unavailable},
		{"body too large (declared)", request{method: "POST", path: "/v1/upload", headers: app("main"), body: strings.Repeat("x", 101)}, 413, "PAYLOAD_TOO_LARGE", codes.InvalidArgument},
		{"body truncated by envoy", request{method: "POST", path: "/v1/items", headers: app("main"), body: `{"name":"a"`, partial: true}, 413, "PAYLOAD_TOO_LARGE", codes.InvalidArgument},
		{"body not json", request{method: "POST", path: "/v1/items", headers: app("main"), body: `{"name":`}, 400, "INVALID_JSON", codes.InvalidArgument},
		{"body missing field", request{method: "POST", path: "/v1/items", headers: app("main"), body: `{"count":2}`}, 400, "MISSING_FIELD", codes.InvalidArgument},
		{"body invalid field", request{method: "POST", path: "/v1/items", headers: app("main"), body: `{"name":"a","count":0}`}, 400, "INVALID_FIELD", codes.InvalidArgument},
		{"body other violation", request{method: "POST", path: "/v1/items", headers: app("main"), body: `{"name":"a","extra":1}`}, 400, "VALIDATION_ERROR", codes.InvalidArgument},
		{"secret expired", request{path: "/v1/stale", headers: app("main")}, 403, "SECRET_EXPIRED", codes.PermissionDenied},
		{"secret not found", request{path: "/v1/absent", headers: app("main")}, 404, "SECRET_NOT_FOUND", codes.NotFound},
		{"secret does not decrypt", request{path: "/v1/broken", headers: app("main")}, 500, "SECRET_DECRYPTION_FAILED", codes.Internal},
		{"protekt dialect", request{path: "/v1/closed", headers: app("pk")}, 403, "access_denied", codes.PermissionDenied},
		{"protekt token expired", request{path: "/v1/profile", headers: with(app("pk"), "authorization", "Bearer "+p.token(t, "k1", jwt.MapClaims{"exp": past}))}, 401, "token_expired", codes.Unauthenticated},
		{"generic dialect", request{path: "/v1/nothing", headers: app("gen")}, 404, "NOTFOUND-404", codes.NotFound},
		{"license dialect", request{path: "/v1/nothing", headers: app("lic")}, 404, "not_found", codes.NotFound},
		{"license sdk endpoint answers 200", request{method: "POST", path: "/auth/validate", headers: app("lic"), body: `{}`}, 200, "bad_request", codes.InvalidArgument},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := srv.check(t, tc.req)
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			den := resp.GetDeniedResponse()
			if den == nil {
				t.Fatalf("want a denial, got %s", describe(resp))
			}
			if got := codes.Code(resp.GetStatus().GetCode()); got != tc.grpc {
				t.Errorf("gRPC status %v, want %v", got, tc.grpc)
			}
			if got := int(den.GetStatus().GetCode()); got != tc.status {
				t.Errorf("HTTP status %d, want %d (%s)", got, tc.status, den.GetBody())
			}
			if ct, _ := headerValue(den.GetHeaders(), "content-type"); ct != "application/json" {
				t.Errorf("content-type %q", ct)
			}
			if got := bodyCode(t, den.GetBody()); got != tc.code {
				t.Errorf("body code %q, want %q: %s", got, tc.code, den.GetBody())
			}
			if tc.code == "INVALID_METHOD" {
				if allow, _ := headerValue(den.GetHeaders(), "allow"); allow != "GET, HEAD" {
					t.Errorf("Allow %q, want \"GET, HEAD\"", allow)
				}
			}
			if tc.code == "MAINTENANCE" && tc.req.headers["x-app-token"] == "tok-paused" {
				if ra, ok := headerValue(den.GetHeaders(), "retry-after"); !ok || ra == "" {
					t.Errorf("maintenance with a window end needs Retry-After")
				}
			}
			md := resp.GetDynamicMetadata().GetFields()
			if md["decision_id"].GetStringValue() == "" || md["decision"].GetStringValue() != "deny" {
				t.Errorf("dynamic metadata %v", md)
			}
		})
	}
}

// bodyCode extracts the code string of a denial body in any dialect.
func bodyCode(t *testing.T, body string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("body is not JSON: %q", body)
	}
	if e, ok := m["error"].(map[string]any); ok { // protectmyapi
		return e["code"].(string)
	}
	if c, ok := m["code"].(string); ok { // generic
		return c
	}
	if e, ok := m["error"].(string); ok { // protekt, license
		return e
	}
	t.Fatalf("unknown body shape %q", body)
	return ""
}

func TestEndToEndAllowed(t *testing.T) {
	p := newIDP(t)
	dir := t.TempDir()
	srv := startServer(t, "--config", writeE2EConfig(t, dir, p))
	srv.waitReady(t)
	tok := p.token(t, "k1", nil)
	cases := []struct {
		name     string
		req      request
		set      map[string]string // upstream headers set
		removed  []string
		metadata map[string]string
	}{
		{"app token", request{path: "/v1/hello?x=1", headers: with(app("main"), "x-gatehouse-device", "spoofed")},
			map[string]string{"x-gatehouse-app": "main", "x-gatehouse-endpoint": "hello"}, []string{"x-app-token", "x-gatehouse-device"},
			map[string]string{"app": "main", "endpoint": "hello", "decision": "allow"}},
		{"api key header", request{path: "/v1/hello", headers: map[string]string{"x-api-key": "tok-main-key"}},
			map[string]string{"x-gatehouse-app": "main"}, []string{"x-api-key"}, nil},
		{"api key as bearer", request{path: "/v1/hello", headers: map[string]string{"authorization": "Bearer tok-main-key"}},
			map[string]string{"x-gatehouse-app": "main"}, []string{"authorization"}, nil},
		{"slug from context_extensions", request{path: "/anything", headers: app("main"), ext: map[string]string{"endpoint": "hello"}},
			map[string]string{"x-gatehouse-endpoint": "hello"}, nil, nil},
		{"prefix rule", request{path: "/v1/files/a/b.txt", headers: app("main")}, map[string]string{"x-gatehouse-endpoint": "files"}, nil, nil},
		{"user token", request{path: "/v1/profile", headers: with(app("main"), "authorization", "Bearer "+tok)},
			map[string]string{"x-gatehouse-user": "user-1"}, []string{"x-app-token"}, nil},
		{"slug-only endpoint", request{path: "/x", headers: with(app("main"), "authorization", "Bearer "+tok), ext: map[string]string{"endpoint": "ext-only"}},
			map[string]string{"x-gatehouse-endpoint": "ext-only"}, nil, nil},
		{"valid body", request{method: "POST", path: "/v1/items", headers: app("main"), body: `{"name":"a","count":3}`}, nil, nil, nil},
		{"secret injected", request{path: "/v1/proxy", headers: app("main")}, map[string]string{"authorization": "Bearer provider-secret-123"}, []string{"x-app-token"}, nil},
		{"encrypted secret injected", request{path: "/v1/sealed", headers: app("main")}, map[string]string{"x-provider-key": "sealed-provider-key"}, nil, nil},
		{"fail open", request{path: "/v1/down", headers: with(app("opener"), "authorization", "Bearer "+tok)}, map[string]string{"x-gatehouse-fail-open": "true"}, nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := srv.check(t, tc.req)
			if err != nil {
				t.Fatal(err)
			}
			ok := resp.GetOkResponse()
			if ok == nil || resp.GetStatus().GetCode() != 0 {
				t.Fatalf("want allowed, got %s", describe(resp))
			}
			for k, v := range tc.set {
				got, found := headerValue(ok.GetHeaders(), k)
				if !found || got != v {
					t.Errorf("upstream header %s = %q, want %q", k, got, v)
				}
			}
			for _, h := range ok.GetHeaders() {
				if h.GetAppend() == nil || h.GetAppend().GetValue() {
					t.Errorf("header %s must overwrite (append=false)", h.GetHeader().GetKey())
				}
			}
			for _, k := range tc.removed {
				found := false
				for _, r := range ok.GetHeadersToRemove() {
					found = found || r == k
				}
				if !found {
					t.Errorf("header %s not removed (removed %v)", k, ok.GetHeadersToRemove())
				}
			}
			md := resp.GetDynamicMetadata().GetFields()
			for k, v := range tc.metadata {
				if got := md[k].GetStringValue(); got != v {
					t.Errorf("metadata %s = %q, want %q", k, got, v)
				}
			}
		})
	}
	t.Run("fail mode error is a gRPC error", func(t *testing.T) {
		_, err := srv.check(t, request{path: "/v1/down", headers: with(app("erring"), "authorization", "Bearer "+tok)})
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("want UNAVAILABLE, got %v", err)
		}
	})
	t.Run("no secret in logs", func(t *testing.T) {
		out := srv.out.String()
		for _, secret := range []string{"tok-main", "provider-secret-123", "sealed-provider-key", tok} {
			if strings.Contains(out, secret) {
				t.Errorf("log contains a secret %q", secret[:min(len(secret), 12)])
			}
		}
	})
}

// TestJWKSRotation: a token signed with a key the server has not seen triggers one
// refresh; once the provider publishes the key, it verifies.
func TestJWKSRotation(t *testing.T) {
	p := newIDP(t)
	dir := t.TempDir()
	srv := startServer(t, "--config", writeE2EConfig(t, dir, p))
	srv.waitReady(t)
	req := func(kid string) request {
		return request{path: "/v1/profile", headers: with(app("main"), "authorization", "Bearer "+p.token(t, kid, nil))}
	}
	if resp, _ := srv.check(t, req("k1")); resp.GetOkResponse() == nil {
		t.Fatalf("k1 token refused: %s", describe(resp))
	}
	p.addKey(t, "k2", false)
	if resp, _ := srv.check(t, req("k2")); bodyCode(t, resp.GetDeniedResponse().GetBody()) != "INVALID_TOKEN" {
		t.Fatalf("unpublished key accepted: %s", describe(resp))
	}
	p.serve("k2") // rotation: k1 retired, k2 published
	// Refreshes are at most one per min_refresh (1ms, on the server's clock): ask with a
	// fresh token until one triggers the refresh. The deadline only catches a server that
	// never picks the new key up.
	for deadline := time.Now().Add(30 * time.Second); ; {
		resp, _ := srv.check(t, req("k2"))
		if resp.GetOkResponse() != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rotated key refused: %s", describe(resp))
		}
	}
}

func TestDemoConfiguration(t *testing.T) {
	srv := startServer(t, "--demo")
	srv.waitReady(t)
	resp, err := srv.check(t, request{path: "/v1/hello", headers: map[string]string{"x-app-token": "demo-app-token"}})
	if err != nil || resp.GetOkResponse() == nil {
		t.Fatalf("demo hello: %v %s", err, describe(resp))
	}
	resp, _ = srv.check(t, request{path: "/v1/hello"})
	if got := bodyCode(t, resp.GetDeniedResponse().GetBody()); got != "UNAUTHORIZED" {
		t.Fatalf("demo without token: %s", describe(resp))
	}
	metrics := srv.body(t, "/metrics")
	for _, want := range []string{
		`gatehouse_decisions_total{app="demo",code="",decision="allow",dialect="protectmyapi",endpoint="hello"} 1`,
		`gatehouse_decisions_total{app="",code="UNAUTHORIZED",decision="deny",dialect="protectmyapi",endpoint="hello"} 1`,
		`gatehouse_config_reloads_total{result="success"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if srv.get(t, "/healthz") != http.StatusOK {
		t.Error("healthz")
	}
	_ = fmt.Sprint
	_ = big.NewInt
}
