package policy_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/policy/attest/attesttest"
	"github.com/gatehouse/gatehouse/policy/jwks"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

// TestUserAuthorization: what a verified user token must carry for each requirement, and
// the code of each refusal. The app's organisation is org-1.
func TestUserAuthorization(t *testing.T) {
	for _, tc := range []struct {
		name   string
		u      policy.UserAuth
		claims []any
		want   policy.Code
	}{
		{"no_requirement", policy.UserAuth{}, nil, ""},
		{"role_any_of", policy.UserAuth{Roles: []string{"admin", "ops"}}, []any{"roles", []string{"user", "ops"}}, ""},
		{"role_as_string", policy.UserAuth{Roles: []string{"admin"}}, []any{"roles", "admin"}, ""},
		{"role_missing", policy.UserAuth{Roles: []string{"admin"}}, []any{"roles", []string{"user"}}, policy.Forbidden},
		{"role_claim_absent", policy.UserAuth{Roles: []string{"admin"}}, nil, policy.Forbidden},
		{"role_not_split", policy.UserAuth{Roles: []string{"admin"}}, []any{"roles", "user admin"}, policy.Forbidden},
		{"scopes_all_of_string", policy.UserAuth{Scopes: []string{"read", "write"}}, []any{"scope", "write read other"}, ""},
		{"scopes_all_of_array", policy.UserAuth{Scopes: []string{"read", "write"}}, []any{"scope", []any{"read", 7, "write"}}, ""},
		{"scopes_one_missing", policy.UserAuth{Scopes: []string{"read", "write"}}, []any{"scope", "read"}, policy.Forbidden},
		{"scope_claim_wrong_type", policy.UserAuth{Scopes: []string{"read"}}, []any{"scope", 1}, policy.Forbidden},
		{"email_verified", policy.UserAuth{RequireEmailVerified: true}, []any{"email_verified", true}, ""},
		{"email_not_verified", policy.UserAuth{RequireEmailVerified: true}, []any{"email_verified", false}, policy.EmailNotVerified},
		{"email_claim_absent", policy.UserAuth{RequireEmailVerified: true}, nil, policy.EmailNotVerified},
		{"email_claim_string", policy.UserAuth{RequireEmailVerified: true}, []any{"email_verified", "true"}, policy.EmailNotVerified},
		{"org_member", policy.UserAuth{RequireOrg: true}, []any{"org_id", []string{"org-2", "org-1"}}, ""},
		{"org_member_string", policy.UserAuth{RequireOrg: true}, []any{"org_id", "org-1"}, ""},
		{"org_not_member", policy.UserAuth{RequireOrg: true}, []any{"org_id", "org-2"}, policy.NotOrgMember},
		{"org_role", policy.UserAuth{OrgRoles: []string{"owner"}}, []any{"org_id", "org-1", "org_role", "owner"}, ""},
		{"org_role_wrong", policy.UserAuth{OrgRoles: []string{"owner"}}, []any{"org_id", "org-1", "org_role", "member"}, policy.OrgAccessDenied},
		{"org_role_not_member", policy.UserAuth{OrgRoles: []string{"owner"}}, []any{"org_id", "org-2", "org_role", "owner"}, policy.NotOrgMember},
		{"email_checked_first", policy.UserAuth{RequireEmailVerified: true, Roles: []string{"admin"}}, []any{"roles", "user"}, policy.EmailNotVerified},
		{"org_before_roles", policy.UserAuth{RequireOrg: true, Roles: []string{"admin"}}, []any{"roles", "user"}, policy.NotOrgMember},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newUserEnv(t, 0, false, tc.u, policy.Options{})
			d := e.decide(t0.Add(-time.Minute), e.token(t, tc.claims...))
			wantCode(t, d, tc.want)
			if tc.want != "" {
				if d.Step != policy.StepIdentity {
					t.Errorf("step %s", d.Step)
				}
				return
			}
			if v, _ := header(d.Upstream, "x-gatehouse-user"); v != "user-1" {
				t.Errorf("x-gatehouse-user %q, want user-1", v)
			}
		})
	}
}

// TestUserTokenPresentation: where the token is read from, and how a missing or unusable
// one is refused.
func TestUserTokenPresentation(t *testing.T) {
	for _, tc := range []struct {
		name    string
		u       policy.UserAuth
		headers func(tok string) []string
		want    policy.Code
	}{
		{"bearer", policy.UserAuth{}, func(tok string) []string { return []string{"authorization", "Bearer " + tok} }, ""},
		{"missing", policy.UserAuth{}, func(string) []string { return nil }, policy.Unauthorized},
		{"missing_optional", policy.UserAuth{Optional: true}, func(string) []string { return nil }, ""},
		{"bad_optional_still_refused", policy.UserAuth{Optional: true}, func(string) []string { return []string{"authorization", "Bearer a.b.c"} }, policy.InvalidToken},
		{"not_bearer", policy.UserAuth{}, func(tok string) []string { return []string{"authorization", "Token " + tok} }, policy.InvalidToken},
		{"not_jwt_shaped", policy.UserAuth{}, func(string) []string { return []string{"authorization", "Bearer opaque"} }, policy.InvalidToken},
		{"repeated", policy.UserAuth{}, func(tok string) []string { return []string{"authorization", "Bearer " + tok + ", Bearer " + tok} }, policy.InvalidToken},
		{"custom_header", policy.UserAuth{Header: "x-user-token"}, func(tok string) []string { return []string{"x-user-token", tok} }, ""},
		{"custom_header_missing", policy.UserAuth{Header: "x-user-token"}, func(tok string) []string { return []string{"authorization", "Bearer " + tok} }, policy.Unauthorized},
		{"custom_header_empty", policy.UserAuth{Header: "x-user-token"}, func(string) []string { return []string{"x-user-token", " "} }, policy.InvalidToken},
		{"custom_header_repeated", policy.UserAuth{Header: "x-user-token"}, func(tok string) []string { return []string{"x-user-token", tok + "," + tok} }, policy.InvalidToken},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newUserEnv(t, 0, false, tc.u, policy.Options{})
			in := get("/e", tc.headers(e.token(t))...)
			wantCode(t, e.rules.Decide(context.Background(), t0.Add(-time.Minute), in), tc.want)
		})
	}
}

// TestUserTokenVerification: tokens the provider must refuse, typed by hand.
func TestUserTokenVerification(t *testing.T) {
	e := newUserEnv(t, 0, false, policy.UserAuth{}, policy.Options{})
	for _, tc := range []struct {
		name string
		tok  func() string
		want policy.Code
	}{
		{"valid", func() string { return e.token(t) }, ""},
		{"wrong_issuer", func() string { return e.token(t, "iss", "https://evil.test") }, policy.InvalidToken},
		{"no_issuer", func() string { return e.token(t, "iss", nil) }, policy.InvalidToken},
		{"wrong_audience", func() string { return e.token(t, "aud", "other") }, policy.InvalidToken},
		{"audience_among_many", func() string { return e.token(t, "aud", []string{"other", "api"}) }, ""},
		{"forged", func() string { return e.forged(t) }, policy.InvalidToken},
		{"unknown_kid", func() string { return signWithKid(t, e, "k9") }, policy.InvalidToken},
		{"expired_and_forged", func() string { return expiredForged(t, e) }, policy.InvalidToken},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantCode(t, e.decide(t0.Add(-time.Minute), tc.tok()), tc.want)
		})
	}
}

// TestUserKeysUnavailable: keys that cannot be loaded leave the verdict to the fail mode,
// and a key published for another algorithm is refused.
func TestUserKeysUnavailable(t *testing.T) {
	e := newUserEnv(t, 0, false, policy.UserAuth{}, policy.Options{})
	src, err := jwks.New(jwks.Options{URL: "http://127.0.0.1:1/jwks", MinRefresh: time.Hour, Refresh: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	ver := &policy.JWTVerifier{Name: "down", Issuer: "https://id.test", Audiences: []string{"api"}, Algorithms: []string{"ES256"}, Keys: src}
	for _, fm := range []policy.FailMode{policy.FailClosed, policy.FailOpen} {
		r := newTestRules(t, policy.Options{FailMode: fm}, nil, &policy.Endpoint{Name: "e", Path: "/e", User: &policy.UserAuth{Verifier: ver}})
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		d := r.Decide(ctx, t0.Add(-time.Minute), get("/e", "authorization", "Bearer "+e.token(t)))
		cancel()
		switch fm {
		case policy.FailClosed:
			wantCode(t, d, policy.ServiceUnavailable)
		case policy.FailOpen:
			wantCode(t, d, "")
			if !d.FailOpen || !strings.Contains(d.Cause, "down keys") {
				t.Errorf("fail open: %v cause %q", d.FailOpen, d.Cause)
			}
			if _, ok := header(d.Upstream, "x-gatehouse-user"); ok {
				t.Error("an unverified token's subject was forwarded")
			}
		}
	}
	wrongAlg := jwks.NewStatic(jwks.Key{ID: "k1", Alg: "ES384", Key: e.key.Private.Public()})
	ver2 := &policy.JWTVerifier{Name: "alg", Issuer: "https://id.test", Algorithms: []string{"ES256"}, Keys: wrongAlg}
	r := newTestRules(t, policy.Options{}, nil, &policy.Endpoint{Name: "e", Path: "/e", User: &policy.UserAuth{Verifier: ver2}})
	wantCode(t, r.Decide(context.Background(), t0.Add(-time.Minute), get("/e", "authorization", "Bearer "+e.token(t))), policy.InvalidToken)
}

// TestPayloadRules: the size limit at the exact byte and one either side, truncated and
// withheld bodies, and the code each schema violation maps to. Messages name schema fields,
// never values.
func TestPayloadRules(t *testing.T) {
	c := jsonschema.NewCompiler()
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(`{"type":"object","required":["name"],"additionalProperties":false,
		"properties":{"name":{"type":"string"},"age":{"type":"integer","minimum":0},"addr":{"type":"object","required":["city"],"properties":{"city":{"type":"string"}}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.AddResource("s.json", doc); err != nil {
		t.Fatal(err)
	}
	schema, err := c.Compile("s.json")
	if err != nil {
		t.Fatal(err)
	}
	const limit = 64
	for _, tc := range []struct {
		name    string
		p       policy.Payload
		body    string
		size    int64 // declared size; -1 unknown
		partial bool
		want    policy.Code
		msg     string
	}{
		{"declared_at_limit", policy.Payload{MaxBytes: limit}, "", limit, false, "", ""},
		{"declared_1_over", policy.Payload{MaxBytes: limit}, "", limit + 1, false, policy.PayloadTooLarge, "Request body exceeds the limit of 64 bytes"},
		{"body_at_limit", policy.Payload{MaxBytes: limit}, strings.Repeat("x", limit), -1, false, "", ""},
		{"body_1_over", policy.Payload{MaxBytes: limit}, strings.Repeat("x", limit+1), -1, false, policy.PayloadTooLarge, "Request body exceeds the limit of 64 bytes"},
		{"no_limit", policy.Payload{}, strings.Repeat("x", 10_000), 10_000, false, "", ""},
		{"valid", policy.Payload{Schema: schema}, `{"name":"n","age":3}`, 20, false, "", ""},
		{"truncated", policy.Payload{Schema: schema}, `{"name":"n"`, 999, true, policy.PayloadTooLarge, "Request body was truncated before it could be checked"},
		{"withheld", policy.Payload{Schema: schema}, "", 12, false, policy.ValidationError, "Request body was not forwarded for validation"},
		{"not_json", policy.Payload{Schema: schema}, `{"name":`, 8, false, policy.InvalidJSON, "Request body is not valid JSON"},
		{"missing", policy.Payload{Schema: schema}, `{"age":1}`, 9, false, policy.MissingField, "Missing required field: name"},
		{"missing_nested", policy.Payload{Schema: schema}, `{"name":"n","addr":{}}`, -1, false, policy.MissingField, "Missing required field: addr.city"},
		{"wrong_type", policy.Payload{Schema: schema}, `{"name":"n","age":"secret-value"}`, -1, false, policy.InvalidField, "Field has an invalid value: age"},
		{"below_minimum", policy.Payload{Schema: schema}, `{"name":"n","age":-5}`, -1, false, policy.InvalidField, "Field has an invalid value: age"},
		{"root_wrong_type", policy.Payload{Schema: schema}, `["secret-value"]`, -1, false, policy.ValidationError, "Request body validation failed"},
		{"unknown_key", policy.Payload{Schema: schema}, `{"name":"n","secret-key":1}`, -1, false, policy.ValidationError, "Request body validation failed"},
		{"empty_body_unknown_size", policy.Payload{Schema: schema}, "", -1, false, policy.InvalidJSON, "Request body is not valid JSON"},
		{"empty_body_size_0", policy.Payload{Schema: schema}, "", 0, false, policy.InvalidJSON, "Request body is not valid JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.p
			r := newTestRules(t, policy.Options{}, nil, &policy.Endpoint{Name: "e", Path: "/e", Payload: &p})
			in := get("/e")
			in.Body, in.HasBody, in.BodySize, in.BodyPartial = tc.body, tc.body != "", tc.size, tc.partial
			d := r.Decide(context.Background(), t0, in)
			wantCode(t, d, tc.want)
			if tc.want == "" {
				return
			}
			if d.Step != policy.StepPayload || d.Message != tc.msg {
				t.Errorf("step %s message %q, want payload %q", d.Step, d.Message, tc.msg)
			}
			if strings.Contains(string(d.Render().Body), "secret") {
				t.Errorf("the denial echoes request data: %s", d.Render().Body)
			}
		})
	}
}

// signWithKid signs valid claims with the trusted key under another key id.
func signWithKid(t *testing.T, e *userEnv, kid string) string {
	claims := attesttest.Claims{"iss": "https://id.test", "aud": "api", "sub": "user-1", "exp": t0.Unix()}
	return attesttest.Sign(t, e.key, claims, map[string]any{"kid": kid})
}

// expiredForged is an expired token signed by an untrusted key: its expiry must not be
// reported before its signature is checked.
func expiredForged(t *testing.T, e *userEnv) string {
	other := attesttest.NewKey(t, "ES256", "k1")
	return attesttest.Sign(t, other, attesttest.Claims{"iss": "https://id.test", "aud": "api", "exp": t0.Add(-time.Hour).Unix()}, nil)
}
