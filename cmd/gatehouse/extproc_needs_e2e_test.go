package main

import (
	"errors"
	"io"
	"strings"
	"testing"

	procv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
)

// needsConfig is idemConfig's orders endpoint (idempotency keys, the caller is the
// attested device) on the memory store, also open to GET.
func needsConfig() string {
	cfg := strings.Replace(idemConfig(""), `store: {type: redis, redis: {addrs: [""], timeout: 1s}}`, "", 1)
	return strings.Replace(cfg, "methods: [POST]\n    attestation: require", "methods: [GET, POST]\n    attestation: require", 1)
}

// TestEndToEndModePerExchange: over real gRPC, after Check, a GET on an idempotency
// route and a POST without a key are told to skip every later phase (no body buffered,
// nothing more sent to Gatehouse); a POST with a key has both bodies buffered.
func TestEndToEndModePerExchange(t *testing.T) {
	srv := startServer(t, "--config", writeConfig(t, t.TempDir(), needsConfig()))
	tok := deviceTokens(t, 1)[0]
	skip := &procv3.ProcessingMode{RequestHeaderMode: procv3.ProcessingMode_SKIP, ResponseHeaderMode: procv3.ProcessingMode_SKIP,
		RequestTrailerMode: procv3.ProcessingMode_SKIP, ResponseTrailerMode: procv3.ProcessingMode_SKIP}
	both := &procv3.ProcessingMode{RequestHeaderMode: procv3.ProcessingMode_SKIP, ResponseHeaderMode: procv3.ProcessingMode_SEND,
		RequestBodyMode: procv3.ProcessingMode_BUFFERED, ResponseBodyMode: procv3.ProcessingMode_BUFFERED,
		RequestTrailerMode: procv3.ProcessingMode_SKIP, ResponseTrailerMode: procv3.ProcessingMode_SKIP}
	dev := with(app("main"), "x-attestation-token", tok)
	for _, tc := range []struct {
		name string
		req  request
		want *procv3.ProcessingMode
	}{
		{"GET", request{method: "GET", path: "/v1/orders", headers: dev}, skip},
		{"GET with a key", request{method: "GET", path: "/v1/orders", headers: with(dev, "idempotency-key", "k-get")}, skip},
		{"POST without a key", request{method: "POST", path: "/v1/orders", headers: dev, body: `{"sku":"a"}`}, skip},
		{"POST with a key", request{method: "POST", path: "/v1/orders", headers: with(dev, "idempotency-key", "k-1"), body: `{"sku":"a"}`}, both},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cr, err := srv.check(t, tc.req)
			if err != nil || cr.GetOkResponse() == nil {
				t.Fatalf("check: %v %s", err, describe(cr))
			}
			st := procStream(t, srv)
			kv := []string{":method", tc.req.method, ":path", tc.req.path}
			for k, v := range tc.req.headers {
				kv = append(kv, k, v)
			}
			resp := procSend(t, st, &extprocv3.ProcessingRequest{MetadataContext: forwarded(cr),
				Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: procHeaders(tc.req.body == "", kv...)}})
			m := resp.GetModeOverride()
			if resp.GetRequestHeaders() == nil || !modesEqual(m, tc.want) {
				t.Fatalf("answer %v, want CONTINUE with mode %v", resp, tc.want)
			}
			st.CloseSend()
			if _, err := st.Recv(); !errors.Is(err, io.EOF) {
				t.Fatalf("stream end: %v", err)
			}
		})
	}
}

func modesEqual(a, b *procv3.ProcessingMode) bool {
	return a.GetRequestHeaderMode() == b.GetRequestHeaderMode() && a.GetResponseHeaderMode() == b.GetResponseHeaderMode() &&
		a.GetRequestBodyMode() == b.GetRequestBodyMode() && a.GetResponseBodyMode() == b.GetResponseBodyMode() &&
		a.GetRequestTrailerMode() == b.GetRequestTrailerMode() && a.GetResponseTrailerMode() == b.GetResponseTrailerMode()
}
