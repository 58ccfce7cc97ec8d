package policy_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/policy/jwks"
	"github.com/golang-jwt/jwt/v5"
)

// adminRules is the shape every path spelling is tried against: an exact /v1/admin
// endpoint that requires a user JWT with the admin role, and a prefix /v1 endpoint that
// requires nothing but the app token. Anything judged by the admin rule without a user
// token is UNAUTHORIZED; anything judged by /v1 is allowed.
func adminRules(t testing.TB, o policy.Options, tweak func(admin, v1 *policy.Endpoint), more ...*policy.Endpoint) *policy.Rules {
	t.Helper()
	admin := &policy.Endpoint{Name: "admin", Path: "/v1/admin", User: &policy.UserAuth{Verifier: testVerifier(t), Roles: []string{"admin"}}}
	v1 := &policy.Endpoint{Name: "v1", Path: "/v1", Prefix: true}
	if tweak != nil {
		tweak(admin, v1)
	}
	app := &policy.App{Name: "shop", TokenHashes: []policy.Hash{policy.HashCredential("app-token")}, AllEndpoints: true}
	r, err := policy.NewRules(o, []*policy.App{app}, append([]*policy.Endpoint{v1, admin}, more...))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// testKey signs the user JWTs of these tests; testVerifier trusts it.
var testKey = func() *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}()

func testVerifier(t testing.TB) *policy.JWTVerifier {
	return &policy.JWTVerifier{Name: "users", Issuer: "https://id.test", Audiences: []string{"api"}, Algorithms: []string{"ES256"},
		Keys: jwks.NewStatic(jwks.Key{ID: "k1", Alg: "ES256", Key: &testKey.PublicKey}), Claims: policy.ClaimNames{Roles: "roles"}}
}

// userToken signs a user JWT for testVerifier.
func userToken(t testing.TB, sub string, roles ...string) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"iss": "https://id.test", "aud": "api", "sub": sub,
		"exp": testNow.Add(time.Hour).Unix(), "roles": roles})
	tok.Header["kid"] = "k1"
	s, err := tok.SignedString(testKey)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var testNow = time.Unix(1_700_000_000, 0)

// decide runs one request with the app token plus extra header pairs.
func decide(r *policy.Rules, method, path string, ext map[string]string, kv ...string) policy.Decision {
	in := &policy.Input{Method: method, Path: path, Ext: ext, Headers: map[string]string{"x-app-token": "app-token"}}
	for i := 0; i+1 < len(kv); i += 2 {
		in.Headers[kv[i]] = kv[i+1]
	}
	return r.Decide(context.Background(), testNow, in)
}

// The outcomes a spelling may have.
const (
	judgedByAdmin = "admin"    // the /v1/admin rule decided (UNAUTHORIZED without a user token)
	notFound      = "notfound" // refused: ENDPOINT_NOT_FOUND
	allowedByV1   = "v1"       // only for spellings that really are another resource
)

// outcome names what a decision did, in the terms of the table.
func outcome(d policy.Decision) string {
	switch {
	case d.Endpoint == "admin" && d.Code == policy.Unauthorized && d.Step == policy.StepIdentity:
		return judgedByAdmin
	case d.Code == policy.EndpointNotFound && d.Endpoint == "":
		return notFound
	case d.Allowed() && d.Endpoint == "v1":
		return allowedByV1
	}
	return "endpoint=" + d.Endpoint + " code=" + string(d.Code) + " step=" + string(d.Step)
}

// adminSpellings is every spelling of /v1/admin that an upstream router (Tomcat and
// Spring matrix parameters, Express case-insensitive routing and optional trailing slash,
// nginx merge_slashes, percent-decoding servers, Windows servers) may serve as /v1/admin,
// with the outcome the path model promises, typed by hand. None may be allowed by /v1.
var adminSpellings = []struct{ path, want string }{
	{"/v1/admin", judgedByAdmin},
	{"/v1/admin/", judgedByAdmin},
	{"/v1/admin;x=1", judgedByAdmin},
	{"/v1/admin;", judgedByAdmin},
	{"/v1/admin;x=1/", judgedByAdmin},
	{"/v1;x=1/admin", judgedByAdmin},
	{"/v1/%61dmin", judgedByAdmin},
	{"/v1/%61%64%6D%69%6E", judgedByAdmin},
	{"/v1/%61%64%6d%69%6e", judgedByAdmin},
	{"/%76%31/admin", judgedByAdmin},
	{"/v1%2Fadmin", notFound},
	{"/v1/x/..;/admin", notFound},
	{"/v1/x/..;x=1/admin", notFound},
	{"/v1/x/../admin", notFound},
	{"/v1/x/%2e%2e/admin", notFound},
	{"/v1/x/%2E%2E/admin", notFound},
	{"/v1/x/.%2e/admin", notFound},
	{"/v1/./admin", notFound},
	{"/v1/.;/admin", notFound},
	{"/v1/%2e/admin", notFound},
	{"/v1/admin/.", notFound},
	{"/v1/admin/..", notFound},
	{"/v1/admin.", notFound},
	{"/v1/admin%2e", notFound},
	{"/v1/Admin", notFound},
	{"/v1/ADMIN", notFound},
	{"/v1/ADMIN/", notFound},
	{"/V1/admin", notFound},
	{"/v1/%41dmin", notFound},
	{"/v1/admin;x=1/..", notFound},
	{"/v1//admin", notFound},
	{"//v1/admin", notFound},
	{"/v1/admin//", notFound},
	{"/v1/;x/admin", notFound},
	{"/v1/admin%2f", notFound},
	{"/v1/admin%2F", notFound},
	{"/v1/admin%2fx", notFound},
	{"/v1/admin%5c", notFound},
	{"/v1\\admin", notFound},
	{"/v1/admin\\", notFound},
	{"/v1/admin%3bx", notFound},
	{"/v1/admin%3Bx=1", notFound},
	{"/v1/admin%252f", notFound},
	{"/v1/admin%25", notFound},
	{"/v1/admin%00", notFound},
	{"/v1/admin%0a", notFound},
	{"/v1/admin%09", notFound},
	{"/v1/admin%7f", notFound},
	{"/v1/admin%3f", notFound},
	{"/v1/admin%23", notFound},
	{"/v1/admin%", notFound},
	{"/v1/admin%2", notFound},
	{"/v1/admin%zz", notFound},
	{"/v1/admin\x00", notFound},
	{"/v1/admin\t", notFound},
	{"/v1/admin ", notFound},
	{"/v1/admin\x7f", notFound},
	{"/v1/adm\xc3\xafn", notFound},
	{"/v1/x/%c0%ae%c0%ae/admin", notFound},
	{"/v1/admin?x=1", notFound}, // a query never reaches the matcher; if it does, it is refused
	{"/v1/admin#x", notFound},
	{"", notFound},
	{"v1/admin", notFound},
	{"*", notFound},
	{"http://api.example.com/v1/admin", notFound},
	// Really other resources: the /v1 rule judges them.
	{"/v1", allowedByV1},
	{"/v1/", allowedByV1},
	{"/v1/administrator", allowedByV1},
	{"/v1/admin/x", allowedByV1},
	{"/v1/admin%20", allowedByV1},
	{"/v1/caf%C3%A9", allowedByV1},
	{"/v1/caf%c3%a9", allowedByV1},
}

// TestPathSpellingsCannotReachLooserRule: every spelling of /v1/admin is judged by the
// /v1/admin rule or refused, never allowed by the looser /v1 prefix rule.
func TestPathSpellingsCannotReachLooserRule(t *testing.T) {
	r := adminRules(t, policy.Options{}, nil)
	for _, tc := range adminSpellings {
		t.Run(tc.path, func(t *testing.T) {
			if got := outcome(decide(r, "GET", tc.path, nil)); got != tc.want {
				t.Fatalf("%q: got %s, want %s", tc.path, got, tc.want)
			}
		})
	}
}

// TestNamedEndpointPathRefusals: when Envoy names the endpoint (context_extensions), the
// path is refused exactly as for path rules, and a route that named the loose /v1
// endpoint cannot carry a spelling of /v1/admin past the admin rule: a path the admin rule
// claims, as spelt or only case-insensitively, is ENDPOINT_NOT_FOUND under the name v1.
func TestNamedEndpointPathRefusals(t *testing.T) {
	r := adminRules(t, policy.Options{}, nil)
	underV1 := map[string]string{judgedByAdmin: notFound, notFound: notFound, allowedByV1: allowedByV1}
	underAdmin := map[string]string{judgedByAdmin: judgedByAdmin, notFound: notFound, allowedByV1: judgedByAdmin}
	for _, tc := range adminSpellings {
		t.Run(tc.path, func(t *testing.T) {
			if got := outcome(decide(r, "GET", tc.path, map[string]string{"endpoint": "v1"})); got != underV1[tc.want] {
				t.Errorf("named v1: got %s, want %s", got, underV1[tc.want])
			}
			// Named admin: normalisation refusals still apply; other paths are admin's.
			if got := outcome(decide(r, "GET", tc.path, map[string]string{"endpoint": "admin"})); got != underAdmin[tc.want] {
				t.Errorf("named admin: got %s, want %s", got, underAdmin[tc.want])
			}
		})
	}
	// An endpoint without a path of its own is what Envoy names, whatever path rules say.
	slugOnly := &policy.Endpoint{Name: "search"}
	r = adminRules(t, policy.Options{}, nil, slugOnly)
	if d := decide(r, "GET", "/v1/search", map[string]string{"endpoint": "search"}); !d.Allowed() || d.Endpoint != "search" {
		t.Errorf("slug-only endpoint: %s %s", d.Endpoint, d.Code)
	}
	if d := decide(r, "GET", "/v1/Admin", map[string]string{"endpoint": "search"}); d.Code != policy.EndpointNotFound {
		t.Errorf("slug-only endpoint, case-only match of the admin rule: %s %s", d.Endpoint, d.Code)
	}
}

// TestCaseInsensitivePaths: an endpoint (or the server) that declares case-insensitive
// matching judges every case of its path; without it, those spellings are refused.
func TestCaseInsensitivePaths(t *testing.T) {
	spellings := []string{"/v1/Admin", "/v1/ADMIN/", "/V1/ADMIN", "/v1/%41dmin", "/v1/aDmIn;x=1"}
	perEndpoint := adminRules(t, policy.Options{}, func(admin, _ *policy.Endpoint) { admin.CaseInsensitive = true })
	server := adminRules(t, policy.Options{CaseInsensitivePaths: true}, nil)
	sensitive := adminRules(t, policy.Options{}, nil)
	for _, p := range spellings {
		if got := outcome(decide(perEndpoint, "GET", p, nil)); got != judgedByAdmin {
			t.Errorf("endpoint case_insensitive, %q: %s", p, got)
		}
		if got := outcome(decide(server, "GET", p, nil)); got != judgedByAdmin {
			t.Errorf("server case-insensitive, %q: %s", p, got)
		}
		if got := outcome(decide(sensitive, "GET", p, nil)); got != notFound {
			t.Errorf("case-sensitive, %q: %s", p, got)
		}
	}
	// A case-insensitive prefix rule does not make a more specific, case-sensitive rule
	// give way: /v1/Admin is still refused.
	v1Caseless := adminRules(t, policy.Options{}, func(_, v1 *policy.Endpoint) { v1.CaseInsensitive = true })
	if got := outcome(decide(v1Caseless, "GET", "/V1/x", nil)); got != allowedByV1 {
		t.Errorf("caseless prefix, /V1/x: %s", got)
	}
	if got := outcome(decide(v1Caseless, "GET", "/v1/Admin", nil)); got != notFound {
		t.Errorf("caseless prefix, /v1/Admin: %s", got)
	}
	// Two rules spelt alike in different cases: each takes its own spelling.
	loud := &policy.Endpoint{Name: "loud", Path: "/v1/ADMIN"}
	twins := adminRules(t, policy.Options{}, nil, loud)
	if d := decide(twins, "GET", "/v1/ADMIN", nil); !d.Allowed() || d.Endpoint != "loud" {
		t.Errorf("/v1/ADMIN with its own rule: %s %s", d.Endpoint, d.Code)
	}
	if got := outcome(decide(twins, "GET", "/v1/admin", nil)); got != judgedByAdmin {
		t.Errorf("/v1/admin beside /v1/ADMIN: %s", got)
	}
	if got := outcome(decide(twins, "GET", "/v1/Admin", nil)); got != notFound {
		t.Errorf("/v1/Admin beside both: %s", got)
	}
}

// TestMethodOverride: method-override headers are refused (INVALID_METHOD, 405) unless
// the server follows them; then the request is judged as the one method they name.
func TestMethodOverride(t *testing.T) {
	verifier := testVerifier(t)
	eps := func() []*policy.Endpoint {
		return []*policy.Endpoint{
			{Name: "list", Path: "/v1/items", Methods: []string{"GET"}},
			{Name: "purge", Path: "/v1/items", Methods: []string{"DELETE"}, User: &policy.UserAuth{Verifier: verifier, Roles: []string{"admin"}}},
		}
	}
	app := &policy.App{Name: "shop", TokenHashes: []policy.Hash{policy.HashCredential("app-token")}, AllEndpoints: true}
	refuse, err := policy.NewRules(policy.Options{}, []*policy.App{app}, eps())
	if err != nil {
		t.Fatal(err)
	}
	follow, err := policy.NewRules(policy.Options{MethodOverride: policy.OverrideFollow}, []*policy.App{app}, eps())
	if err != nil {
		t.Fatal(err)
	}
	const (
		allowedList   = "list"           // allowed as GET by the list endpoint
		judgedAsPurge = "purge"          // judged as DELETE: no user token, UNAUTHORIZED
		refused       = "INVALID_METHOD" // refused, with Allow
	)
	result := func(d policy.Decision) string {
		switch {
		case d.Allowed() && d.Endpoint == "list":
			return allowedList
		case d.Endpoint == "purge" && d.Code == policy.Unauthorized:
			return judgedAsPurge
		case d.Code == policy.InvalidMethod && d.Step == policy.StepEndpoint:
			return refused
		}
		return d.Endpoint + " " + string(d.Code)
	}
	cases := []struct {
		name           string
		headers        []string
		refuse, follow string
	}{
		{"none", nil, allowedList, allowedList},
		{"x-http-method-override", []string{"x-http-method-override", "DELETE"}, refused, judgedAsPurge},
		{"x-http-method", []string{"x-http-method", "DELETE"}, refused, judgedAsPurge},
		{"x-method-override", []string{"x-method-override", "DELETE"}, refused, judgedAsPurge},
		{"underscores", []string{"x_http_method_override", "DELETE"}, refused, judgedAsPurge},
		{"mixed separators and case", []string{"X-Http_Method-OVERRIDE", "DELETE"}, refused, judgedAsPurge},
		{"lower-case method", []string{"x-http-method-override", "delete"}, refused, judgedAsPurge},
		{"padded", []string{"x-http-method-override", " DELETE "}, refused, judgedAsPurge},
		{"names GET", []string{"x-http-method-override", "GET"}, refused, allowedList},
		{"two headers agree", []string{"x-http-method-override", "DELETE", "x-http-method", "delete"}, refused, judgedAsPurge},
		{"two headers differ", []string{"x-http-method-override", "DELETE", "x-http-method", "GET"}, refused, refused},
		{"repeated (merged by Envoy)", []string{"x-http-method-override", "GET,DELETE"}, refused, refused},
		{"empty", []string{"x-http-method-override", ""}, refused, refused},
		{"two words", []string{"x-http-method-override", "DELETE GET"}, refused, refused},
		{"not a token", []string{"x-http-method-override", "DEL(ETE)"}, refused, refused},
		{"control byte", []string{"x-http-method-override", "DELETE\x00"}, refused, refused},
		{"method not allowed anywhere", []string{"x-http-method-override", "PATCH"}, refused, refused},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := result(decide(refuse, "GET", "/v1/items", nil, tc.headers...)); got != tc.refuse {
				t.Errorf("refuse: got %s, want %s", got, tc.refuse)
			}
			if got := result(decide(follow, "GET", "/v1/items", nil, tc.headers...)); got != tc.follow {
				t.Errorf("follow: got %s, want %s", got, tc.follow)
			}
		})
	}
	d := decide(refuse, "GET", "/v1/items", nil, "x-http-method-override", "DELETE")
	if !slices.Contains(d.Response, policy.Header{Key: "allow", Value: "GET"}) {
		t.Errorf("405 without Allow: %+v", d.Response)
	}
	// Named by Envoy, the same refusal applies.
	if got := result(decide(refuse, "GET", "/v1/items", map[string]string{"endpoint": "list"}, "x-http-method", "DELETE")); got != refused {
		t.Errorf("named endpoint: %s", got)
	}
}

// TestIdentityHeaderSpellingsRemoved: a client's own x-gatehouse-* headers are removed in
// every spelling an upstream may read as one (CGI-style servers map '_' to '-', header
// names are case-insensitive), while the ones Gatehouse sets are overwritten, not removed.
func TestIdentityHeaderSpellingsRemoved(t *testing.T) {
	r := adminRules(t, policy.Options{}, nil)
	sent := []string{"x-gatehouse-user", "x_gatehouse_user", "X_Gatehouse_User", "x-gatehouse_device", "x_GATEHOUSE-fail-open",
		"X-GATEHOUSE-ROLE", "x_gatehouse_app"}
	kv := []string{}
	for _, h := range sent {
		kv = append(kv, h, "forged")
	}
	d := decide(r, "GET", "/v1/x", nil, kv...)
	if !d.Allowed() {
		t.Fatalf("denied: %s", d.Code)
	}
	want := []string{"x-gatehouse-user", "x_gatehouse_user", "x_gatehouse_user", "x-gatehouse_device", "x_gatehouse-fail-open",
		"x-gatehouse-role", "x_gatehouse_app"}
	got := slices.Clone(d.Remove)
	slices.Sort(got)
	slices.Sort(want)
	want = append(want, "x-app-token")
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("removed %q, want %q", got, want)
	}
	for _, h := range []string{"x-gatehouse-app", "x-gatehouse-endpoint"} {
		if slices.Contains(d.Remove, h) {
			t.Errorf("%s is set by Gatehouse and must not be removed", h)
		}
	}
	// Nothing that is not an identity header goes.
	d = decide(r, "GET", "/v1/x", nil, "x-gatehousex-user", "keep", "x-gate-house-user", "keep")
	if len(d.Remove) != 1 || d.Remove[0] != "x-app-token" {
		t.Errorf("removed %q", d.Remove)
	}
}

// TestUnforwardableSubject: a JWT subject Gatehouse cannot forward as it is (control
// bytes, line breaks, non-ASCII, edge spaces) is refused with INVALID_TOKEN; a plain one
// reaches the upstream as x-gatehouse-user.
func TestUnforwardableSubject(t *testing.T) {
	r := adminRules(t, policy.Options{}, nil)
	cases := []struct {
		sub     string
		forward bool
	}{
		{"user-1", true},
		{"auth0|5f7c8ec7c33c6c004bbafe82", true},
		{"a b", true},
		{"~!", true},
		{"user\x00", false},
		{"user\r\nx-gatehouse-app: other", false},
		{"user\n", false},
		{"user\t1", false},
		{"user\x7f", false},
		{"jos\u00e9", false},
		{" user", false},
		{"user ", false},
	}
	for _, tc := range cases {
		d := decide(r, "GET", "/v1/admin", nil, "authorization", "Bearer "+userToken(t, tc.sub, "admin"))
		if tc.forward {
			if !d.Allowed() || !slices.Contains(d.Upstream, policy.Header{Key: "x-gatehouse-user", Value: tc.sub}) {
				t.Errorf("%q: %s %+v", tc.sub, d.Code, d.Upstream)
			}
			continue
		}
		if d.Allowed() || d.Code != policy.InvalidToken || d.Step != policy.StepIdentity || len(d.Upstream) != 0 {
			t.Errorf("%q: allowed=%v code=%s step=%s upstream=%+v", tc.sub, d.Allowed(), d.Code, d.Step, d.Upstream)
		}
	}
}

// fixedDevice is a DeviceChecker that verifies every request as one device id.
type fixedDevice string

func (fixedDevice) Network(context.Context, time.Time, *policy.Input, netip.Addr, *policy.Endpoint) policy.DeviceVerdict {
	return policy.DeviceVerdict{}
}

func (f fixedDevice) Device(context.Context, time.Time, *policy.Input, *policy.Endpoint) policy.DeviceVerdict {
	return policy.DeviceVerdict{DeviceID: string(f)}
}

// TestUnforwardableValues: a device id or an injected secret Gatehouse cannot forward as it
// is refuses the request, with the code of the step the value came from; plain ones pass.
func TestUnforwardableValues(t *testing.T) {
	build := func(device, secret string) *policy.Rules {
		ep := &policy.Endpoint{Name: "proxy", Path: "/v1/proxy", Inject: []policy.Injection{
			{Header: "authorization", Prefix: "Bearer ", Secret: policy.NewSecret("s", secret, time.Time{})}}}
		app := &policy.App{Name: "shop", TokenHashes: []policy.Hash{policy.HashCredential("app-token")}, AllEndpoints: true,
			Device: fixedDevice(device)}
		r, err := policy.NewRules(policy.Options{}, []*policy.App{app}, []*policy.Endpoint{ep})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	cases := []struct {
		name, device, secret string
		code                 policy.Code
		step                 policy.Step
	}{
		{"plain", "dev-1", "tok-1", "", policy.StepDone},
		{"device id with a line break", "dev-1\r\nx-gatehouse-app: other", "tok-1", policy.InvalidAttestation, policy.StepAttest},
		{"device id with a NUL", "dev\x00", "tok-1", policy.InvalidAttestation, policy.StepAttest},
		{"secret with a line break", "dev-1", "tok\nx: y", policy.SecretDecryptionFailed, policy.StepSecrets},
		{"secret with a trailing space", "dev-1", "tok ", policy.SecretDecryptionFailed, policy.StepSecrets},
		{"secret with non-ASCII", "dev-1", "t\u00f6k", policy.SecretDecryptionFailed, policy.StepSecrets},
	}
	for _, tc := range cases {
		d := decide(build(tc.device, tc.secret), "GET", "/v1/proxy", nil)
		if d.Code != tc.code || d.Step != tc.step {
			t.Errorf("%s: code %q step %q, want %q %q", tc.name, d.Code, d.Step, tc.code, tc.step)
		}
		if tc.code != "" && len(d.Upstream) != 0 {
			t.Errorf("%s: upstream headers on a denial: %+v", tc.name, d.Upstream)
		}
	}
}

// TestPathOverrideHeadersRefused: X-Original-URL and X-Rewrite-URL make some upstreams
// (Symfony, Laravel, IIS URL Rewrite) serve another path than the one Envoy and Gatehouse
// see, so a request carrying one, in any spelling, is refused (ENDPOINT_NOT_FOUND).
func TestPathOverrideHeadersRefused(t *testing.T) {
	r := adminRules(t, policy.Options{}, nil)
	if got := outcome(decide(r, "GET", "/v1/x", nil)); got != allowedByV1 {
		t.Fatalf("control: %s", got)
	}
	for _, h := range []string{"x-original-url", "x-rewrite-url", "X_Original_URL", "x_rewrite-url"} {
		for _, ext := range []map[string]string{nil, {"endpoint": "v1"}} {
			if got := outcome(decide(r, "GET", "/v1/x", ext, h, "/v1/admin")); got != notFound {
				t.Errorf("%s (named %v): %s", h, ext, got)
			}
		}
	}
	// Names that merely start alike are other headers.
	if got := outcome(decide(r, "GET", "/v1/x", nil, "x-original-urls", "/v1/admin", "x-rewrite", "/v1/admin")); got != allowedByV1 {
		t.Errorf("look-alike names: %s", got)
	}
}
