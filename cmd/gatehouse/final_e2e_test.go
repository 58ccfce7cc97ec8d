package main

import (
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
)

// TestEndToEndIdempotencyTrailers: over real gRPC, after Check, a POST with an
// idempotency key whose body trailers end (HTTP/2, chunked) takes its in-flight mark at
// the trailers: a duplicate meanwhile is CONFLICT-409, never a second run upstream. The
// route buffers bodies for keyed requests only, so the trailers are the exchange's.
func TestEndToEndIdempotencyTrailers(t *testing.T) {
	srv := startServer(t, "--config", writeConfig(t, t.TempDir(), needsConfig()))
	tok := deviceTokens(t, 1)[0]
	x := order(tok, "k-1", `{"sku":"a"}`)
	cr, err := srv.check(t, x.req)
	if err != nil || cr.GetOkResponse() == nil {
		t.Fatalf("check: %v %s", err, describe(cr))
	}
	st := procStream(t, srv)
	kv := []string{":method", x.req.method, ":path", x.req.path}
	for k, v := range x.req.headers {
		kv = append(kv, k, v)
	}
	procSend(t, st, &extprocv3.ProcessingRequest{MetadataContext: forwarded(cr),
		Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: procHeaders(false, kv...)}})
	if r := procSend(t, st, &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{
		RequestBody: &extprocv3.HttpBody{Body: []byte(x.req.body), EndOfStream: false}}}); r.GetImmediateResponse() != nil {
		t.Fatalf("body answered: %v", r)
	}
	if r := procSend(t, st, trailersReq(false)); r.GetImmediateResponse() != nil {
		t.Fatalf("trailers answered: %v", r)
	}
	wantAnswer(t, runExchange(t, srv, order(tok, "k-1", `{"sku":"a"}`)), 409, "CONFLICT-409")
	st.CloseSend()
}
