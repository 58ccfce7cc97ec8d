package extproc

import (
	"context"
	"errors"
	"io"
	"slices"
	"testing"

	procv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/gatehouse/gatehouse/policy"
)

// TestSkipWithoutFeatures: a stream whose route runs no feature (no metadata, an app
// or endpoint without a response block, a decision that was not an allow) is answered
// CONTINUE with a mode override that skips every later phase.
func TestSkipWithoutFeatures(t *testing.T) {
	rec := &recorder{doneCh: make(chan struct{})}
	rs := routesWith(Route{}, rec, needs{response: true})
	c := serve(t, NewServer(func() *Routes { return rs }, Options{}))
	for _, tc := range []struct {
		name string
		req  *extprocv3.ProcessingRequest
	}{
		{"no metadata", reqHeaders(nil, true, ":method", "GET", ":path", "/e")},
		{"other app", reqHeaders(metadata("b", "e", "allow"), true)},
		{"other endpoint", reqHeaders(metadata("a", "f", "allow"), true)},
		{"not an allow", reqHeaders(metadata("a", "e", "deny"), true)},
		{"no app", reqHeaders(metadata("", "e", "allow"), true)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := c.Process(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			resp := exchangeOne(t, s, tc.req)
			if resp.GetRequestHeaders() == nil || resp.GetRequestHeaders().GetResponse().GetStatus() != extprocv3.CommonResponse_CONTINUE {
				t.Fatalf("answer %v, want request headers CONTINUE", resp)
			}
			if !sameMode(resp.GetModeOverride(), wantSkipAll) {
				t.Fatalf("mode %v, want every later phase skipped", resp.GetModeOverride())
			}
			s.CloseSend()
			if _, err := s.Recv(); !errors.Is(err, io.EOF) {
				t.Fatalf("stream end: %v, want EOF", err)
			}
		})
	}
	if got := rec.seen(); len(got) != 0 {
		t.Fatalf("hooks ran on skipped streams: %v", got)
	}
}

// TestPhaseOrder: the order and shapes Envoy sends on a route that buffers both bodies:
// request headers, request body, response headers, response body; each answered with
// its own kind; request hooks on the whole request, response hooks on the whole
// response, done once at the end.
func TestPhaseOrder(t *testing.T) {
	rec := &recorder{doneCh: make(chan struct{})}
	rs := routesWith(Route{}, rec, needs{requestBody: true, responseBody: true})
	c := serve(t, NewServer(func() *Routes { return rs }, Options{}))
	s, err := c.Process(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	resp := exchangeOne(t, s, reqHeaders(metadata("a", "e", "allow"), false, ":method", "POST", ":path", "/e"))
	want := &procv3.ProcessingMode{
		RequestHeaderMode: procv3.ProcessingMode_SKIP, ResponseHeaderMode: procv3.ProcessingMode_SEND,
		RequestBodyMode: procv3.ProcessingMode_BUFFERED, ResponseBodyMode: procv3.ProcessingMode_BUFFERED,
		// Trailers are asked for with buffered bodies: a body they end comes with
		// end_of_stream false (TestLoginLockoutWithRequestTrailers).
		RequestTrailerMode: procv3.ProcessingMode_SEND, ResponseTrailerMode: procv3.ProcessingMode_SEND,
	}
	if resp.GetRequestHeaders() == nil || !sameMode(resp.GetModeOverride(), want) {
		t.Fatalf("request headers answer %v, want CONTINUE with mode %v", resp, want)
	}
	if got := rec.seen(); len(got) != 0 {
		t.Fatalf("hooks %v before the request body", got)
	}
	steps := []struct {
		req  *extprocv3.ProcessingRequest
		kind func(*extprocv3.ProcessingResponse) bool
	}{
		{reqBody("hel", false), func(r *extprocv3.ProcessingResponse) bool { return r.GetRequestBody() != nil }},
		{reqBody("lo", true), func(r *extprocv3.ProcessingResponse) bool { return r.GetRequestBody() != nil }},
		{respHeaders(false, ":status", "201", "content-type", "application/json"), func(r *extprocv3.ProcessingResponse) bool { return r.GetResponseHeaders() != nil }},
		{respBody("wor", false), func(r *extprocv3.ProcessingResponse) bool { return r.GetResponseBody() != nil }},
		{respBody("ld", true), func(r *extprocv3.ProcessingResponse) bool { return r.GetResponseBody() != nil }},
	}
	for i, st := range steps {
		if r := exchangeOne(t, s, st.req); !st.kind(r) {
			t.Fatalf("step %d: answer %v of the wrong kind", i, r)
		}
	}
	s.CloseSend()
	if _, err := s.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("stream end: %v", err)
	}
	<-rec.doneCh
	if got, want := rec.seen(), []string{"request", "response", "done"}; !slices.Equal(got, want) {
		t.Fatalf("hooks %v, want %v", got, want)
	}
	if rec.reqBody != "hello" || rec.respBody != "world" || rec.status != 201 {
		t.Fatalf("hooks saw request %q, response %d %q", rec.reqBody, rec.status, rec.respBody)
	}
}

// TestEndOfStreamFlags: a request without a body (end_of_stream on its headers) runs
// the request hooks at once and asks for no request body; a response without one runs
// the response hooks on its headers.
func TestEndOfStreamFlags(t *testing.T) {
	rec := &recorder{doneCh: make(chan struct{})}
	rs := routesWith(Route{}, rec, needs{requestBody: true, responseBody: true})
	c := serve(t, NewServer(func() *Routes { return rs }, Options{}))
	s, err := c.Process(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	resp := exchangeOne(t, s, reqHeaders(metadata("a", "e", "allow"), true, ":method", "GET", ":path", "/e"))
	if m := resp.GetModeOverride(); m.GetRequestBodyMode() != procv3.ProcessingMode_NONE || m.GetResponseBodyMode() != procv3.ProcessingMode_BUFFERED {
		t.Fatalf("mode %v, want no request body and a buffered response body", m)
	}
	if got := rec.seen(); !slices.Equal(got, []string{"request"}) {
		t.Fatalf("hooks %v after a bodiless request, want request", got)
	}
	if r := exchangeOne(t, s, respHeaders(true, ":status", "204")); r.GetResponseHeaders() == nil {
		t.Fatalf("answer %v, want response headers", r)
	}
	if got := rec.seen(); !slices.Equal(got, []string{"request", "response"}) || rec.status != 204 {
		t.Fatalf("hooks %v status %d after a bodiless response", got, rec.status)
	}
	s.CloseSend()
	<-rec.doneCh
}

// TestCancelledMidway: a stream Envoy abandons after the request (the client went
// away) still runs the done hooks, once.
func TestCancelledMidway(t *testing.T) {
	rec := &recorder{doneCh: make(chan struct{})}
	rs := routesWith(Route{}, rec, needs{requestBody: true, responseBody: true})
	c := serve(t, NewServer(func() *Routes { return rs }, Options{}))
	ctx, cancel := context.WithCancel(t.Context())
	s, err := c.Process(ctx)
	if err != nil {
		t.Fatal(err)
	}
	exchangeOne(t, s, reqHeaders(metadata("a", "e", "allow"), false, ":method", "POST", ":path", "/e"))
	exchangeOne(t, s, reqBody("x", true))
	cancel()
	<-rec.doneCh
	if got := rec.seen(); !slices.Equal(got, []string{"request", "done"}) {
		t.Fatalf("hooks %v, want request then done", got)
	}
}

// TestRequestReplyEnds: a request hook's reply becomes an ImmediateResponse and the
// exchange ends; done still runs.
func TestRequestReplyEnds(t *testing.T) {
	rec := &recorder{doneCh: make(chan struct{}), onRequest: &reply{status: 409, body: []byte(`{"x":1}`), code: "CONFLICT",
		headers: []policy.Header{{Key: "content-type", Value: "application/json"}}}}
	rs := routesWith(Route{}, rec, needs{})
	c := serve(t, NewServer(func() *Routes { return rs }, Options{}))
	s, err := c.Process(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	resp := exchangeOne(t, s, reqHeaders(metadata("a", "e", "allow"), true, ":method", "POST", ":path", "/e"))
	ir := resp.GetImmediateResponse()
	if ir == nil || ir.GetStatus().GetCode() != 409 || string(ir.GetBody()) != `{"x":1}` {
		t.Fatalf("answer %v, want the reply as an immediate response", resp)
	}
	if _, err := s.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("stream end after an immediate response: %v", err)
	}
	<-rec.doneCh
}

// TestRequestHeadersOnce: a second request-headers message on one stream (never sent by
// Envoy) does not identify the exchange again nor run the request hooks twice.
func TestRequestHeadersOnce(t *testing.T) {
	rec := &recorder{doneCh: make(chan struct{})}
	rs := routesWith(Route{}, rec, needs{response: true})
	c := serve(t, NewServer(func() *Routes { return rs }, Options{}))
	s, err := c.Process(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	exchangeOne(t, s, reqHeaders(metadata("a", "e", "allow"), true, ":method", "GET", ":path", "/e"))
	resp := exchangeOne(t, s, reqHeaders(metadata("a", "e", "allow"), true, ":method", "GET", ":path", "/e"))
	if resp.GetRequestHeaders() == nil || resp.GetModeOverride() != nil {
		t.Fatalf("second request headers: %v, want a plain CONTINUE", resp)
	}
	s.CloseSend()
	<-rec.doneCh
	if got := rec.seen(); !slices.Equal(got, []string{"request", "done"}) {
		t.Fatalf("hooks %v, want request once then done", got)
	}
}
