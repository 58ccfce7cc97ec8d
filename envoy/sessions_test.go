package envoy

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// sessionRoute is one session endpoint of the README's Sessions section: its path, the
// endpoint name of its example configuration, and whether Check reads its body (an App
// Attest enrolment, a refresh token).
type sessionRoute struct {
	path, endpoint string
	body           bool
}

// sessionRoutes, typed from the README's Sessions section.
var sessionRoutes = []sessionRoute{
	{"/v1/attest/challenge", "attest-challenge", false},
	{"/v1/attest/exchange", "attest-exchange", true},
	{"/v1/attest/refresh", "attest-refresh", true},
	{"/auth/heartbeat", "heartbeat", false},
	{"/.well-known/gatehouse-sessions.json", "session-jwks", false},
}

// sessionBodyBytes is the README's bound on a session request body Envoy buffers for Check.
const sessionBodyBytes = 32768

// checkSessionRoute checks one session route's per-filter settings: Check names the
// endpoint and, where it reads the body, gets it whole up to 32 KiB; the response phase is
// off (Gatehouse answers the request itself).
func checkSessionRoute(t *testing.T, at string, per map[string]*anypb.Any, want sessionRoute) {
	t.Helper()
	authz := &extauthzv3.ExtAuthzPerRoute{}
	if a := per[extAuthzFilter]; a == nil || a.UnmarshalTo(authz) != nil {
		t.Errorf("%s: no ext_authz settings", at)
		return
	}
	cs := authz.GetCheckSettings()
	if authz.GetDisabled() || cs.GetContextExtensions()["endpoint"] != want.endpoint {
		t.Errorf("%s: ext_authz %v, want enabled with context_extensions.endpoint %q", at, authz, want.endpoint)
	}
	if want.body {
		b := cs.GetWithRequestBody()
		if b.GetMaxRequestBytes() != sessionBodyBytes || b.GetAllowPartialMessage() || cs.GetDisableRequestBodyBuffering() {
			t.Errorf("%s: with_request_body %v, want max_request_bytes %d without partial messages", at, b, sessionBodyBytes)
		}
	}
	if p := per[extProcFilter]; p == nil {
		t.Errorf("%s: ext_proc not disabled", at)
	} else if r := extProcPerRoute(t, &routev3.Route{Name: at, TypedPerFilterConfig: per}); !r.GetDisabled() {
		t.Errorf("%s: ext_proc %v, want disabled (Gatehouse answers the request itself)", at, r)
	}
}

// TestSidecarSessionRoutes: each sidecar bootstrap routes the session endpoints to Check
// with their endpoint names, buffers the exchange's and the refresh's bodies for it, and
// runs no response phase on them. The session route is the first one matching its path, so
// no earlier prefix route takes its requests with other settings.
func TestSidecarSessionRoutes(t *testing.T) {
	for _, f := range bootstrapFiles(t) {
		t.Run(f, func(t *testing.T) {
			rc := unpackPipeline(t, loadBootstrap(t, f)).hcm.GetRouteConfig()
			for _, want := range sessionRoutes {
				r := firstRoute(rc, want.path)
				if r == nil || r.GetMatch().GetPath() != want.path {
					t.Errorf("%s: first route matching is %v, want one for exactly that path", want.path, r.GetName())
					continue
				}
				checkSessionRoute(t, f+" route "+r.GetName(), r.GetTypedPerFilterConfig(), want)
			}
		})
	}
}

// firstRoute is the first route of rc whose path or prefix matches path.
func firstRoute(rc *routev3.RouteConfiguration, path string) *routev3.Route {
	for _, vh := range rc.GetVirtualHosts() {
		for _, r := range vh.GetRoutes() {
			m := r.GetMatch()
			if m.GetPath() == path || m.GetPath() == "" && m.GetPrefix() != "" && strings.HasPrefix(path, m.GetPrefix()) {
				return r
			}
		}
	}
	return nil
}

// TestIstioSessionRoutes: the Istio route patches (matched by VirtualService route name,
// the endpoint's name) give the session routes the same settings as the sidecar.
func TestIstioSessionRoutes(t *testing.T) {
	cfg := loadIstio(t)
	per := map[string]map[string]*anypb.Any{} // route name → merged typed_per_filter_config
	for _, ef := range cfg.envoyFilters {
		for i, m := range cfg.patchMessages[ef.Metadata.Name] {
			r, ok := m.(*routev3.Route)
			rcm := ef.Spec.ConfigPatches[i].Match.RouteConfiguration
			if !ok || rcm == nil {
				continue
			}
			name := rcm.Vhost.Route.Name
			if per[name] == nil {
				per[name] = map[string]*anypb.Any{}
			}
			for k, v := range r.GetTypedPerFilterConfig() {
				if per[name][k] != nil {
					t.Errorf("route %s: %s patched twice", name, k)
				}
				per[name][k] = v
			}
		}
	}
	for _, want := range sessionRoutes {
		checkSessionRoute(t, fmt.Sprintf("istio route %s", want.endpoint), per[want.endpoint], want)
	}
}

// TestEnvoyGatewaySessionRoutes: behind Envoy Gateway the session endpoints are an
// HTTPRoute of their own, api-sessions, whose SecurityPolicy sends Check bodies of up to
// 32 KiB, and which no EnvoyExtensionPolicy targets (no response phase).
func TestEnvoyGatewaySessionRoutes(t *testing.T) {
	files, _ := filepath.Glob("envoy-gateway/*.yaml")
	var found int
	for _, f := range files {
		for i, doc := range yamlDocs(t, f) {
			at := fmt.Sprintf("%s#%d", f, i)
			switch _, kind := kindOf(t, doc); kind {
			case "SecurityPolicy":
				var sp egSecurityPolicy
				if err := strictYAML(doc, &sp); err != nil {
					t.Fatalf("%s: %v", at, err)
				}
				if !targets(sp.Spec.TargetRefs, "api-sessions") {
					continue
				}
				found++
				if len(sp.Spec.TargetRefs) != 1 || sp.Spec.ExtAuth == nil || sp.Spec.ExtAuth.BodyToExtAuth == nil ||
					sp.Spec.ExtAuth.BodyToExtAuth.MaxRequestBytes != sessionBodyBytes {
					t.Errorf("%s: want a policy of api-sessions alone with bodyToExtAuth.maxRequestBytes %d", at, sessionBodyBytes)
				}
			case "EnvoyExtensionPolicy":
				var ep egEnvoyExtensionPolicy
				if err := strictYAML(doc, &ep); err != nil {
					t.Fatalf("%s: %v", at, err)
				}
				if targets(ep.Spec.TargetRefs, "api-sessions") {
					t.Errorf("%s: the session routes need no response phase", at)
				}
			}
		}
	}
	if found != 1 {
		t.Errorf("%d SecurityPolicies target HTTPRoute api-sessions, want 1", found)
	}
}

func targets(refs []egTargetRef, route string) bool {
	for _, r := range refs {
		if r.Kind == "HTTPRoute" && r.Name == route {
			return true
		}
	}
	return false
}
