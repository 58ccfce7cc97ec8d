package extproc

import (
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	procv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/policy/idempotency"
	"github.com/gatehouse/gatehouse/policy/login"
	"github.com/gatehouse/gatehouse/ratelimit"
	"github.com/gatehouse/gatehouse/ratelimit/memstore"
	"github.com/gatehouse/gatehouse/ratelimit/state"
	"github.com/gatehouse/gatehouse/signature"
	"google.golang.org/protobuf/types/known/structpb"
)

// Processing modes by hand, as Envoy reads them: what the rest of the stream sends. A
// buffered body asks for its trailers too: a body that trailers end is whole only then.
var (
	modeSkip = &procv3.ProcessingMode{ // nothing more
		RequestHeaderMode: procv3.ProcessingMode_SKIP, ResponseHeaderMode: procv3.ProcessingMode_SKIP,
		RequestTrailerMode: procv3.ProcessingMode_SKIP, ResponseTrailerMode: procv3.ProcessingMode_SKIP,
	}
	modeStatus = &procv3.ProcessingMode{ // the response headers only
		RequestHeaderMode: procv3.ProcessingMode_SKIP, ResponseHeaderMode: procv3.ProcessingMode_SEND,
		RequestTrailerMode: procv3.ProcessingMode_SKIP, ResponseTrailerMode: procv3.ProcessingMode_SKIP,
	}
	modeRequestBodyStatus = &procv3.ProcessingMode{ // the request body, then the response headers
		RequestHeaderMode: procv3.ProcessingMode_SKIP, ResponseHeaderMode: procv3.ProcessingMode_SEND,
		RequestBodyMode:    procv3.ProcessingMode_BUFFERED,
		RequestTrailerMode: procv3.ProcessingMode_SEND, ResponseTrailerMode: procv3.ProcessingMode_SKIP,
	}
	modeResponse = &procv3.ProcessingMode{ // the whole response, no request body
		RequestHeaderMode: procv3.ProcessingMode_SKIP, ResponseHeaderMode: procv3.ProcessingMode_SEND,
		ResponseBodyMode:   procv3.ProcessingMode_BUFFERED,
		RequestTrailerMode: procv3.ProcessingMode_SKIP, ResponseTrailerMode: procv3.ProcessingMode_SEND,
	}
	modeBoth = &procv3.ProcessingMode{ // both bodies
		RequestHeaderMode: procv3.ProcessingMode_SKIP, ResponseHeaderMode: procv3.ProcessingMode_SEND,
		RequestBodyMode: procv3.ProcessingMode_BUFFERED, ResponseBodyMode: procv3.ProcessingMode_BUFFERED,
		RequestTrailerMode: procv3.ProcessingMode_SEND, ResponseTrailerMode: procv3.ProcessingMode_SEND,
	}
)

// modeRoutes are routes of app "a" with one feature set per endpoint, on a memory store.
func modeRoutes(t *testing.T) *Routes {
	t.Helper()
	st, err := memstore.Open(state.MemoryConfig{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	lock, err := ratelimit.Compile(ratelimit.CompileInput{Lockout: ratelimit.LockoutConfig{MaxFailures: 3, Window: time.Minute, LockFor: time.Minute}}, st)
	if err != nil {
		t.Fatal(err)
	}
	sg, err := signature.New([]byte(testSecret), signature.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	idem := func() *idempotency.Rule { r := idemRoute(); return r.Idempotency }
	required := idem()
	required.Required = true
	rs := NewRoutes(policy.Generic)
	for _, r := range []*Route{
		{Endpoint: "idem", Idempotency: idem(), Records: st},
		{Endpoint: "idem-required", Idempotency: required, Records: st},
		{Endpoint: "idem-errors", Idempotency: idem(), Records: st, UpstreamErrors: true},
		{Endpoint: "idem-signed", Idempotency: idem(), Records: st, Sign: sg},
		{Endpoint: "login-body", Login: &login.Settings{Field: []string{"email"}, FailStatuses: []int{401}, MaxBody: 1024}, Lockout: lock},
		{Endpoint: "login-header", Login: &login.Settings{Header: "x-account", FailStatuses: []int{401}, MaxBody: 1024}, Lockout: lock},
		{Endpoint: "errors", UpstreamErrors: true},
	} {
		r.App, r.Dialect = "a", policy.Generic
		rs.Add(r)
	}
	return rs
}

// TestModePerExchange: after the request headers Gatehouse asks Envoy for the phases
// this exchange's features act on, not all those of its route: a request no feature
// acts on is told to skip every later phase, bodies are buffered only where a feature
// reads them.
func TestModePerExchange(t *testing.T) {
	rs := modeRoutes(t)
	c := serve(t, NewServer(func() *Routes { return rs }, Options{}))
	key := []string{"idempotency-key", "k-1"}
	for _, tc := range []struct {
		name, endpoint, method string
		headers                []string
		noBody                 bool
		want                   *procv3.ProcessingMode
	}{
		{"idempotency GET", "idem", "GET", nil, true, modeSkip},
		{"idempotency GET with a key", "idem", "GET", key, true, modeSkip},
		{"idempotency DELETE with a key and a body", "idem", "DELETE", key, false, modeSkip},
		{"idempotency POST without a key", "idem", "POST", nil, false, modeSkip},
		{"idempotency POST with a key", "idem", "POST", key, false, modeBoth},
		{"idempotency PATCH with a key", "idem", "PATCH", key, false, modeBoth},
		{"idempotency POST with an empty key", "idem", "POST", []string{"idempotency-key", ""}, false, modeBoth},
		{"idempotency POST with a key, no body", "idem", "POST", key, true, modeResponse},
		{"idempotency and errors, GET", "idem-errors", "GET", nil, true, modeStatus},
		{"idempotency and errors, POST with a key", "idem-errors", "POST", key, false, modeBoth},
		{"idempotency and signature, GET", "idem-signed", "GET", nil, true, modeResponse},
		{"idempotency and signature, POST without a key", "idem-signed", "POST", nil, false, modeResponse},
		{"login from the body", "login-body", "POST", nil, false, modeRequestBodyStatus},
		{"login from a header", "login-header", "POST", []string{"x-account", "a@example.com"}, false, modeStatus},
		{"upstream errors only", "errors", "POST", nil, false, modeStatus},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := c.Process(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			defer s.CloseSend()
			md := metadataFor(tc.endpoint)
			kv := append([]string{":method", tc.method, ":path", "/v1/x"}, tc.headers...)
			resp := exchangeOne(t, s, reqHeaders(md, tc.noBody, kv...))
			if resp.GetRequestHeaders() == nil || resp.GetRequestHeaders().GetResponse().GetStatus() != extprocv3.CommonResponse_CONTINUE {
				t.Fatalf("answer %v, want request headers CONTINUE", resp)
			}
			if !sameMode(resp.GetModeOverride(), tc.want) {
				t.Fatalf("mode %v, want %v", resp.GetModeOverride(), tc.want)
			}
		})
	}
}

// TestModeRequiredKey: on a route that requires a key, a POST without one is refused
// on its headers (nothing buffered first); a GET is told to skip.
func TestModeRequiredKey(t *testing.T) {
	rs := modeRoutes(t)
	c := serve(t, NewServer(func() *Routes { return rs }, Options{}))
	s, err := c.Process(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	resp := exchangeOne(t, s, reqHeaders(metadataFor("idem-required"), false, ":method", "POST", ":path", "/v1/x"))
	wantGeneric(t, resp.GetImmediateResponse(), 400, "BADREQUEST-400") // 003_*.txt: the generic missing-field refusal
	s, err = c.Process(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer s.CloseSend()
	resp = exchangeOne(t, s, reqHeaders(metadataFor("idem-required"), true, ":method", "GET", ":path", "/v1/x"))
	if !sameMode(resp.GetModeOverride(), modeSkip) {
		t.Fatalf("GET mode %v, want every later phase skipped", resp.GetModeOverride())
	}
}

// metadataFor is Check's forwarded metadata for an allowed request of caller "c1" to
// endpoint of app "a".
func metadataFor(endpoint string) *corev3.Metadata {
	s, _ := structpb.NewStruct(map[string]any{"app": "a", "endpoint": endpoint, "decision": "allow", "decision_id": "d1",
		"caller": "c1", "client": "192.0.2.1"})
	return &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{MetadataNamespace: s}}
}
