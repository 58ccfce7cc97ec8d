package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
)

// extProcConfig is an app whose upstream errors are rewritten, with one endpoint that
// opts out.
const extProcConfig = `
apps:
  - name: shop
    app_token_sha256: ["%s"]
    endpoints: ["*"]
    response: {upstream_errors: rewrite}
endpoints:
  - {name: orders, path: /v1/orders}
  - name: plain
    path: /v1/plain
    response: {upstream_errors: pass}
`

func startExtProcServer(t *testing.T, cfg string) *testServer {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return startServer(t, "--config", path)
}

// forwarded is Check's dynamic metadata as Envoy forwards it to ext_proc
// (metadata_options.forwarding_namespaces.untyped: [envoy.filters.http.ext_authz]).
func forwarded(resp *authv3.CheckResponse) *corev3.Metadata {
	return &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"envoy.filters.http.ext_authz": resp.GetDynamicMetadata()}}
}

// procStream opens a Process stream on s.
func procStream(t *testing.T, s *testServer) extprocv3.ExternalProcessor_ProcessClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	st, err := extprocv3.NewExternalProcessorClient(s.conn).Process(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func procSend(t *testing.T, st extprocv3.ExternalProcessor_ProcessClient, req *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
	t.Helper()
	if err := st.Send(req); err != nil {
		t.Fatal(err)
	}
	resp, err := st.Recv()
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func procHeaders(eos bool, kv ...string) *extprocv3.HttpHeaders {
	hm := &corev3.HeaderMap{}
	for i := 0; i+1 < len(kv); i += 2 {
		hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: kv[i], RawValue: []byte(kv[i+1])})
	}
	return &extprocv3.HttpHeaders{Headers: hm, EndOfStream: eos}
}

// TestEndToEndExtProcUpstreamErrors: over real gRPC, Check's metadata names the route
// to Process; on an app with upstream_errors rewrite, an upstream 503 reaches the client
// as TARGET_UNAVAILABLE 503 in the app's dialect (000_*.txt), a 200 passes, and an
// endpoint that opts out is told to skip every phase.
func TestEndToEndExtProcUpstreamErrors(t *testing.T) {
	srv := startExtProcServer(t, fmt.Sprintf(extProcConfig, sha("tok-shop")))
	for _, tc := range []struct {
		name, path, upstream string
		skip                 bool
		status               int32
		body                 string
	}{
		{"503 rewritten", "/v1/orders", "503", false, 503, `{"success":false,"error":{"code":"TARGET_UNAVAILABLE","message":"Target API is unavailable"}}`},
		{"200 passes", "/v1/orders", "200", false, 0, ""},
		{"opted out", "/v1/plain", "503", true, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cr, err := srv.check(t, request{path: tc.path, headers: app("shop")})
			if err != nil || cr.GetOkResponse() == nil {
				t.Fatalf("check: %v %s", err, describe(cr))
			}
			st := procStream(t, srv)
			resp := procSend(t, st, &extprocv3.ProcessingRequest{MetadataContext: forwarded(cr),
				Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: procHeaders(true, ":method", "GET", ":path", tc.path)}})
			m := resp.GetModeOverride()
			if tc.skip {
				if m.GetResponseHeaderMode() != 2 { // SKIP
					t.Fatalf("mode %v, want every phase skipped", m)
				}
				return
			}
			if m.GetResponseHeaderMode() != 1 { // SEND
				t.Fatalf("mode %v, want the response headers", m)
			}
			resp = procSend(t, st, &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{
				ResponseHeaders: procHeaders(false, ":status", tc.upstream, "content-length", "9")}})
			ir := resp.GetImmediateResponse()
			if tc.status == 0 {
				if ir != nil {
					t.Fatalf("answer %v, want the upstream's response", resp)
				}
				st.CloseSend()
				if _, err := st.Recv(); !errors.Is(err, io.EOF) {
					t.Fatalf("stream end: %v", err)
				}
				return
			}
			if ir == nil || int32(ir.GetStatus().GetCode()) != tc.status || string(ir.GetBody()) != tc.body {
				t.Fatalf("answer %v, want %d %s", resp, tc.status, tc.body)
			}
			// The stream ends after an immediate response, once the exchange is logged.
			if _, err := st.Recv(); !errors.Is(err, io.EOF) {
				t.Fatalf("stream end: %v", err)
			}
		})
	}
	recs := srv.out.records("response")
	if len(recs) != 1 || recs[0]["upstream_status"] != float64(503) || recs[0]["upstream_bytes"] != float64(9) || recs[0]["code"] != "TARGET_UNAVAILABLE" {
		t.Fatalf("decision log %v, want one line with the upstream's 503", recs)
	}
}

// TestEndToEndProcessAllowList: over mutual TLS, the response phase's stream follows the
// check list: Envoy's identity is served, a caller only on the rate-limit list and a
// stranger are refused with PERMISSION_DENIED.
func TestEndToEndProcessAllowList(t *testing.T) {
	p := newPKI(t)
	srv := p.start(t,
		"client_ca_file: "+filepath.Join(p.dir, "ca.crt"),
		"require_client_cert: true",
		"allow:",
		"  check: ["+envoySPIFFE+"]",
		"  ratelimit: ["+refunderSPIFFE+"]")
	for _, tc := range []struct {
		name, id string
		served   bool
	}{
		{"envoy", envoySPIFFE, true},
		{"on the rate-limit list only", refunderSPIFFE, false},
		{"stranger", strangerSPIFFE, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn := dialTLS(t, srv.grpcAddr, p.ca, p.ca, tc.id)
			ctx, cancel := callCtx()
			defer cancel()
			st, err := extprocv3.NewExternalProcessorClient(conn).Process(ctx)
			if err == nil {
				err = st.Send(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{
					RequestHeaders: procHeaders(true, ":method", "GET", ":path", "/v1/api")}})
			}
			var resp *extprocv3.ProcessingResponse
			if err == nil || errors.Is(err, io.EOF) { // EOF: refused already; Recv has the status
				resp, err = st.Recv()
			}
			if tc.served {
				if err != nil || resp.GetRequestHeaders() == nil {
					t.Fatalf("listed caller: %v %v", err, resp)
				}
				return
			}
			if status.Code(err) != codes.PermissionDenied {
				t.Fatalf("err %v, want PERMISSION_DENIED", err)
			}
		})
	}
}
