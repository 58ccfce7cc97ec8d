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
// nothing more sent to Gatehouse); a POST with a key has both bodies buffered, and
// their trailers sent.
func TestEndToEndModePerExchange(t *testing.T) {
	srv := startServer(t, "--config", writeConfig(t, t.TempDir(), needsConfig()))
	tok := deviceTokens(t, 1)[0]
	skip := &procv3.ProcessingMode{RequestHeaderMode: procv3.ProcessingMode_SKIP, ResponseHeaderMode: procv3.ProcessingMode_SKIP,
		RequestTrailerMode: procv3.ProcessingMode_SKIP, ResponseTrailerMode: procv3.ProcessingMode_SKIP}
	both := &procv3.ProcessingMode{RequestHeaderMode: procv3.ProcessingMode_SKIP, ResponseHeaderMode: procv3.ProcessingMode_SEND,
		RequestBodyMode: procv3.ProcessingMode_BUFFERED, ResponseBodyMode: procv3.ProcessingMode_BUFFERED,
		RequestTrailerMode: procv3.ProcessingMode_SEND, ResponseTrailerMode: procv3.ProcessingMode_SEND} // a buffered body's trailers end it
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

// TestEndToEndReplayLabelled: an idempotent response replayed from its entry is counted
// under outcome "replayed", not "pass", and logged in the decision log as a replay; the
// first request, which reached the upstream, stays a pass; a conflict stays a replace.
func TestEndToEndReplayLabelled(t *testing.T) {
	srv := startServer(t, "--config", writeConfig(t, t.TempDir(), needsConfig()))
	tok := deviceTokens(t, 1)[0]
	if ir := runExchange(t, srv, order(tok, "k-1", `{"sku":"a"}`)); ir != nil {
		t.Fatalf("first request answered %d %s", ir.GetStatus().GetCode(), ir.GetBody())
	}
	ir := runExchange(t, srv, order(tok, "k-1", `{"sku":"a"}`))
	if ir == nil || ir.GetStatus().GetCode() != 201 || irHeader(ir, "idempotent-replayed") != "true" {
		t.Fatalf("repeat: %v, want the stored 201 replayed", ir)
	}
	wantAnswer(t, runExchange(t, srv, order(tok, "k-1", `{"sku":"b"}`)), 409, "CONFLICT-409")
	m := srv.body(t, "/metrics")
	for series, want := range map[string]float64{
		`gatehouse_response_exchanges_total{app="main",code="",endpoint="orders",outcome="pass"}`:            1,
		`gatehouse_response_exchanges_total{app="main",code="",endpoint="orders",outcome="replayed"}`:        1,
		`gatehouse_response_exchanges_total{app="main",code="CONFLICT",endpoint="orders",outcome="replace"}`: 1,
	} {
		if got := metricValue(t, m, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	var replays int
	for _, r := range srv.out.records("response") {
		if r["outcome"] == "replayed" {
			replays++
			if r["status"] != float64(201) || r["app"] != "main" || r["endpoint"] != "orders" || r["code"] != "" {
				t.Errorf("replay logged as %v", r)
			}
		}
	}
	if replays != 1 {
		t.Errorf("%d replays in the decision log, want 1", replays)
	}
}
