package extauthz

import (
	"context"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/gatehouse/gatehouse/config"
	"github.com/gatehouse/gatehouse/policy"
	"google.golang.org/grpc/codes"
)

func httpReq(h *authv3.AttributeContext_HttpRequest) *authv3.CheckRequest {
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{Http: h}}}
}

func TestToInput(t *testing.T) {
	cases := []struct {
		name string
		req  *authv3.CheckRequest
		want policy.Input
	}{
		{"empty request", &authv3.CheckRequest{}, policy.Input{Headers: map[string]string{}}},
		{"path keeps query out of Path", httpReq(&authv3.AttributeContext_HttpRequest{Method: "get", Path: "/v1/a?b=c#d", Host: "h", Size: -1}),
			policy.Input{Method: "GET", Path: "/v1/a", RawPath: "/v1/a?b=c#d", Host: "h", BodySize: -1, Headers: map[string]string{}}},
		{"pseudo-headers fill the gaps", httpReq(&authv3.AttributeContext_HttpRequest{Headers: map[string]string{":method": "POST", ":path": "/x", ":authority": "a"}}),
			policy.Input{Method: "POST", Path: "/x", RawPath: "/x", Host: "a", Headers: map[string]string{":method": "POST", ":path": "/x", ":authority": "a"}}},
		{"raw header map merges repeats", httpReq(&authv3.AttributeContext_HttpRequest{Path: "/", HeaderMap: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
			{Key: "X-App-Token", RawValue: []byte("a")}, {Key: "x-app-token", RawValue: []byte("b")}, {Key: "x-one", Value: "1"}}}}),
			policy.Input{Path: "/", RawPath: "/", Headers: map[string]string{"x-app-token": "a,b", "x-one": "1"}}},
		{"plain map names are lower-cased", httpReq(&authv3.AttributeContext_HttpRequest{Path: "/", Headers: map[string]string{
			"X_Gatehouse_User": "forged", "X-App-Token": "a", "x-one": "1"}}),
			policy.Input{Path: "/", RawPath: "/", Headers: map[string]string{"x_gatehouse_user": "forged", "x-app-token": "a", "x-one": "1"}}},
		{"plain map repeats under two spellings merge", httpReq(&authv3.AttributeContext_HttpRequest{Path: "/", Headers: map[string]string{
			"X-App-Token": "a", "x-app-token": "a"}}),
			policy.Input{Path: "/", RawPath: "/", Headers: map[string]string{"x-app-token": "a,a"}}},
		{"raw body wins", httpReq(&authv3.AttributeContext_HttpRequest{Path: "/", RawBody: []byte(`{"a":1}`), Body: "ignored", Size: 7,
			Headers: map[string]string{"x-envoy-auth-partial-body": "true"}}),
			policy.Input{Path: "/", RawPath: "/", Body: `{"a":1}`, HasBody: true, BodySize: 7, BodyPartial: true, Headers: map[string]string{"x-envoy-auth-partial-body": "true"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := ToInput(tc.req)
			if got.Method != tc.want.Method || got.Path != tc.want.Path || got.RawPath != tc.want.RawPath || got.Host != tc.want.Host ||
				got.Body != tc.want.Body || got.HasBody != tc.want.HasBody || got.BodySize != tc.want.BodySize || got.BodyPartial != tc.want.BodyPartial {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
			if len(got.Headers) != len(tc.want.Headers) {
				t.Errorf("headers %v, want %v", got.Headers, tc.want.Headers)
			}
			for k, v := range tc.want.Headers {
				if got.Headers[k] != v {
					t.Errorf("header %s = %q, want %q", k, got.Headers[k], v)
				}
			}
		})
	}
}

func TestToInputSource(t *testing.T) {
	for _, tc := range []struct{ addr, want string }{
		{"10.0.0.1", "10.0.0.1"}, {"::ffff:10.0.0.2", "10.0.0.2"}, {"fe80::1%eth0", "fe80::1"}, {"2001:db8::1", "2001:db8::1"}, {"not-an-ip", ""},
	} {
		req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{
			Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{Address: tc.addr}}}}}}
		got := ToInput(req).Source
		if tc.want == "" {
			if got.IsValid() {
				t.Errorf("%s: got %v, want invalid", tc.addr, got)
			}
			continue
		}
		if got != netip.MustParseAddr(tc.want) {
			t.Errorf("%s: got %v, want %s", tc.addr, got, tc.want)
		}
	}
	pipe := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{
		Address: &corev3.Address_Pipe{Pipe: &corev3.Pipe{Path: "/run/envoy.sock"}}}}}}
	if ToInput(pipe).Source.IsValid() {
		t.Error("a pipe has no IP")
	}
}

func TestToResponse(t *testing.T) {
	reset := time.Unix(1609459200, 0)
	cases := []struct {
		name       string
		d          policy.Decision
		grpc       codes.Code
		httpStatus int
		headers    map[string]string
	}{
		{"allow with rate-limit headers", policy.Decision{Outcome: policy.Allow, App: "a", Endpoint: "e",
			Upstream: []policy.Header{{Key: "x-gatehouse-app", Value: "a"}}, Remove: []string{"x-app-token"},
			RateLimit: policy.LimitResult{Limit: 100, Remaining: 7, Reset: reset, Name: "app"}},
			codes.OK, 0, map[string]string{"x-ratelimit-limit": "100", "x-ratelimit-remaining": "7", "x-ratelimit-reset": "1609459200"}},
		{"rate limited", policy.Decision{Outcome: policy.Deny, Code: policy.RateLimited, RetryAfter: 59500 * time.Millisecond,
			RateLimit: policy.LimitResult{Limit: 100, Remaining: 0, Reset: reset, Name: "app"}},
			codes.ResourceExhausted, 429, map[string]string{"x-ratelimit-limit": "100", "x-ratelimit-remaining": "0", "x-ratelimit-reset": "1609459200", "retry-after": "60", "content-type": "application/json"}},
		{"reset rounded up to the second it has passed", policy.Decision{Outcome: policy.Allow,
			RateLimit: policy.LimitResult{Limit: 100, Remaining: 99, Reset: reset.Add(560 * time.Millisecond), Name: "burst"}},
			codes.OK, 0, map[string]string{"x-ratelimit-reset": "1609459201"}},
		{"credits: no reset", policy.Decision{Outcome: policy.Deny, Code: policy.NoCredits, RetryAfter: time.Minute,
			RateLimit: policy.LimitResult{Limit: 0, Remaining: 0, Name: "prepaid"}},
			codes.ResourceExhausted, 429, map[string]string{"x-ratelimit-limit": "0", "x-ratelimit-remaining": "0", "x-ratelimit-reset": "", "retry-after": "60"}},
		{"method not allowed", policy.Decision{Outcome: policy.Deny, Code: policy.InvalidMethod, Response: []policy.Header{{Key: "allow", Value: "GET"}}},
			codes.InvalidArgument, 405, map[string]string{"allow": "GET"}},
		{"license sdk denial is HTTP 200", policy.Decision{Outcome: policy.Deny, Code: policy.InvalidKey, Dialect: policy.License, SDKAuth: true},
			codes.Unauthenticated, 200, nil},
		{"unauthorized", policy.Decision{Outcome: policy.Deny, Code: policy.Unauthorized}, codes.Unauthenticated, 401, nil},
		{"service unavailable", policy.Decision{Outcome: policy.Deny, Code: policy.ServiceUnavailable}, codes.Unavailable, 503, nil},
		{"payload too large", policy.Decision{Outcome: policy.Deny, Code: policy.PayloadTooLarge}, codes.InvalidArgument, 413, nil},
		{"served by Gatehouse: its status, body and headers", policy.Decision{Outcome: policy.Served, App: "a",
			Direct: &policy.Direct{Status: 200, Body: []byte(`{"session_token":"t"}`), Headers: []policy.Header{{Key: "x-k", Value: "v"}}}},
			codes.PermissionDenied, 200, map[string]string{"content-type": "application/json", "cache-control": "no-store", "x-k": "v"}},
		{"served refusal keeps its own status", policy.Decision{Outcome: policy.Served,
			Direct: &policy.Direct{Status: 201, Body: []byte(`{}`)}}, codes.PermissionDenied, 201, map[string]string{"cache-control": "no-store"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := ToResponse(&tc.d, "id-1")
			if err := resp.ValidateAll(); err != nil {
				t.Fatalf("response fails Envoy's validation: %v", err)
			}
			if got := codes.Code(resp.GetStatus().GetCode()); got != tc.grpc {
				t.Errorf("gRPC %v, want %v", got, tc.grpc)
			}
			hs := resp.GetOkResponse().GetResponseHeadersToAdd()
			if den := resp.GetDeniedResponse(); den != nil {
				hs = den.GetHeaders()
				if int(den.GetStatus().GetCode()) != tc.httpStatus {
					t.Errorf("HTTP %d, want %d", den.GetStatus().GetCode(), tc.httpStatus)
				}
				if !json.Valid([]byte(den.GetBody())) {
					t.Errorf("body not JSON: %s", den.GetBody())
				}
			}
			for k, v := range tc.headers {
				if got, _ := headerOf(hs, k); got != v {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
			if resp.GetDynamicMetadata().GetFields()["decision_id"].GetStringValue() != "id-1" {
				t.Error("decision id missing from metadata")
			}
		})
	}
}

func headerOf(hs []*corev3.HeaderValueOption, k string) (string, bool) {
	for _, h := range hs {
		if h.GetHeader().GetKey() == k {
			return h.GetHeader().GetValue(), true
		}
	}
	return "", false
}

func demoServer(t testing.TB) *Server {
	snap, err := config.LoadBytes(config.Demo, config.DemoPath, config.Deps{Offline: true})
	if err != nil {
		t.Fatal(err)
	}
	return NewServer(func() *policy.Rules { return snap.Rules }, Options{})
}

// TestBadInput: hostile or broken requests get a documented denial, never a panic or
// a gRPC error.
func TestBadInput(t *testing.T) {
	s := demoServer(t)
	huge := strings.Repeat("A", 1<<20)
	cases := map[string]*authv3.CheckRequest{
		"nil attributes":   {},
		"empty http":       {Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{}}}},
		"non-UTF-8 token":  httpReq(&authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/v1/hello", Headers: map[string]string{"x-app-token": "demo-\xff\xfe"}}),
		"huge header":      httpReq(&authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/v1/hello", Headers: map[string]string{"x-app-token": huge, "x-other": huge}}),
		"huge path":        httpReq(&authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/" + huge, Headers: map[string]string{"x-app-token": "demo-app-token"}}),
		"nul in path":      httpReq(&authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/v1/hello\x00", Headers: map[string]string{"x-app-token": "demo-app-token"}}),
		"relative path":    httpReq(&authv3.AttributeContext_HttpRequest{Method: "GET", Path: "v1/hello", Headers: map[string]string{"x-app-token": "demo-app-token"}}),
		"malformed bearer": httpReq(&authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/v1/hello", Headers: map[string]string{"authorization": "Bearer"}}),
		"jwt as api key":   httpReq(&authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/v1/hello", Headers: map[string]string{"authorization": "Bearer x.y.z"}}),
		"broken json":      httpReq(&authv3.AttributeContext_HttpRequest{Method: "POST", Path: "/v1/echo", Body: "{\"message\": \"\xff", Headers: map[string]string{"x-app-token": "demo-app-token"}}),
		"deep json":        httpReq(&authv3.AttributeContext_HttpRequest{Method: "POST", Path: "/v1/echo", Body: strings.Repeat("[", 100000), Headers: map[string]string{"x-app-token": "demo-app-token"}}),
	}
	for name, req := range cases {
		t.Run(name, func(t *testing.T) {
			resp, err := s.Check(context.Background(), req)
			if err != nil {
				t.Fatalf("gRPC error %v", err)
			}
			den := resp.GetDeniedResponse()
			if den == nil {
				t.Fatalf("allowed: %v", resp)
			}
			if den.GetStatus().GetCode() >= 500 {
				t.Fatalf("5xx for bad input: %s", den.GetBody())
			}
			if !utf8.ValidString(den.GetBody()) || !json.Valid([]byte(den.GetBody())) {
				t.Fatalf("body not valid JSON: %q", den.GetBody())
			}
			if err := resp.ValidateAll(); err != nil {
				t.Fatalf("invalid response: %v", err)
			}
		})
	}
}

// TestHeaderHygiene: through the adapter, a client's identity headers in any spelling are
// removed from the upstream request, and a method-override header is refused with 405
// and the endpoint's Allow.
func TestHeaderHygiene(t *testing.T) {
	s := demoServer(t)
	resp, err := s.Check(context.Background(), httpReq(&authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/v1/hello", Headers: map[string]string{
		"x-app-token": "demo-app-token", "x_gatehouse_user": "admin", "X_Gatehouse_Device": "d1", "x-gatehouse_fail-open": "true"}}))
	if err != nil {
		t.Fatal(err)
	}
	ok := resp.GetOkResponse()
	if ok == nil {
		t.Fatalf("denied: %v", resp)
	}
	for _, h := range []string{"x_gatehouse_user", "x_gatehouse_device", "x-gatehouse_fail-open", "x-app-token"} {
		found := false
		for _, r := range ok.GetHeadersToRemove() {
			found = found || r == h
		}
		if !found {
			t.Errorf("%s not removed: %q", h, ok.GetHeadersToRemove())
		}
	}
	for _, h := range []string{"x-http-method-override", "x_http_method", "X-Method-Override"} {
		resp, err := s.Check(context.Background(), httpReq(&authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/v1/hello", Headers: map[string]string{
			"x-app-token": "demo-app-token", h: "GET"}}))
		if err != nil {
			t.Fatal(err)
		}
		den := resp.GetDeniedResponse()
		if den.GetStatus().GetCode() != 405 || !strings.Contains(den.GetBody(), `"INVALID_METHOD"`) {
			t.Fatalf("%s: %v", h, resp)
		}
		if v, _ := headerOf(den.GetHeaders(), "allow"); v != "GET" {
			t.Errorf("%s: Allow %q", h, v)
		}
	}
}
