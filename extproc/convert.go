package extproc

import (
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	procv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/gatehouse/gatehouse/policy"
)

// MetadataNamespace is the dynamic-metadata namespace Check fills and Envoy forwards to
// ext_proc (metadata_options.forwarding_namespaces.untyped).
const MetadataNamespace = "envoy.filters.http.ext_authz"

// identity is what Check said about the request, read from the forwarded metadata.
type identity struct {
	app, endpoint, decision, decisionID, caller, client string
}

// readIdentity reads Check's metadata from a ProcessingRequest; ok is false when the
// message carries none. It is a pure function.
func readIdentity(req *extprocv3.ProcessingRequest) (id identity, ok bool) {
	s := req.GetMetadataContext().GetFilterMetadata()[MetadataNamespace]
	if s == nil {
		return id, false
	}
	f := s.GetFields()
	str := func(k string) string { return f[k].GetStringValue() }
	return identity{app: str("app"), endpoint: str("endpoint"), decision: str("decision"),
		decisionID: str("decision_id"), caller: str("caller"), client: str("client")}, true
}

// statusOf reads the :status pseudo-header; 0 when absent or not a status.
func statusOf(h map[string]string) int {
	n, err := strconv.Atoi(h[":status"])
	if err != nil || n < 100 || n > 999 {
		return 0
	}
	return n
}

// skipAll tells Envoy to send nothing more on this stream.
var skipAll = &procv3.ProcessingMode{
	RequestHeaderMode:   procv3.ProcessingMode_SKIP,
	ResponseHeaderMode:  procv3.ProcessingMode_SKIP,
	RequestBodyMode:     procv3.ProcessingMode_NONE,
	ResponseBodyMode:    procv3.ProcessingMode_NONE,
	RequestTrailerMode:  procv3.ProcessingMode_SKIP,
	ResponseTrailerMode: procv3.ProcessingMode_SKIP,
}

// modeFor is the processing mode a route needs after its request headers; reqEnd says
// the request had no body.
func modeFor(n needs, reqEnd bool) *procv3.ProcessingMode {
	m := &procv3.ProcessingMode{
		RequestHeaderMode:   procv3.ProcessingMode_SKIP,
		ResponseHeaderMode:  procv3.ProcessingMode_SKIP,
		RequestTrailerMode:  procv3.ProcessingMode_SKIP,
		ResponseTrailerMode: procv3.ProcessingMode_SKIP,
	}
	// A buffered body may end with trailers (end_of_stream false on the body): they
	// are asked for so that the hooks still see the whole body before it goes on.
	if n.requestBody && !reqEnd {
		m.RequestBodyMode = procv3.ProcessingMode_BUFFERED
		m.RequestTrailerMode = procv3.ProcessingMode_SEND
	}
	if n.response || n.responseBody {
		m.ResponseHeaderMode = procv3.ProcessingMode_SEND
	}
	if n.responseBody {
		m.ResponseBodyMode = procv3.ProcessingMode_BUFFERED
		m.ResponseTrailerMode = procv3.ProcessingMode_SEND
	}
	return m
}

// Continue responses, shared: gRPC only reads them while marshalling.
var (
	continueCommon = &extprocv3.CommonResponse{}
)

// requestHeadersResponse answers request headers with CONTINUE and a mode override.
func requestHeadersResponse(mode *procv3.ProcessingMode) *extprocv3.ProcessingResponse {
	return &extprocv3.ProcessingResponse{
		Response: &extprocv3.ProcessingResponse_RequestHeaders{
			RequestHeaders: &extprocv3.HeadersResponse{Response: continueCommon}},
		ModeOverride: mode,
	}
}

// continueFor answers a message with CONTINUE, of the kind the message asks for.
func continueFor(req *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
	return continueWith(req, nil, "")
}

// continueWith answers a message with CONTINUE, setting headers and removing one (on a
// headers or a buffered body message; Envoy ignores them elsewhere).
func continueWith(req *extprocv3.ProcessingRequest, set []policy.Header, drop string) *extprocv3.ProcessingResponse {
	c := continueCommon
	if len(set) > 0 || drop != "" {
		hm := mutation(set)
		if hm == nil {
			hm = &extprocv3.HeaderMutation{}
		}
		if drop != "" {
			hm.RemoveHeaders = []string{drop}
		}
		c = &extprocv3.CommonResponse{HeaderMutation: hm}
	}
	out := &extprocv3.ProcessingResponse{}
	switch req.GetRequest().(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		out.Response = &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{Response: c}}
	case *extprocv3.ProcessingRequest_RequestBody:
		out.Response = &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{Response: c}}
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		out.Response = &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocv3.HeadersResponse{Response: c}}
	case *extprocv3.ProcessingRequest_ResponseBody:
		out.Response = &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: &extprocv3.BodyResponse{Response: c}}
	case *extprocv3.ProcessingRequest_RequestTrailers:
		out.Response = &extprocv3.ProcessingResponse_RequestTrailers{RequestTrailers: &extprocv3.TrailersResponse{}}
	default: // response trailers, and anything newer
		out.Response = &extprocv3.ProcessingResponse_ResponseTrailers{ResponseTrailers: &extprocv3.TrailersResponse{}}
	}
	return out
}

// immediate turns a reply into an ImmediateResponse, which ends the exchange with a
// local reply.
func immediate(r *reply) *extprocv3.ProcessingResponse {
	details := "gatehouse"
	if r.code != "" {
		details = "gatehouse_" + strings.ToLower(string(r.code))
	}
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ImmediateResponse{
		ImmediateResponse: &extprocv3.ImmediateResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(r.status)},
			Headers: mutation(r.headers),
			Body:    r.body,
			Details: details,
		}}}
}

// mutation sets headers with overwrite semantics. Values go in raw_value, which every
// Envoy version with ext_proc header mutations reads.
func mutation(hs []policy.Header) *extprocv3.HeaderMutation {
	if len(hs) == 0 {
		return nil
	}
	set := make([]*corev3.HeaderValueOption, len(hs))
	for i, h := range hs {
		set[i] = &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: h.Key, RawValue: []byte(h.Value)},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		}
	}
	return &extprocv3.HeaderMutation{SetHeaders: set}
}
