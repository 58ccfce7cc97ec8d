package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	procv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// extAuthzNamespace is where Check's dynamic metadata lands; Envoy forwards it to ext_proc
// (metadata_options.forwarding_namespaces.untyped).
const extAuthzNamespace = "envoy.filters.http.ext_authz"

// procExchange is one HTTP exchange as Envoy's ext_proc filter sends it on a Process stream:
// the messages of each phase, pre-built, and the route's processing mode.
type procExchange struct {
	reqHeaders, respHeaders, respBody *extprocv3.ProcessingRequest
	mode                              *procv3.ProcessingMode
}

// bufferedRoute is the processing mode of a signed, idempotent route in envoy/sidecar:
// both header phases, both bodies buffered (a GET has no request body to send).
var bufferedRoute = &procv3.ProcessingMode{
	RequestHeaderMode:   procv3.ProcessingMode_SEND,
	ResponseHeaderMode:  procv3.ProcessingMode_SEND,
	RequestBodyMode:     procv3.ProcessingMode_BUFFERED,
	ResponseBodyMode:    procv3.ProcessingMode_BUFFERED,
	RequestTrailerMode:  procv3.ProcessingMode_SKIP,
	ResponseTrailerMode: procv3.ProcessingMode_SKIP,
}

// buildExchanges pre-builds one exchange per device: an allowed GET of the demo app (Check's
// metadata forwarded on every message, as Envoy does) answered 200 with a JSON body of
// bodySize bytes.
func buildExchanges(s reqShape, bodySize int) []*procExchange {
	body := jsonBody(bodySize)
	out := make([]*procExchange, 0, s.devices)
	for i := 0; i < s.devices; i++ {
		reqID := fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i)
		md := &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{extAuthzNamespace: {Fields: map[string]*structpb.Value{
			"decision_id": structpb.NewStringValue(reqID),
			"decision":    structpb.NewStringValue("allow"),
			"app":         structpb.NewStringValue("demo"),
			"endpoint":    structpb.NewStringValue(s.exts["endpoint"]),
			"dialect":     structpb.NewStringValue("protectmyapi"),
			"device_id":   structpb.NewStringValue("device-" + strconv.Itoa(i)),
			"caller":      structpb.NewStringValue(fmt.Sprintf("%064x", i)),
		}}}}
		reqH := headerMap(map[string]string{":method": "GET", ":path": s.path, ":authority": s.host, ":scheme": "https",
			"x-request-id": reqID, "user-agent": "gatehouse-load/1.0", "x-device-id": "device-" + strconv.Itoa(i),
			loadNonceHeader: fmt.Sprintf("load-nonce-%016x", i)})
		respH := headerMap(map[string]string{":status": "200", "content-type": "application/json",
			"content-length": strconv.Itoa(len(body))})
		out = append(out, &procExchange{
			mode: bufferedRoute,
			reqHeaders: &extprocv3.ProcessingRequest{MetadataContext: md, Request: &extprocv3.ProcessingRequest_RequestHeaders{
				RequestHeaders: &extprocv3.HttpHeaders{Headers: reqH, EndOfStream: true}}},
			respHeaders: &extprocv3.ProcessingRequest{MetadataContext: md, Request: &extprocv3.ProcessingRequest_ResponseHeaders{
				ResponseHeaders: &extprocv3.HttpHeaders{Headers: respH, EndOfStream: len(body) == 0}}},
			respBody: &extprocv3.ProcessingRequest{MetadataContext: md, Request: &extprocv3.ProcessingRequest_ResponseBody{
				ResponseBody: &extprocv3.HttpBody{Body: body, EndOfStream: true}}},
		})
	}
	return out
}

// jsonBody is a JSON object of exactly n bytes (n ≥ 12), or n spaces when smaller.
func jsonBody(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = ' '
	}
	if n >= 12 {
		copy(b, `{"data":"`)
		for i := 9; i < n-2; i++ {
			b[i] = 'a' + byte(i%26)
		}
		copy(b[n-2:], `"}`)
	}
	return b
}

// headerMap is Envoy's header list, values in raw_value as recent Envoys send them.
func headerMap(h map[string]string) *corev3.HeaderMap {
	hm := &corev3.HeaderMap{}
	for k, v := range h {
		hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: k, RawValue: []byte(v)})
	}
	return hm
}

// runExchange drives one Process stream as Envoy does: each phase the processing mode asks
// for, in order, waiting for the answer to each; a mode_override changes the later phases;
// an immediate response ends the exchange (a denial or a replacement). It then half-closes
// and waits for the server to end the stream. sent is the number of messages sent.
func runExchange(ctx context.Context, c extprocv3.ExternalProcessorClient, x *procExchange) (o outcome, sent int, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := c.Process(ctx)
	if err != nil {
		return outcomeOK, 0, err
	}
	mode := x.mode
	for _, m := range []*extprocv3.ProcessingRequest{x.reqHeaders, x.respHeaders, x.respBody} {
		if !phaseWanted(mode, m) {
			continue
		}
		if err := st.Send(m); err != nil {
			return outcomeOK, sent, err
		}
		sent++
		resp, err := st.Recv()
		if err != nil {
			return outcomeOK, sent, err
		}
		if resp.GetImmediateResponse() != nil {
			return outcomeDenied, sent, closeStream(st)
		}
		if !answers(resp, m) {
			return outcomeOK, sent, fmt.Errorf("answer %T to a %T message", resp.GetResponse(), m.GetRequest())
		}
		if o := resp.GetModeOverride(); o != nil {
			mode = override(mode, o)
		}
	}
	return outcomeOK, sent, closeStream(st)
}

// closeStream half-closes the stream and waits for the server to end it.
func closeStream(st extprocv3.ExternalProcessor_ProcessClient) error {
	if err := st.CloseSend(); err != nil {
		return err
	}
	for {
		if _, err := st.Recv(); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

// phaseWanted says whether Envoy sends m under mode (headers: DEFAULT means SEND).
func phaseWanted(mode *procv3.ProcessingMode, m *extprocv3.ProcessingRequest) bool {
	switch r := m.GetRequest().(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		return mode.GetRequestHeaderMode() != procv3.ProcessingMode_SKIP
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		return mode.GetResponseHeaderMode() != procv3.ProcessingMode_SKIP
	case *extprocv3.ProcessingRequest_ResponseBody:
		return mode.GetResponseBodyMode() == procv3.ProcessingMode_BUFFERED && len(r.ResponseBody.GetBody()) > 0
	}
	return false
}

// answers reports whether resp is the kind of answer m asks for.
func answers(resp *extprocv3.ProcessingResponse, m *extprocv3.ProcessingRequest) bool {
	switch m.GetRequest().(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		return resp.GetRequestHeaders() != nil
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		return resp.GetResponseHeaders() != nil
	case *extprocv3.ProcessingRequest_ResponseBody:
		return resp.GetResponseBody() != nil
	}
	return false
}

// override applies a mode_override to the phases still to come (the response's).
func override(mode, o *procv3.ProcessingMode) *procv3.ProcessingMode {
	return &procv3.ProcessingMode{
		RequestHeaderMode:   mode.GetRequestHeaderMode(),
		RequestBodyMode:     mode.GetRequestBodyMode(),
		RequestTrailerMode:  mode.GetRequestTrailerMode(),
		ResponseHeaderMode:  o.GetResponseHeaderMode(),
		ResponseBodyMode:    o.GetResponseBodyMode(),
		ResponseTrailerMode: o.GetResponseTrailerMode(),
	}
}

// loadNonceHeader carries each request's nonce (the signer's default nonce header): Process
// echoes it in the signed response. Check, which refuses a nonce seen before, is not called
// by this load.
const loadNonceHeader = "x-nonce"

// extprocConfig is the generated config of --mode extproc: the load config's demo app with
// the response phase on: every response signed with the secret in secretFile (so Process
// asks for and reads every response body), upstream errors rewritten into its dialect.
func extprocConfig(secretFile string) string {
	return strings.Replace(memoryConfig(), `    endpoints: ["*"]
`, `    endpoints: ["*"]
    response:
      upstream_errors: rewrite
      sign:
        secret_file: `+strconv.Quote(secretFile)+`
`, 1)
}

// loadSecret is the signing secret of the generated config: a load run's, not a secret.
const loadSecret = "gatehouse-load signing secret, 32+ bytes long\n"
