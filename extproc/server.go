package extproc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/gatehouse/gatehouse/internal/envoyhdr"
	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/signature"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Observer is told of every exchange when its stream ends (metrics, decision log).
type Observer interface {
	ObserveExchange(ctx context.Context, o *Outcome, start time.Time)
}

// Options are a Server's optional parts.
type Options struct {
	Now      func() time.Time // default time.Now
	Observer Observer         // nil: none
	Log      *slog.Logger     // default slog.Default()
	// DoneTimeout bounds the done hooks of a stream that ended (they run on a context
	// detached from the stream's, which may be cancelled); default 1s.
	DoneTimeout time.Duration
}

// Server implements envoy.service.ext_proc.v3.ExternalProcessor.
type Server struct {
	extprocv3.UnimplementedExternalProcessorServer
	routes func() *Routes
	o      Options
}

// NewServer returns a Server. routes returns the routes in force (one atomic load per
// stream); nil means none yet, and every stream is told to skip.
func NewServer(routes func() *Routes, o Options) *Server {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.DoneTimeout <= 0 {
		o.DoneTimeout = time.Second
	}
	return &Server{routes: routes, o: o}
}

// Process serves one stream: one HTTP request and its response. A denial or a
// replacement is an ImmediateResponse; a gRPC error means Gatehouse could not process
// the exchange, and Envoy's failure_mode_allow decides.
func (s *Server) Process(stream extprocv3.ExternalProcessor_ProcessServer) (err error) {
	ctx := stream.Context()
	start := s.o.Now()
	x := &exchange{now: start}
	defer func() {
		if p := recover(); p != nil {
			s.o.Log.Error("process panicked", "panic", fmt.Sprint(p))
			err = status.Error(codes.Internal, "internal error")
		}
		s.finish(ctx, x, start)
	}()
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		resp, end := s.handle(ctx, x, req)
		if err := stream.Send(resp); err != nil {
			return err
		}
		if end {
			return nil
		}
	}
}

// handle answers one message; end is set when the answer ends the exchange.
func (s *Server) handle(ctx context.Context, x *exchange, req *extprocv3.ProcessingRequest) (*extprocv3.ProcessingResponse, bool) {
	x.now = s.o.Now() // the time of this phase: store records expire against it
	if _, ok := req.GetRequest().(*extprocv3.ProcessingRequest_RequestHeaders); !ok && !x.identified {
		if r := s.unannounced(x, req); r != nil { // any phase but the request headers first
			return s.answer(x, r), true
		}
	}
	switch r := req.GetRequest().(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		return s.requestHeaders(ctx, x, req, r.RequestHeaders)
	case *extprocv3.ProcessingRequest_RequestBody:
		return s.requestBody(ctx, x, req, r.RequestBody)
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		return s.responseHeaders(ctx, x, req, r.ResponseHeaders)
	case *extprocv3.ProcessingRequest_ResponseBody:
		return s.responseBody(ctx, x, req, r.ResponseBody)
	case *extprocv3.ProcessingRequest_RequestTrailers:
		return s.requestTrailers(ctx, x, req)
	case *extprocv3.ProcessingRequest_ResponseTrailers:
		return s.responseTrailers(ctx, x, req)
	}
	return continueFor(req), false
}

// requestHeaders identifies the exchange and tells Envoy which phases to send next.
func (s *Server) requestHeaders(ctx context.Context, x *exchange, req *extprocv3.ProcessingRequest, h *extprocv3.HttpHeaders) (*extprocv3.ProcessingResponse, bool) {
	if x.identified {
		return continueFor(req), false // one exchange per stream: identified once
	}
	x.identified = true
	id, _ := readIdentity(req)
	rs := s.routes()
	x.app, x.endpoint, x.decisionID, x.caller = id.app, id.endpoint, id.decisionID, id.caller
	x.client = id.client
	x.outcome.App, x.outcome.Endpoint, x.outcome.DecisionID = id.app, id.endpoint, id.decisionID
	if rs != nil {
		x.dialect = rs.DefaultDialect
	}
	if id.decision == "allow" {
		x.route = rs.find(id.app, id.endpoint)
	}
	if x.route == nil {
		x.outcome.Skipped = true
		return requestHeadersResponse(skipAll), false
	}
	x.dialect = x.route.Dialect
	x.reqHeaders = envoyhdr.Merge(h.GetHeaders().GetHeaders())
	x.method, x.path = x.reqHeaders[":method"], x.reqHeaders[":path"]
	x.needs = x.route.needsFor(x.method, x.reqHeaders)
	if h.GetEndOfStream() || !x.needs.requestBody {
		if r := s.runRequest(ctx, x); r != nil {
			return s.answer(x, r), true
		}
	}
	if !x.needs.any() {
		x.outcome.Skipped = true // nothing acts on it: Envoy sends nothing more
		return requestHeadersResponse(skipAll), false
	}
	return requestHeadersResponse(modeFor(x.needs, h.GetEndOfStream())), false
}

// unannounced identifies a stream that starts after the request headers (at a body,
// trailers or the response): the filter did not send the request headers
// (request_header_mode SKIP, or an Envoy Gateway policy without processingMode.request). On a route with features the request checks never ran and
// the signature could not echo the nonce, so the exchange fails closed
// (SERVICE_UNAVAILABLE, in the decision log) rather than pass unsigned; elsewhere
// nothing changes.
func (s *Server) unannounced(x *exchange, req *extprocv3.ProcessingRequest) *reply {
	x.identified = true
	id, _ := readIdentity(req)
	if id.decision != "allow" {
		return nil
	}
	r := s.routes().find(id.app, id.endpoint)
	if r == nil {
		return nil
	}
	x.route, x.dialect = r, r.Dialect
	x.app, x.endpoint, x.decisionID = id.app, id.endpoint, id.decisionID
	x.outcome.App, x.outcome.Endpoint, x.outcome.DecisionID = id.app, id.endpoint, id.decisionID
	return x.denial(policy.ServiceUnavailable, "")
}

// requestBody buffers the request body and runs the request hooks on its last part.
func (s *Server) requestBody(ctx context.Context, x *exchange, req *extprocv3.ProcessingRequest, b *extprocv3.HttpBody) (*extprocv3.ProcessingResponse, bool) {
	if x.route == nil || !x.needs.requestBody {
		return continueFor(req), false
	}
	if len(x.reqBody)+len(b.GetBody()) > x.route.MaxBody {
		return s.answer(x, x.denial(policy.PayloadTooLarge, "")), true
	}
	x.reqBody = appendBody(x.reqBody, b.GetBody())
	if !b.GetEndOfStream() {
		return continueFor(req), false
	}
	if r := s.runRequest(ctx, x); r != nil {
		return s.answer(x, r), true
	}
	return continueFor(req), false
}

// responseHeaders reads the upstream's status; without a body to wait for, or with an
// upstream error the route rewrites (its body is dropped, so never buffered), the
// response hooks run now.
func (s *Server) responseHeaders(ctx context.Context, x *exchange, req *extprocv3.ProcessingRequest, h *extprocv3.HttpHeaders) (*extprocv3.ProcessingResponse, bool) {
	if x.route == nil || !x.needs.any() {
		return continueFor(req), false
	}
	if !x.requestRan {
		// The filter skipped the request body it was asked for (its mode override not
		// honoured): the request hooks never ran, so the response does not pass.
		return s.answer(x, x.denial(policy.ServiceUnavailable, "")), true
	}
	x.respHeaders = envoyhdr.Merge(h.GetHeaders().GetHeaders())
	x.status = statusOf(x.respHeaders)
	x.outcome.UpstreamStatus = x.status
	if n, err := strconv.Atoi(x.respHeaders["content-length"]); err == nil && n >= 0 {
		x.outcome.UpstreamBytes = n
	}
	if h.GetEndOfStream() || !x.needs.responseBody || x.route.UpstreamErrors && upstreamError(x.status) {
		return s.respond(ctx, x, req)
	}
	return continueFor(req), false
}

// responseBody buffers the upstream's body and runs the response hooks on its last part.
// A body over the route's bound fails closed: the client gets INVALID_RESPONSE, never a
// response the features could not see whole.
func (s *Server) responseBody(ctx context.Context, x *exchange, req *extprocv3.ProcessingRequest, b *extprocv3.HttpBody) (*extprocv3.ProcessingResponse, bool) {
	if x.route == nil || !x.needs.responseBody {
		return continueFor(req), false
	}
	if !x.requestRan {
		return s.answer(x, x.denial(policy.ServiceUnavailable, "")), true
	}
	if len(x.respBody)+len(b.GetBody()) > x.route.MaxBody {
		x.outcome.UpstreamBytes = max(x.outcome.UpstreamBytes, len(x.respBody)+len(b.GetBody()))
		return s.answer(x, x.denial(policy.InvalidResponse, "")), true
	}
	x.respBody = appendBody(x.respBody, b.GetBody())
	if !b.GetEndOfStream() {
		return continueFor(req), false
	}
	x.outcome.UpstreamBytes = len(x.respBody)
	return s.respond(ctx, x, req)
}

// requestTrailers ends a buffered request body: in BUFFERED mode Envoy sends a body
// followed by trailers with end_of_stream false, and the trailers say it is whole. The
// request hooks run now, before Envoy lets the request go to the upstream. The body is
// the exchange's to wait for (x.needs: idempotency's are decided per request), not the
// route's.
func (s *Server) requestTrailers(ctx context.Context, x *exchange, req *extprocv3.ProcessingRequest) (*extprocv3.ProcessingResponse, bool) {
	if x.route == nil || !x.needs.requestBody || x.requestRan {
		return continueFor(req), false
	}
	if r := s.runRequest(ctx, x); r != nil {
		return s.answer(x, r), true
	}
	return continueFor(req), false
}

// responseTrailers ends a buffered response body the same way. The response hooks run
// on the whole body; a signed route fails closed with INVALID_RESPONSE, since a
// trailers answer cannot set the response headers the signature goes in.
func (s *Server) responseTrailers(ctx context.Context, x *exchange, req *extprocv3.ProcessingRequest) (*extprocv3.ProcessingResponse, bool) {
	if x.route == nil || !x.needs.responseBody || x.outcome.Status != 0 {
		return continueFor(req), false
	}
	x.outcome.UpstreamBytes = len(x.respBody)
	if !x.requestRan { // the request body it was asked for never came (responseHeaders)
		return s.answer(x, x.denial(policy.ServiceUnavailable, "")), true
	}
	if x.route.Sign != nil {
		return s.answer(x, x.denial(policy.InvalidResponse, "")), true
	}
	return s.respond(ctx, x, req)
}

// runRequest runs the request hooks in order, once; the first reply ends the exchange.
func (s *Server) runRequest(ctx context.Context, x *exchange) *reply {
	x.requestRan = true
	for _, h := range x.route.hooks {
		if r := h.request(ctx, x); r != nil {
			return r
		}
	}
	return nil
}

// respond runs the response hooks on the complete response. Each reply replaces the
// response the later hooks see, so that what a later hook stores or signs is what the
// client receives.
func (s *Server) respond(ctx context.Context, x *exchange, req *extprocv3.ProcessingRequest) (*extprocv3.ProcessingResponse, bool) {
	var final *reply
	for _, h := range x.route.hooks {
		if r := h.response(ctx, x); r != nil {
			final = r
			x.status, x.respBody, x.immediate = r.status, r.body, true
			x.respHeaders = headerValues(r.headers)
		}
	}
	if final != nil {
		return s.answer(x, final), true
	}
	x.outcome.Status = x.status
	set, drop := s.seal(x, x.status, x.respBody)
	return continueWith(req, set, drop), false
}

// answer ends the exchange with r, sealed like any response the client receives: a
// nonce echo r carries (a replayed response's) goes when the request sent no valid nonce.
func (s *Server) answer(x *exchange, r *reply) *extprocv3.ProcessingResponse {
	x.immediate = true
	x.outcome.Status, x.outcome.Code = r.status, r.code
	set, drop := s.seal(x, r.status, r.body)
	if drop != "" {
		r.headers = withoutHeader(r.headers, drop)
	}
	if len(set) > 0 {
		r.headers = append(r.headers[:len(r.headers):len(r.headers)], set...)
	}
	return immediate(r)
}

// withoutHeader returns hs without name, in a new slice when it held name (a reply's
// headers may be shared).
func withoutHeader(hs []policy.Header, name string) []policy.Header {
	var out []policy.Header
	for i, h := range hs {
		if !strings.EqualFold(h.Key, name) {
			if out != nil {
				out = append(out, h)
			}
			continue
		}
		if out == nil {
			out = append(make([]policy.Header, 0, len(hs)-1), hs[:i]...)
		}
	}
	if out == nil {
		return hs
	}
	return out
}

// seal returns the headers the last step sets on whatever the client receives (the
// response signature), and the header it removes (an echo of a nonce the request did
// not send validly, which only the upstream can have set). Nothing when the route signs
// nothing.
func (s *Server) seal(x *exchange, status int, body []byte) (set []policy.Header, drop string) {
	sg := x.route.Sign
	if sg == nil {
		return nil, ""
	}
	x.outcome.Signed = true
	nonce := strings.TrimSpace(x.reqHeaders[sg.NonceHeader])
	if !signature.ValidNonce(nonce) {
		nonce, drop = "", sg.EchoHeader
	}
	var buf [3]signature.Header
	hs := sg.AppendHeaders(buf[:0], nonce, status, s.o.Now(), body)
	set = make([]policy.Header, len(hs))
	for i, h := range hs {
		set[i] = policy.Header(h)
	}
	return set, drop
}

// finish runs the done hooks, once, on a context detached from the stream's (which may
// be cancelled), and reports the exchange.
func (s *Server) finish(ctx context.Context, x *exchange, start time.Time) {
	if x.route != nil {
		x.now = s.o.Now()
		if x.outcome.Status == 0 && !x.outcome.Skipped {
			x.outcome.Cancelled = true
		}
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.o.DoneTimeout)
		defer cancel()
		for _, h := range x.route.hooks {
			s.safeDone(dctx, h, x)
		}
	}
	if s.o.Observer != nil {
		s.o.Observer.ObserveExchange(ctx, &x.outcome, start)
	}
}

// safeDone runs one done hook; a panicking hook does not keep the others from running.
func (s *Server) safeDone(ctx context.Context, h hook, x *exchange) {
	defer func() {
		if p := recover(); p != nil {
			s.o.Log.Error("response phase: done hook panicked", "panic", fmt.Sprint(p))
		}
	}()
	h.done(ctx, x)
}

// appendBody adds a part of a body to what is buffered. A body that comes whole (the
// BUFFERED mode sends one message) is kept as received, without a copy: the message is
// the stream's own.
func appendBody(buf, part []byte) []byte {
	if buf == nil {
		return part
	}
	return append(buf, part...)
}

// headerValues is a reply's headers as a map.
func headerValues(hs []policy.Header) map[string]string {
	m := make(map[string]string, len(hs))
	for _, h := range hs {
		m[h.Key] = h.Value
	}
	return m
}
