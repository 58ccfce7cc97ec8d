package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

const routingConfig = `
jwt_providers:
  - name: users
    issuer: https://id.test
    audiences: [api]
    algorithms: [ES256]
    jwks: {url: "{{IDP}}", ca_file: "{{CA}}", min_refresh: 1ms}
apps:
  - {name: main, app_token_sha256: ["{{T:main}}"], endpoints: ["*"]}
endpoints:
  - {name: v1, path: /v1, prefix: true}
  - {name: admin, path: /v1/admin, user: {provider: users, roles: [admin]}}
  - {name: items, path: /v1/items, methods: [GET]}
`

// TestRoutingEndToEnd: over real gRPC, with requests shaped as Envoy sends them, no
// spelling of /v1/admin is allowed by the looser /v1 rule, whether the path rules or
// context_extensions pick the endpoint; identity headers in underscore spellings are
// removed; method and path overrides are refused; a JWT subject with a control byte never
// reaches the upstream.
func TestRoutingEndToEnd(t *testing.T) {
	p := newIDP(t)
	dir := t.TempDir()
	cfg := strings.NewReplacer("{{IDP}}", p.srv.URL+"/jwks", "{{CA}}", p.caFile(t, dir)).Replace(routingConfig)
	srv := startServer(t, "--config", writeConfig(t, dir, cfg))
	srv.waitReady(t)
	reader := "Bearer " + p.token(t, "k1", nil) // valid, but without the admin role

	// Judged by admin: 401 without a user token, 403 with a reader's. Refused: 404 both.
	const admin, refused = "admin", "refused"
	spellings := []struct{ path, want string }{
		{"/v1/admin", admin},
		{"/v1/admin/", admin},
		{"/v1/admin;x=1", admin},
		{"/v1/admin?x=1", admin},
		{"/v1/%61dmin", admin},
		{"/v1/x/..;/admin", refused},
		{"/v1/Admin", refused},
		{"/v1/ADMIN/", refused},
		{"/v1/%41dmin", refused},
		{"/v1//admin", refused},
		{"/v1/./admin", refused},
		{"/v1/admin%2f", refused},
		{"/v1/admin%3bx", refused},
		{"/v1/admin.", refused},
	}
	for _, sp := range spellings {
		for _, ext := range []map[string]string{nil, {"endpoint": "v1"}} {
			name := sp.path
			if ext != nil {
				name += " named v1"
			}
			t.Run(name, func(t *testing.T) {
				want := []int{401, 403}
				if sp.want == refused || ext != nil {
					want = []int{404, 404}
				}
				for i, h := range []map[string]string{app("main"), with(app("main"), "authorization", reader)} {
					resp, err := srv.check(t, request{path: sp.path, headers: h, ext: ext})
					if err != nil {
						t.Fatal(err)
					}
					den := resp.GetDeniedResponse()
					if den == nil {
						t.Fatalf("allowed: %s", describe(resp))
					}
					if got := int(den.GetStatus().GetCode()); got != want[i] {
						t.Errorf("status %d, want %d (%s)", got, want[i], bodyCode(t, den.GetBody()))
					}
				}
			})
		}
	}

	t.Run("identity headers in any spelling are removed", func(t *testing.T) {
		resp, err := srv.check(t, request{path: "/v1/x", headers: with(app("main"),
			"x_gatehouse_user", "admin", "x_gatehouse_app", "other", "x-gatehouse_device", "d1")})
		if err != nil {
			t.Fatal(err)
		}
		ok := resp.GetOkResponse()
		if ok == nil {
			t.Fatalf("denied: %s", describe(resp))
		}
		for _, h := range []string{"x_gatehouse_user", "x_gatehouse_app", "x-gatehouse_device"} {
			if !slices.Contains(ok.GetHeadersToRemove(), h) {
				t.Errorf("%s not removed: %q", h, ok.GetHeadersToRemove())
			}
		}
	})

	t.Run("method override is refused", func(t *testing.T) {
		for _, h := range []string{"x-http-method-override", "x-http-method", "x-method-override", "x_http_method_override"} {
			resp, err := srv.check(t, request{path: "/v1/items", headers: with(app("main"), h, "DELETE")})
			if err != nil {
				t.Fatal(err)
			}
			den := resp.GetDeniedResponse()
			if den.GetStatus().GetCode() != 405 || bodyCode(t, den.GetBody()) != "INVALID_METHOD" {
				t.Fatalf("%s: %s", h, describe(resp))
			}
			if v, _ := headerValue(den.GetHeaders(), "allow"); v != "GET" {
				t.Errorf("%s: Allow %q", h, v)
			}
		}
	})

	t.Run("a method the specific rule refuses is not judged by the looser one", func(t *testing.T) {
		for _, m := range []string{"POST", "DELETE", "PATCH"} {
			for _, p := range []string{"/v1/items", "/v1/items/", "/v1/%69tems"} {
				resp, err := srv.check(t, request{method: m, path: p, headers: app("main")})
				if err != nil {
					t.Fatal(err)
				}
				den := resp.GetDeniedResponse()
				if den.GetStatus().GetCode() != 405 || bodyCode(t, den.GetBody()) != "INVALID_METHOD" {
					t.Fatalf("%s %s: %s", m, p, describe(resp))
				}
				if v, _ := headerValue(den.GetHeaders(), "allow"); v != "GET" {
					t.Errorf("%s %s: Allow %q", m, p, v)
				}
			}
		}
	})

	t.Run("path-override headers are refused", func(t *testing.T) {
		for _, h := range []string{"x-original-url", "x-rewrite-url"} {
			resp, err := srv.check(t, request{path: "/v1/x", headers: with(app("main"), h, "/v1/admin")})
			if err != nil {
				t.Fatal(err)
			}
			den := resp.GetDeniedResponse()
			if den.GetStatus().GetCode() != 404 || bodyCode(t, den.GetBody()) != "ENDPOINT_NOT_FOUND" {
				t.Fatalf("%s: %s", h, describe(resp))
			}
		}
	})

	t.Run("a subject with a control byte is not forwarded", func(t *testing.T) {
		tok := p.token(t, "k1", jwt.MapClaims{"roles": []string{"admin"}, "sub": "user-1\r\nx-gatehouse-app: other"})
		resp, err := srv.check(t, request{path: "/v1/admin", headers: with(app("main"), "authorization", "Bearer "+tok)})
		if err != nil {
			t.Fatal(err)
		}
		den := resp.GetDeniedResponse()
		if den.GetStatus().GetCode() != 401 || bodyCode(t, den.GetBody()) != "INVALID_TOKEN" {
			t.Fatalf("got %s", describe(resp))
		}
		good := p.token(t, "k1", jwt.MapClaims{"roles": []string{"admin"}})
		resp, err = srv.check(t, request{path: "/v1/admin", headers: with(app("main"), "authorization", "Bearer "+good)})
		if err != nil {
			t.Fatal(err)
		}
		if v, _ := headerValue(resp.GetOkResponse().GetHeaders(), "x-gatehouse-user"); v != "user-1" {
			t.Fatalf("x-gatehouse-user %q: %s", v, describe(resp))
		}
	})
}
