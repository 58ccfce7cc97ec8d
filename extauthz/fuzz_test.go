package extauthz

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/gatehouse/gatehouse/config"
	"github.com/gatehouse/gatehouse/policy"
	"google.golang.org/grpc/codes"
)

// pmaDenial is a ProtectMyAPI denial body (seed 000): the demo's only dialect.
type pmaDenial struct {
	Success *bool `json:"success"`
	Error   *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

var codeSpelling = regexp.MustCompile(`^[A-Z][A-Z_]*[A-Z]$`)

// fuzzHeaders reads "name: value" lines; Envoy hands lower-case names over.
func fuzzHeaders(s string) map[string]string {
	h := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		k, v, _ := strings.Cut(line, ":")
		h[strings.ToLower(strings.TrimSpace(k))] = strings.TrimPrefix(v, " ")
	}
	return h
}

// FuzzCheck feeds arbitrary requests through conversion, pipeline and response building,
// as a plain header map or as Envoy's raw header list. Whatever the input: no gRPC error,
// exactly one verdict, a response that passes the proto's own validation, every denial a
// well-formed ProtectMyAPI body with a non-OK status and an HTTP error status, and no
// allow without one of the demo app's credentials somewhere in the request.
func FuzzCheck(f *testing.F) {
	f.Add("GET", "/v1/hello", "x-app-token: demo-app-token", []byte(nil), "", "10.0.0.1", false)
	f.Add("POST", "/v1/echo?x", "x-app-token: demo-app-token\ncontent-type: application/json", []byte(`{"message":"hi"}`), "echo", "", false)
	f.Add("POST", "/v1/echo", "x-app-token: demo-app-token\nx-envoy-auth-partial-body: true", []byte(`{"message":"h`), "", "", true)
	f.Add("GET", "/v1/../hello", "authorization: Bearer a.b.c", []byte(nil), "", "::1", false)
	f.Add("DELETE", "/v1/hello", "x-api-key: demo-api-key,x", []byte("[]"), "nope", "", true)
	f.Add("GET", "/v1/limited", "authorization: Bearer demo-api-key\nx-forwarded-for: 1.2.3.4, 5.6.7.8", []byte(nil), "", "192.0.2.1", false)
	f.Add("GET", "/v1/secure", "x-app-token: demo-app-token\nx-attestation-token: e30.e30.", []byte(nil), "secure", "", false)
	f.Add("GET", "/v1/hello", "x-app-token: demo-app-token\nx-app-token: demo-app-token", []byte(nil), "", "", true)
	f.Add("get", "/V1/HELLO/", "X-App-Token:  demo-app-token ", []byte(nil), "hello", "not-an-ip", false)
	f.Add("GET", "/v1/maintenance", "x-app-token: demo-app-token", []byte(nil), "", "", false)
	s := NewServer(demoRules(f), Options{Now: func() time.Time { return time.Unix(1_750_000_000, 0) }})
	f.Fuzz(func(t *testing.T, method, path, headers string, body []byte, slug, source string, raw bool) {
		h := &authv3.AttributeContext_HttpRequest{Method: method, Path: path, RawBody: body, Size: int64(len(body))}
		hs := fuzzHeaders(headers)
		if raw {
			h.HeaderMap = &corev3.HeaderMap{}
			for _, line := range strings.Split(headers, "\n") {
				k, v, _ := strings.Cut(line, ":")
				h.HeaderMap.Headers = append(h.HeaderMap.Headers, &corev3.HeaderValue{Key: k, RawValue: []byte(v)})
			}
		} else {
			h.Headers = hs
		}
		req := httpReq(h)
		req.Attributes.Source = &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: source}}}}
		if slug != "" {
			req.Attributes.ContextExtensions = map[string]string{"endpoint": slug}
		}
		if in := ToInput(req); strings.ContainsAny(in.Path, "?#") || in.Method != strings.ToUpper(in.Method) || in.Headers == nil {
			t.Fatalf("conversion: path %q method %q", in.Path, in.Method)
		}
		resp, err := s.Check(context.Background(), req)
		if err != nil {
			t.Fatalf("gRPC error %v", err)
		}
		if err := resp.ValidateAll(); err != nil {
			t.Fatalf("invalid response: %v", err)
		}
		ok, den := resp.GetOkResponse(), resp.GetDeniedResponse()
		switch {
		case (ok == nil) == (den == nil):
			t.Fatal("not exactly one of allowed and denied")
		case ok != nil:
			if codes.Code(resp.GetStatus().GetCode()) != codes.OK {
				t.Fatalf("allowed with status %v", resp.GetStatus())
			}
			if !strings.Contains(headers, "demo-app-token") && !strings.Contains(headers, "demo-api-key") {
				t.Fatalf("allowed without a credential: %q", headers)
			}
		default:
			checkDenial(t, resp, den)
		}
	})
}

// checkDenial holds every denial to the seed's shape: a non-OK gRPC status, an HTTP error
// status, JSON content type, and a ProtectMyAPI body with success false and a code.
func checkDenial(t *testing.T, resp *authv3.CheckResponse, den *authv3.DeniedHttpResponse) {
	t.Helper()
	if codes.Code(resp.GetStatus().GetCode()) == codes.OK {
		t.Fatal("denied with an OK status")
	}
	if st := den.GetStatus().GetCode(); st < 400 || st > 599 {
		t.Fatalf("denied with HTTP status %d", st)
	}
	ct := false
	for _, hv := range den.GetHeaders() {
		ct = ct || (strings.EqualFold(hv.GetHeader().GetKey(), "content-type") && hv.GetHeader().GetValue() == "application/json")
	}
	if !ct {
		t.Fatal("denial without content-type: application/json")
	}
	var b pmaDenial
	dec := json.NewDecoder(strings.NewReader(den.GetBody()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil || dec.More() {
		t.Fatalf("body is not a ProtectMyAPI denial (%v): %q", err, den.GetBody())
	}
	if b.Success == nil || *b.Success || b.Error == nil || !codeSpelling.MatchString(b.Error.Code) || b.Error.Message == "" {
		t.Fatalf("body is not a ProtectMyAPI denial: %q", den.GetBody())
	}
}

func demoRules(t testing.TB) func() *policy.Rules {
	snap, err := config.LoadBytes(config.Demo, config.DemoPath, config.Deps{Offline: true})
	if err != nil {
		t.Fatal(err)
	}
	return func() *policy.Rules { return snap.Rules }
}
