package extauthz

import (
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
)

// TestPartialBodyNotHiddenByClientCopy: a client may send its own
// x-envoy-auth-partial-body. Merged with Envoy's (a repeated header, or the raw
// header_map list), "false,true" must still read as truncated: only a value that is
// "false" in every copy says the body is whole. Expectations typed by hand.
func TestPartialBodyNotHiddenByClientCopy(t *testing.T) {
	plain := []struct {
		value string
		want  bool
	}{
		{"true", true},
		{"false", false},
		{"false,true", true},
		{"true,false", true},
		{"false, true", true},
		{"false,false", false},
		{"TRUE", true},
		{"", true},
	}
	for _, tc := range plain {
		req := httpReq(&authv3.AttributeContext_HttpRequest{Path: "/", Body: "{}",
			Headers: map[string]string{"x-envoy-auth-partial-body": tc.value}})
		if in := ToInput(req); in.BodyPartial != tc.want {
			t.Errorf("headers %q: BodyPartial %v, want %v", tc.value, in.BodyPartial, tc.want)
		}
	}
	raw := httpReq(&authv3.AttributeContext_HttpRequest{Path: "/", Body: "{}",
		HeaderMap: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
			{Key: "X-Envoy-Auth-Partial-Body", Value: "false"},           // the client's
			{Key: "x-envoy-auth-partial-body", RawValue: []byte("true")}, // Envoy's
		}}})
	if in := ToInput(raw); !in.BodyPartial {
		t.Errorf("header_map false then true: BodyPartial false, want true")
	}
	if in := ToInput(httpReq(&authv3.AttributeContext_HttpRequest{Path: "/", Body: "{}"})); in.BodyPartial {
		t.Errorf("no header: BodyPartial true, want false")
	}
}
