package extproc

import (
	"testing"

	procv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/gatehouse/gatehouse/policy/login"
)

// In BUFFERED mode Envoy sends a body followed by trailers with end_of_stream false
// (the trailers end the stream). These tests drive that shape.

func reqTrailers() *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestTrailers{
		RequestTrailers: &extprocv3.HttpTrailers{}}}
}

func respTrailers() *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseTrailers{
		ResponseTrailers: &extprocv3.HttpTrailers{}}}
}

// TestTrailersAskedWithBufferedBodies: a route that buffers a body asks Envoy for the
// trailers of that direction too, so that a body ended by trailers is seen whole; a
// route that buffers nothing skips them.
func TestTrailersAskedWithBufferedBodies(t *testing.T) {
	for _, tc := range []struct {
		n             needs
		reqTr, respTr procv3.ProcessingMode_HeaderSendMode
	}{
		{needs{}, procv3.ProcessingMode_SKIP, procv3.ProcessingMode_SKIP},
		{needs{response: true}, procv3.ProcessingMode_SKIP, procv3.ProcessingMode_SKIP},
		{needs{requestBody: true}, procv3.ProcessingMode_SEND, procv3.ProcessingMode_SKIP},
		{needs{responseBody: true}, procv3.ProcessingMode_SKIP, procv3.ProcessingMode_SEND},
	} {
		m := modeFor(tc.n, false)
		if m.GetRequestTrailerMode() != tc.reqTr || m.GetResponseTrailerMode() != tc.respTr {
			t.Errorf("needs %+v: trailers %v/%v, want %v/%v", tc.n, m.GetRequestTrailerMode(), m.GetResponseTrailerMode(), tc.reqTr, tc.respTr)
		}
	}
	// A request without a body has no trailers to wait for.
	if m := modeFor(needs{requestBody: true}, true); m.GetRequestTrailerMode() != procv3.ProcessingMode_SKIP {
		t.Errorf("request without a body: request trailers %v, want SKIP", m.GetRequestTrailerMode())
	}
}

// TestLoginLockoutWithRequestTrailers: an attacker who ends a login body with trailers
// (HTTP/2, or chunked HTTP/1.1) must still be refused on a locked account. Before the
// trailers were read, the request hooks never ran and the attempt reached the upstream.
func TestLoginLockoutWithRequestTrailers(t *testing.T) {
	e := loginEnv(t, &login.Settings{Field: []string{"email"}, FailStatuses: []int{401}, MaxBody: 1024})
	for range 3 {
		if ir := e.run(attempt("victim@example.com", 401)); ir != nil {
			t.Fatalf("refused: %s", ir.GetBody())
		}
	}
	s, err := e.c.Process(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		s.CloseSend()
		<-e.ended
	}()
	exchangeOne(t, s, reqHeaders(identityMD("", "203.0.113.9"), false, ":method", "POST", ":path", "/v1/login"))
	if ir := exchangeOne(t, s, reqBody(`{"email":"victim@example.com","password":"x"}`, false)).GetImmediateResponse(); ir != nil {
		t.Fatalf("body answered early: %s", ir.GetBody())
	}
	wantProtekt(t, exchangeOne(t, s, reqTrailers()).GetImmediateResponse(), 423, "account_locked")
}

// TestSignedResponseWithTrailers: a signed route whose upstream ends its body with
// trailers cannot get the signature onto headers Envoy has let go; the response fails
// closed (INVALID_RESPONSE, signed) rather than reaching the client unsigned.
func TestSignedResponseWithTrailers(t *testing.T) {
	rs, _ := signedRoutes(t, Route{})
	c := serve(t, NewServer(func() *Routes { return rs }, Options{Now: signedAt}))
	s, err := c.Process(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	exchangeOne(t, s, reqHeaders(metadata("a", "e", "allow"), true, ":method", "GET", ":path", "/v1/x", "x-nonce", "nonce-0123456789abcdef"))
	exchangeOne(t, s, respHeaders(false, ":status", "200"))
	if r := exchangeOne(t, s, respBody(`{"a":1}`, false)); r.GetImmediateResponse() != nil {
		t.Fatalf("body answered early: %v", r)
	}
	ir := exchangeOne(t, s, respTrailers()).GetImmediateResponse()
	if ir == nil || ir.GetStatus().GetCode() != 502 {
		t.Fatalf("trailers answered %v, want a 502 immediate response", ir)
	}
	wantSigned(t, ir.GetHeaders(), "nonce-0123456789abcdef", 502, string(ir.GetBody()))
}

// TestRequestTrailersWithoutBody: a request whose headers say a body follows but that
// sends only trailers (HTTP/2 allows it) still runs the request hooks: the login route
// reads no account from the empty body and refuses it before the upstream.
func TestRequestTrailersWithoutBody(t *testing.T) {
	e := loginEnv(t, &login.Settings{Field: []string{"email"}, FailStatuses: []int{401}, MaxBody: 1024})
	s, err := e.c.Process(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		s.CloseSend()
		<-e.ended
	}()
	exchangeOne(t, s, reqHeaders(identityMD("", "203.0.113.9"), false, ":method", "POST", ":path", "/v1/login"))
	ir := exchangeOne(t, s, reqTrailers()).GetImmediateResponse()
	if ir == nil || ir.GetStatus().GetCode() != 400 {
		t.Fatalf("trailers answered %v, want a 400 refusal before the upstream", ir)
	}
}

// TestResponseWithoutRequestHeaders: a filter that does not send the request headers
// (request_header_mode SKIP, or an Envoy Gateway policy without processingMode.request)
// starts the stream at the response. On a route whose endpoint signs, the response
// would pass unsigned and the request checks would never have run: the exchange fails
// closed instead, so that the mistake shows at once.
func TestResponseWithoutRequestHeaders(t *testing.T) {
	rs, _ := signedRoutes(t, Route{})
	c := serve(t, NewServer(func() *Routes { return rs }, Options{Now: signedAt}))
	s, err := c.Process(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	first := respHeaders(false, ":status", "200")
	first.MetadataContext = metadata("a", "e", "allow")
	ir := exchangeOne(t, s, first).GetImmediateResponse()
	if ir == nil || ir.GetStatus().GetCode() != 503 {
		t.Fatalf("answered %v, want a 503 immediate response", ir)
	}
	wantSigned(t, ir.GetHeaders(), "", 503, string(ir.GetBody()))
	// A route without features is not concerned: its response goes through.
	s, err = c.Process(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	other := respHeaders(false, ":status", "200")
	other.MetadataContext = metadata("a", "other", "allow")
	if r := exchangeOne(t, s, other); r.GetResponseHeaders() == nil {
		t.Fatalf("route without features answered %v, want CONTINUE", r)
	}
}
