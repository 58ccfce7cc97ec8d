package policy_test

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy"
)

// TestEndpointMatching: which endpoint a request is judged by, and the requests that
// must be refused before any rule is consulted.
func TestEndpointMatching(t *testing.T) {
	eps := []*policy.Endpoint{
		{Name: "v1", Path: "/v1", Prefix: true, Methods: []string{"GET"}},
		{Name: "admin", Path: "/v1/admin", Methods: []string{"GET", "DELETE"}},
		{Name: "files", Path: "/v1/files/", Prefix: true},
		{Name: "slugonly", Methods: []string{"POST"}},
	}
	r := newTestRules(t, policy.Options{}, nil, eps...)
	for _, tc := range []struct {
		name, method, path string
		ext                map[string]string
		want               policy.Code
		endpoint           string
		allow              string // the Allow header of an INVALID_METHOD
	}{
		{"exact", "GET", "/v1/admin", nil, "", "admin", ""},
		{"exact_other_method", "DELETE", "/v1/admin", nil, "", "admin", ""},
		{"exact_wrong_method", "POST", "/v1/admin", nil, policy.InvalidMethod, "admin", "GET, DELETE"},
		{"prefix_itself", "GET", "/v1", nil, "", "v1", ""},
		{"prefix_child", "GET", "/v1/other", nil, "", "v1", ""},
		{"prefix_wrong_method", "PUT", "/v1/other", nil, policy.InvalidMethod, "v1", "GET"},
		{"prefix_not_a_segment", "GET", "/v10", nil, policy.EndpointNotFound, "", ""},
		{"slash_prefix_child", "PATCH", "/v1/files/a/b", nil, "", "files", ""},
		{"slash_prefix_without_slash", "GET", "/v1/files", nil, "", "files", ""}, // one trailing slash is ignored, on rules too
		{"longer_prefix_first", "GET", "/v1/files/a", nil, "", "files", ""},
		{"unknown", "GET", "/v2", nil, policy.EndpointNotFound, "", ""},
		{"slug", "POST", "/anything", map[string]string{"endpoint": "slugonly"}, "", "slugonly", ""},
		{"slug_wrong_method", "GET", "/anything", map[string]string{"endpoint": "slugonly"}, policy.InvalidMethod, "slugonly", "POST"},
		{"slug_unknown", "GET", "/v1/admin", map[string]string{"endpoint": "nope"}, policy.EndpointNotFound, "", ""},
		{"slug_wins_over_path", "POST", "/v1/admin", map[string]string{"endpoint": "slugonly"}, "", "slugonly", ""},
		{"other_extension_ignored", "GET", "/v1/admin", map[string]string{"route": "x"}, "", "admin", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := get(tc.path)
			in.Method, in.Ext = tc.method, tc.ext
			d := r.Decide(context.Background(), t0, in)
			wantCode(t, d, tc.want)
			if d.Endpoint != tc.endpoint {
				t.Errorf("endpoint %q, want %q", d.Endpoint, tc.endpoint)
			}
			if tc.want != "" && d.Step != policy.StepEndpoint {
				t.Errorf("step %s, want endpoint", d.Step)
			}
			if v, _ := header(d.Response, "allow"); v != tc.allow {
				t.Errorf("allow header %q, want %q", v, tc.allow)
			}
		})
	}
	t.Run("custom_extension_key", func(t *testing.T) {
		r := newTestRules(t, policy.Options{EndpointKey: "route"}, nil, eps...)
		in := get("/nowhere")
		in.Method, in.Ext = "POST", map[string]string{"route": "slugonly", "endpoint": "admin"}
		if d := r.Decide(context.Background(), t0, in); !d.Allowed() || d.Endpoint != "slugonly" {
			t.Fatalf("%s %q, want slugonly allowed", d.Code, d.Endpoint)
		}
	})
}

// TestAmbiguousPathsRefused: spellings an upstream may resolve differently never match a
// rule (ENDPOINT_NOT_FOUND), even where a prefix rule would take any child path.
func TestAmbiguousPathsRefused(t *testing.T) {
	r := newTestRules(t, policy.Options{}, nil, &policy.Endpoint{Name: "all", Path: "/", Prefix: true})
	for _, p := range []string{
		"", "v1/admin", "*", "/v1//admin", "//v1", "/v1/./admin", "/v1/../admin", "/v1/..", "/v1/.", "/.",
		"/v1/%2e%2e/admin", "/v1/%2E./admin", "/v1/%2fadmin", "/v1/%2Fadmin", "/v1/%5cadmin", "/v1/%5Cadmin",
		"/v1\\admin", "/v1/%00", "/v1/a\x00b", "/v1/%25", "/v1/%2", "/v1/%",
	} {
		t.Run(p, func(t *testing.T) {
			wantCode(t, r.Decide(context.Background(), t0, get(p)), policy.EndpointNotFound)
		})
	}
	for _, p := range []string{"/", "/v1/admin", "/v1/a.b", "/v1/..a", "/v1/.well-known", "/v1/%41", "/v1/a%20b"} {
		t.Run("allowed"+p, func(t *testing.T) {
			wantCode(t, r.Decide(context.Background(), t0, get(p)), "")
		})
	}
}

// TestAuthenticate: where an app credential is read from, and every way to present a wrong
// one. App b's credentials are "tok-b" and "key-b".
func TestAuthenticate(t *testing.T) {
	a := &policy.App{Name: "a", TokenHashes: []policy.Hash{policy.HashCredential("tok")}, APIKeyHashes: []policy.Hash{policy.HashCredential("key-a")}, AllEndpoints: true}
	b := &policy.App{Name: "b", TokenHashes: []policy.Hash{policy.HashCredential("tok-b")}, APIKeyHashes: []policy.Hash{policy.HashCredential("key-b")}, AllEndpoints: true}
	r, err := policy.NewRules(policy.Options{}, []*policy.App{a, b}, []*policy.Endpoint{{Name: "e", Path: "/e"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		headers []string // replaces the default app token
		want    policy.Code
		app     string
		removed string // the credential header removed upstream
	}{
		{"app_token", []string{"x-app-token", "tok"}, "", "a", "x-app-token"},
		{"app_token_padded", []string{"x-app-token", " tok-b "}, "", "b", "x-app-token"},
		{"app_token_unknown", []string{"x-app-token", "guess"}, policy.AppNotFound, "", ""},
		{"app_token_empty", []string{"x-app-token", " "}, policy.Unauthorized, "", ""},
		{"app_token_repeated", []string{"x-app-token", "tok,tok-b"}, policy.Unauthorized, "", ""},
		{"app_token_leading_comma", []string{"x-app-token", ",tok"}, policy.Unauthorized, "", ""},
		{"app_token_wins_over_api_key", []string{"x-app-token", "guess", "x-api-key", "key-a"}, policy.AppNotFound, "", ""},
		{"api_key", []string{"x-api-key", "key-a"}, "", "a", "x-api-key"},
		{"api_key_is_not_an_app_token", []string{"x-app-token", "key-a"}, policy.AppNotFound, "", ""},
		{"app_token_is_not_an_api_key", []string{"x-api-key", "tok"}, policy.Unauthorized, "", ""},
		{"api_key_repeated", []string{"x-api-key", "key-a, key-b"}, policy.Unauthorized, "", ""},
		{"api_key_empty", []string{"x-api-key", ""}, policy.Unauthorized, "", ""},
		{"bearer_api_key", []string{"authorization", "Bearer key-b"}, "", "b", "authorization"},
		{"bearer_lower_case", []string{"authorization", "bearer key-a"}, "", "a", "authorization"},
		{"bearer_unknown", []string{"authorization", "Bearer guess"}, policy.Unauthorized, "", ""},
		{"bearer_jwt_shaped_is_a_user_token", []string{"authorization", "Bearer a.b.c"}, policy.Unauthorized, "", ""},
		{"bearer_empty", []string{"authorization", "Bearer   "}, policy.Unauthorized, "", ""},
		{"bearer_short", []string{"authorization", "Bearer"}, policy.Unauthorized, "", ""},
		{"basic", []string{"authorization", "Basic a2V5LWE="}, policy.Unauthorized, "", ""},
		{"bearer_repeated", []string{"authorization", "Bearer key-a, Bearer key-b"}, policy.Unauthorized, "", ""},
		{"none", nil, policy.Unauthorized, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := get("/e", tc.headers...)
			if len(tc.headers) == 0 || tc.headers[0] != "x-app-token" {
				delete(in.Headers, "x-app-token")
			}
			d := r.Decide(context.Background(), t0, in)
			wantCode(t, d, tc.want)
			if d.App != tc.app {
				t.Errorf("app %q, want %q", d.App, tc.app)
			}
			if tc.want != "" {
				if d.Step != policy.StepApp {
					t.Errorf("step %s, want app", d.Step)
				}
				return
			}
			if !slices.Contains(d.Remove, tc.removed) {
				t.Errorf("removed %v, want %s among them", d.Remove, tc.removed)
			}
		})
	}
	t.Run("custom_header_names", func(t *testing.T) {
		r, err := policy.NewRules(policy.Options{AppTokenHeader: "x-token", APIKeyHeader: "x-key"}, []*policy.App{a}, []*policy.Endpoint{{Name: "e", Path: "/e"}})
		if err != nil {
			t.Fatal(err)
		}
		for h, v := range map[string]string{"x-token": "tok", "x-key": "key-a"} {
			in := get("/e", h, v)
			delete(in.Headers, "x-app-token")
			if d := r.Decide(context.Background(), t0, in); !d.Allowed() || !slices.Contains(d.Remove, h) {
				t.Errorf("%s: %s, removed %v", h, d.Code, d.Remove)
			}
		}
		wantCode(t, r.Decide(context.Background(), t0, get("/e")), policy.Unauthorized) // x-app-token is not read
	})
}

// TestAppAndEndpointStates: refusals for the state of the app, its account and the
// endpoint, each at its step.
func TestAppAndEndpointStates(t *testing.T) {
	for _, tc := range []struct {
		name string
		app  *policy.App
		ep   *policy.Endpoint
		want policy.Code
		step policy.Step
	}{
		{"active", &policy.App{}, &policy.Endpoint{}, "", policy.StepDone},
		{"app_disabled", &policy.App{Disabled: true, AccountState: policy.AccountStatePendingDeletion}, &policy.Endpoint{}, policy.AppDisabled, policy.StepApp},
		{"account_disabled", &policy.App{AccountState: policy.AccountStateDisabled}, &policy.Endpoint{}, policy.AccountDisabled, policy.StepApp},
		{"account_pending_deletion", &policy.App{AccountState: policy.AccountStatePendingDeletion}, &policy.Endpoint{}, policy.AccountPendingDeletion, policy.StepApp},
		{"endpoint_disabled", &policy.App{}, &policy.Endpoint{Disabled: true}, policy.EndpointDisabled, policy.StepEndpoint},
		{"not_linked", &policy.App{Endpoints: map[string]bool{"other": true}}, &policy.Endpoint{}, policy.EndpointNotLinked, policy.StepEndpoint},
		{"linked", &policy.App{Endpoints: map[string]bool{"e": true}}, &policy.Endpoint{}, "", policy.StepDone},
		{"disabled_before_not_linked", &policy.App{Endpoints: map[string]bool{"other": true}}, &policy.Endpoint{Disabled: true}, policy.EndpointDisabled, policy.StepEndpoint},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.ep.Name, tc.ep.Path = "e", "/e"
			eps := []*policy.Endpoint{tc.ep, {Name: "other", Path: "/other"}}
			d := newTestRules(t, policy.Options{}, tc.app, eps...).Decide(context.Background(), t0, get("/e"))
			wantCode(t, d, tc.want)
			if d.Step != tc.step || d.App != "a" {
				t.Errorf("step %s app %q, want %s a", d.Step, d.App, tc.step)
			}
		})
	}
}

// TestIdentityHeaders: an allowed request carries Gatehouse's identity headers, and a
// client can neither set them itself nor keep the credential it authenticated with.
func TestIdentityHeaders(t *testing.T) {
	dev := fakeDevice{device: policy.DeviceVerdict{DeviceID: "dev-1", Remove: []string{"x-attestation-token", "x-license-key"}}}
	for _, tc := range []struct {
		name     string
		o        policy.Options
		app      *policy.App
		headers  []string
		upstream map[string]string
		removed  []string
	}{
		{"plain", policy.Options{}, nil, []string{"x-gatehouse-app", "evil", "x-gatehouse-role", "admin"},
			map[string]string{"x-gatehouse-app": "a", "x-gatehouse-endpoint": "e"},
			[]string{"x-app-token", "x-gatehouse-role"}},
		{"device", policy.Options{}, &policy.App{Device: dev}, []string{"x-attestation-token", "t", "x-gatehouse-device", "evil"},
			map[string]string{"x-gatehouse-app": "a", "x-gatehouse-endpoint": "e", "x-gatehouse-device": "dev-1"},
			[]string{"x-app-token", "x-attestation-token"}},
		{"custom_prefix", policy.Options{IdentityHeaderPrefix: "x-gh-"}, nil, []string{"x-gh-user", "evil", "x-gatehouse-app", "kept"},
			map[string]string{"x-gh-app": "a", "x-gh-endpoint": "e"},
			[]string{"x-app-token", "x-gh-user"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newTestRules(t, tc.o, tc.app, &policy.Endpoint{Name: "e", Path: "/e"}).Decide(context.Background(), t0, get("/e", tc.headers...))
			wantCode(t, d, "")
			if len(d.Upstream) != len(tc.upstream) {
				t.Errorf("upstream %v, want %v", d.Upstream, tc.upstream)
			}
			for k, v := range tc.upstream {
				if got, _ := header(d.Upstream, k); got != v {
					t.Errorf("upstream %s = %q, want %q", k, got, v)
				}
			}
			got := slices.Sorted(slices.Values(d.Remove))
			if want := slices.Sorted(slices.Values(tc.removed)); !slices.Equal(got, want) {
				t.Errorf("removed %v, want %v", got, want)
			}
		})
	}
}

// TestLimitRequestFields: what the pipeline counts a request under.
func TestLimitRequestFields(t *testing.T) {
	dev := fakeDevice{device: policy.DeviceVerdict{DeviceID: "dev-1", License: "lic-hash"}}
	for _, tc := range []struct {
		name string
		cost int64
		want int64
	}{{"default_cost", 0, 1}, {"negative_cost", -3, 1}, {"cost_5", 5, 5}, {"cost_1", 1, 1}} {
		t.Run(tc.name, func(t *testing.T) {
			lim := &fakeLimiter{res: policy.LimitResult{Limit: 10, Remaining: 4, Name: "n"}}
			r := newTestRules(t, policy.Options{Limiter: lim}, &policy.App{Org: "org-1", Device: dev}, &policy.Endpoint{Name: "e", Path: "/e", Cost: tc.cost})
			d := r.Decide(context.Background(), t0, get("/e"))
			wantCode(t, d, "")
			want := policy.LimitRequest{App: "a", Endpoint: "e", Org: "org-1", Device: "dev-1", IP: "192.0.2.1", License: "lic-hash", Cost: tc.want}
			if len(lim.got) != 1 || lim.got[0] != want {
				t.Fatalf("limit request %+v, want %+v", lim.got, want)
			}
			if d.RateLimit != lim.res {
				t.Errorf("rate limit %+v, want %+v", d.RateLimit, lim.res)
			}
		})
	}
	t.Run("no_address", func(t *testing.T) {
		lim := &fakeLimiter{}
		in := get("/e")
		in.Source = netip.Addr{} // a pipe
		wantCode(t, newTestRules(t, policy.Options{Limiter: lim}, nil, &policy.Endpoint{Name: "e", Path: "/e"}).Decide(context.Background(), t0, in), "")
		if len(lim.got) != 1 || lim.got[0].IP != "" {
			t.Fatalf("limit requests %+v, want one without an IP", lim.got)
		}
	})
	t.Run("refusal", func(t *testing.T) {
		res := policy.LimitResult{Code: policy.DeviceRateLimited, Limit: 3, Remaining: 0, Reset: t0.Add(time.Minute), RetryAfter: 42 * time.Second, Name: "per_device"}
		lim := &fakeLimiter{res: res}
		d := newTestRules(t, policy.Options{Limiter: lim}, nil, &policy.Endpoint{Name: "e", Path: "/e"}).Decide(context.Background(), t0, get("/e"))
		wantCode(t, d, policy.DeviceRateLimited)
		if d.RetryAfter != 42*time.Second || d.RateLimit != res || d.Step != policy.StepLimits {
			t.Fatalf("retry-after %v rate limit %+v step %s", d.RetryAfter, d.RateLimit, d.Step)
		}
	})
}

// TestParseFailMode: the configuration spellings.
func TestParseFailMode(t *testing.T) {
	for in, want := range map[string]policy.FailMode{"": policy.FailModeInherit, "closed": policy.FailClosed, "open": policy.FailOpen, "error": policy.FailError} {
		if got, err := policy.ParseFailMode(in); err != nil || got != want {
			t.Errorf("ParseFailMode(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"Open", "allow", "inherit", " closed"} {
		if _, err := policy.ParseFailMode(in); err == nil {
			t.Errorf("ParseFailMode(%q) accepted", in)
		}
	}
}

// TestNewRulesRefusesAmbiguity: two owners of one name or credential, or a link to
// nothing, are refused, all reported at once.
func TestNewRulesRefusesAmbiguity(t *testing.T) {
	h := policy.HashCredential
	apps := []*policy.App{
		{Name: "a", TokenHashes: []policy.Hash{h("t")}, APIKeyHashes: []policy.Hash{h("k")}, Endpoints: map[string]bool{"ghost": true}},
		{Name: "a", TokenHashes: []policy.Hash{h("t")}, APIKeyHashes: []policy.Hash{h("k")}},
	}
	_, err := policy.NewRules(policy.Options{}, apps, []*policy.Endpoint{{Name: "e"}, {Name: "e"}})
	if err == nil {
		t.Fatal("accepted")
	}
	want := `app "a" defined twice; app "a" links unknown endpoint "ghost"; apps "a" and "a" share an API key; apps "a" and "a" share an app token; endpoint "e" defined twice`
	if err.Error() != want {
		t.Fatalf("error %q\nwant  %q", err, want)
	}
	r, err := policy.NewRules(policy.Options{Version: "v7"}, apps[:1:1], []*policy.Endpoint{{Name: "ghost"}})
	if err != nil {
		t.Fatal(err)
	}
	if r.Version() != "v7" {
		t.Errorf("version %q", r.Version())
	}
	if a, ok := r.App("a"); !ok || a != apps[0] {
		t.Error("App(a) not found")
	}
	if _, ok := r.App("b"); ok {
		t.Error("App(b) found")
	}
}
