package extproc

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	procv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/gatehouse/gatehouse/policy"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// serve starts srv on a loopback port and returns a client.
func serve(t testing.TB, srv extprocv3.ExternalProcessorServer) extprocv3.ExternalProcessorClient {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	extprocv3.RegisterExternalProcessorServer(g, srv)
	go g.Serve(l)
	t.Cleanup(g.Stop)
	cc, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return extprocv3.NewExternalProcessorClient(cc)
}

// recorder is a hook that records what it saw and answers what it is told.
type recorder struct {
	mu        sync.Mutex
	calls     []string
	reqBody   string
	respBody  string
	status    int
	onRequest *reply
	doneCh    chan struct{}
}

func (r *recorder) request(_ context.Context, x *exchange) *reply {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, "request")
	r.reqBody = string(x.reqBody)
	return r.onRequest
}

func (r *recorder) response(_ context.Context, x *exchange) *reply {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, "response")
	r.respBody, r.status = string(x.respBody), x.status
	return nil
}

func (r *recorder) done(_ context.Context, _ *exchange) {
	r.mu.Lock()
	r.calls = append(r.calls, "done")
	r.mu.Unlock()
	close(r.doneCh)
}

func (r *recorder) seen() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.calls...)
}

// routesWith returns routes where app "a" endpoint "e" runs rec (with the needs given)
// after the route's own features.
func routesWith(r Route, rec *recorder, n needs) *Routes {
	rs := NewRoutes(policy.ProtectMyAPI)
	r.App, r.Endpoint = "a", "e"
	r.build()
	if rec != nil {
		r.hooks = append(r.hooks, rec)
		r.needs.requestBody = r.needs.requestBody || n.requestBody
		r.needs.response = r.needs.response || n.response
		r.needs.responseBody = r.needs.responseBody || n.responseBody
	}
	rs.byKey[routeKey{"a", "e"}] = &r
	return rs
}

// metadata is what Envoy forwards of Check's dynamic metadata.
func metadata(app, endpoint, decision string) *corev3.Metadata {
	s, _ := structpb.NewStruct(map[string]any{"app": app, "endpoint": endpoint, "decision": decision, "decision_id": "d1"})
	return &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{MetadataNamespace: s}}
}

func headers(eos bool, kv ...string) *extprocv3.HttpHeaders {
	hm := &corev3.HeaderMap{}
	for i := 0; i+1 < len(kv); i += 2 {
		hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: kv[i], RawValue: []byte(kv[i+1])})
	}
	return &extprocv3.HttpHeaders{Headers: hm, EndOfStream: eos}
}

func reqHeaders(md *corev3.Metadata, eos bool, kv ...string) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{MetadataContext: md,
		Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: headers(eos, kv...)}}
}

func reqBody(b string, eos bool) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{
		RequestBody: &extprocv3.HttpBody{Body: []byte(b), EndOfStream: eos}}}
}

func respHeaders(eos bool, kv ...string) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: headers(eos, kv...)}}
}

func respBody(b string, eos bool) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{
		ResponseBody: &extprocv3.HttpBody{Body: []byte(b), EndOfStream: eos}}}
}

// exchangeOne sends req and returns the answer.
func exchangeOne(t *testing.T, s extprocv3.ExternalProcessor_ProcessClient, req *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
	t.Helper()
	if err := s.Send(req); err != nil {
		t.Fatal(err)
	}
	resp, err := s.Recv()
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

var wantSkipAll = &procv3.ProcessingMode{
	RequestHeaderMode: procv3.ProcessingMode_SKIP, ResponseHeaderMode: procv3.ProcessingMode_SKIP,
	RequestTrailerMode: procv3.ProcessingMode_SKIP, ResponseTrailerMode: procv3.ProcessingMode_SKIP,
}

func sameMode(a, b *procv3.ProcessingMode) bool {
	return a.GetRequestHeaderMode() == b.GetRequestHeaderMode() && a.GetResponseHeaderMode() == b.GetResponseHeaderMode() &&
		a.GetRequestBodyMode() == b.GetRequestBodyMode() && a.GetResponseBodyMode() == b.GetResponseBodyMode() &&
		a.GetRequestTrailerMode() == b.GetRequestTrailerMode() && a.GetResponseTrailerMode() == b.GetResponseTrailerMode()
}
