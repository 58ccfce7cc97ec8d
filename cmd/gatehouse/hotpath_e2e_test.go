package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// hotpathConfig is the mobile shape on the memory store: an attested device with a
// throttle of burst 100 (one more request an hour after that) and a monthly quota.
const hotpathConfig = `
apps:
  - name: main
    app_token_sha256: ["{{T:main}}"]
    endpoints: ["*"]
    attestation:
      providers:
` + demoTokenProviderYAML + `    limits:
      - {name: per_device, key: [device], algorithm: gcra, requests: 1, per: 1h, burst: 100}
      - {name: monthly, key: [app], requests: 1000000000, period: month, time_zone: UTC}
endpoints:
  - {name: secure, path: /v1/secure, methods: [GET], attestation: require}
`

// TestAllowedDeviceResponseOverGRPC: what a client reads of an attested device's allowed
// request, over real gRPC, is exactly the response typed here by hand: status OK, the
// identity headers for the upstream, the credentials (and an identity header the client
// forged) removed, the device's rate-limit headers, and the dynamic metadata. Only the
// decision id and the reset, which come from a random source and the clock, are taken from
// the response, after their format is checked.
func TestAllowedDeviceResponseOverGRPC(t *testing.T) {
	srv := startServer(t, "--config", writeConfig(t, t.TempDir(), hotpathConfig))
	srv.waitReady(t)
	var out, errOut bytes.Buffer
	if err := demoToken([]string{"--device", "tablet-7"}, &out, &errOut); err != nil {
		t.Fatalf("demo-token: %v %s", err, errOut.String())
	}
	tok := strings.TrimSpace(out.String())
	hex32, digits := regexp.MustCompile(`^[0-9a-f]{32}$`), regexp.MustCompile(`^[1-9][0-9]{9,}$`)
	for i, tc := range []struct {
		forged    bool
		remaining string
		remove    []string
	}{
		{false, "99", []string{"x-attestation-token", "x-app-token"}},
		{true, "98", []string{"x-attestation-token", "x-gatehouse-user", "x-app-token"}},
	} {
		h := with(app("main"), "x-attestation-token", tok, "x-device-id", "tablet-7")
		if tc.forged {
			h["x-gatehouse-user"] = "admin"
		}
		resp, err := srv.check(t, request{path: "/v1/secure", headers: h})
		if err != nil || resp.GetOkResponse() == nil {
			t.Fatalf("request %d: %v %s", i, err, describe(resp))
		}
		id := resp.GetDynamicMetadata().GetFields()["decision_id"].GetStringValue()
		reset, _ := headerValue(resp.GetOkResponse().GetResponseHeadersToAdd(), "x-ratelimit-reset")
		if !hex32.MatchString(id) || !digits.MatchString(reset) {
			t.Fatalf("request %d: decision id %q, reset %q", i, id, reset)
		}
		opt := func(k, v string) *corev3.HeaderValueOption {
			return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: k, Value: v}, Append: wrapperspb.Bool(false)}
		}
		str := structpb.NewStringValue
		want := &authv3.CheckResponse{
			Status: &rpcstatus.Status{},
			HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
				Headers:         []*corev3.HeaderValueOption{opt("x-gatehouse-app", "main"), opt("x-gatehouse-endpoint", "secure"), opt("x-gatehouse-device", "tablet-7")},
				HeadersToRemove: tc.remove,
				ResponseHeadersToAdd: []*corev3.HeaderValueOption{opt("x-ratelimit-limit", "100"), opt("x-ratelimit-remaining", tc.remaining),
					opt("x-ratelimit-reset", reset)},
			}},
			DynamicMetadata: &structpb.Struct{Fields: map[string]*structpb.Value{"decision_id": str(id), "dialect": str("protectmyapi"),
				"decision": str("allow"), "app": str("main"), "endpoint": str("secure"), "device_id": str("tablet-7")}},
		}
		if !proto.Equal(resp, want) {
			t.Errorf("request %d:\n got %v\nwant %v", i, resp, want)
		}
	}
}
