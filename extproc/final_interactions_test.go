package extproc

import (
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/gatehouse/gatehouse/signature"
	"testing"
	"time"
)

// TestIdempotencyWithTrailers: on a route whose only feature is idempotency, the phases
// are the exchange's (a request carrying a key has its bodies buffered), so trailers
// that end a buffered body must run the hooks as the last body part would. Else a
// client that ends its body with trailers (HTTP/2, chunked HTTP/1.1) gets no in-flight
// mark: its duplicate reaches the upstream while the first runs, and the response is
// never kept for a replay.
func TestIdempotencyWithTrailers(t *testing.T) {
	e := newPhaseEnv(t, idemRoute())
	s, err := e.c.Process(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	exchangeOne(t, s, reqHeaders(identityMD("c1", ""), false, ":method", "POST", ":path", "/v1/orders", "idempotency-key", "k-1"))
	if r := exchangeOne(t, s, reqBody(`{"sku":"a"}`, false)); r.GetImmediateResponse() != nil {
		t.Fatalf("body answered %v", r)
	}
	if r := exchangeOne(t, s, reqTrailers()); r.GetImmediateResponse() != nil {
		t.Fatalf("request trailers answered %v", r)
	}
	// The first is in flight: its duplicate is a conflict, never a second run.
	wantGeneric(t, e.run(order("k-1", `{"sku":"a"}`)), 409, "CONFLICT-409")
	exchangeOne(t, s, respHeaders(false, ":status", "201", "content-type", "application/json"))
	exchangeOne(t, s, respBody(`{"id":7}`, false))
	exchangeOne(t, s, respTrailers())
	s.CloseSend()
	<-e.ended
	e.advance(time.Second)
	ir := e.run(order("k-1", `{"sku":"a"}`))
	if ir == nil || ir.GetStatus().GetCode() != 201 || string(ir.GetBody()) != `{"id":7}` {
		t.Fatalf("repeat answered %v, want the kept 201 {\"id\":7} replayed", ir)
	}
}

// TestStreamStartingAfterRequestHeaders: a filter that sends neither header phase
// (both header modes SKIP, a body mode BUFFERED) starts the stream at a body or at
// trailers. On a signed route that stream fails closed (signed 503) like one that
// starts at the response headers, never passing a response unsigned.
func TestStreamStartingAfterRequestHeaders(t *testing.T) {
	rs, _ := signedRoutes(t, Route{})
	c := serve(t, NewServer(func() *Routes { return rs }, Options{Now: signedAt}))
	for name, first := range map[string]*extprocv3.ProcessingRequest{
		"request body": reqBody(`{"a":1}`, true), "request trailers": reqTrailers(),
		"response body": respBody(`{"a":1}`, true), "response trailers": respTrailers(),
	} {
		s, err := c.Process(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		first.MetadataContext = metadata("a", "e", "allow")
		ir := exchangeOne(t, s, first).GetImmediateResponse()
		if ir == nil || ir.GetStatus().GetCode() != 503 {
			t.Fatalf("stream starting at the %s answered %v, want a 503 immediate response", name, ir)
		}
		wantSigned(t, ir.GetHeaders(), "", 503, string(ir.GetBody()))
	}
}

// TestResponseBeforeTheRequestBody: a filter that does not honour the mode override
// (allow_mode_override false, or allowed_override_modes without BUFFERED) sends the
// response headers next, though the exchange asked for the request body. The request
// hooks (the idempotency mark, the login lockout) never ran: the response fails closed,
// never passes as if they had, and a duplicate is not let through meanwhile.
func TestResponseBeforeTheRequestBody(t *testing.T) {
	e := newPhaseEnv(t, idemRoute())
	s, err := e.c.Process(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	exchangeOne(t, s, reqHeaders(identityMD("c1", ""), false, ":method", "POST", ":path", "/v1/orders", "idempotency-key", "k-1"))
	wantGeneric(t, exchangeOne(t, s, respHeaders(false, ":status", "201")).GetImmediateResponse(), 503, "SERVER-500")
	s.CloseSend()
	<-e.ended
	// No mark was left behind: the retry, with its body, proceeds.
	if ir := e.run(order("k-1", `{"sku":"a"}`)); ir != nil {
		t.Fatalf("retry answered %d %s", ir.GetStatus().GetCode(), ir.GetBody())
	}
}

// TestResponseBodyBeforeTheRequestBody: the same with the response headers skipped too:
// the response body, or its trailers, is the first answer after the request headers.
func TestResponseBodyBeforeTheRequestBody(t *testing.T) {
	e := newPhaseEnv(t, idemRoute())
	for name, next := range map[string]*extprocv3.ProcessingRequest{
		"response body": respBody(`{"id":7}`, true), "response trailers": respTrailers(),
	} {
		s, err := e.c.Process(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		exchangeOne(t, s, reqHeaders(identityMD("c1", ""), false, ":method", "POST", ":path", "/v1/orders", "idempotency-key", "k-1"))
		ir := exchangeOne(t, s, next).GetImmediateResponse()
		if ir == nil || ir.GetStatus().GetCode() != 503 {
			t.Fatalf("%s before the request body: %v, want a 503 immediate response", name, ir)
		}
		s.CloseSend()
		<-e.ended
	}
}

// TestReplayKeepsNoStaleNonce: on a signed idempotency route whose replay_headers name
// the nonce echo header, an upstream that echoed the first request's nonce has it
// stored. A repeat without a valid nonce must not carry that stale echo beside a
// signature over no nonce (the pass-through response drops it too); a repeat with a
// nonce gets its own echo.
func TestReplayKeepsNoStaleNonce(t *testing.T) {
	sg, err := signature.New([]byte(testSecret), signature.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	r := idemRoute()
	r.Sign = sg
	r.Idempotency.Headers = append(r.Idempotency.Headers, "x-nonce")
	e := newPhaseEnv(t, r)
	e.advance(signedAt().Sub(t0)) // the time wantSigned's canonical strings hold
	first := order("k-1", `{"sku":"a"}`)
	first.headers = append(first.headers, "x-nonce", "nonce-0123456789abcdef")
	first.respHeaders = append(first.respHeaders, "x-nonce", "nonce-0123456789abcdef")
	if ir := e.run(first); ir != nil {
		t.Fatalf("first request answered %d %s", ir.GetStatus().GetCode(), ir.GetBody())
	}
	ir := e.run(order("k-1", `{"sku":"a"}`))
	if ir == nil || ir.GetStatus().GetCode() != 201 {
		t.Fatalf("repeat answered %v, want the stored 201", ir)
	}
	wantSigned(t, ir.GetHeaders(), "", 201, string(ir.GetBody()))
	again := order("k-1", `{"sku":"a"}`)
	again.headers = append(again.headers, "x-nonce", "nonce-fedcba9876543210")
	ir = e.run(again)
	if ir == nil || ir.GetStatus().GetCode() != 201 {
		t.Fatalf("repeat with a nonce answered %v, want the stored 201", ir)
	}
	wantSigned(t, ir.GetHeaders(), "nonce-fedcba9876543210", 201, string(ir.GetBody()))
}
