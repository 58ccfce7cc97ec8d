package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
)

const signSecret = "e2e-signing-secret-0123456789abcdef"

// signedConfig signs every response of app shop (its endpoints orders and open), and
// of endpoint public for any app, with a second secret.
const signedConfig = `
apps:
  - name: shop
    app_token_sha256: ["%s"]
    endpoints: ["*"]
    response: {sign: {secret_file: sign.key}}
endpoints:
  - {name: orders, path: /v1/orders}
  - {name: public, path: /v1/public, response: {sign: {secret_file: public.key}}}
`

func startSignedServer(t *testing.T) *testServer {
	t.Helper()
	dir := t.TempDir()
	for name, data := range map[string]string{
		"sign.key": signSecret + "\n", "public.key": "public-signing-secret-0123456789abcdef",
		"config.yaml": fmt.Sprintf(signedConfig, sha("tok-shop")),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return startServer(t, "--config", filepath.Join(dir, "config.yaml"))
}

// hmacHex is the expected signature, computed here from the README's definition.
func hmacHex(secret, nonce string, status int, ts, body string) string {
	sum := sha256.Sum256([]byte(body))
	m := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(m, "gatehouse-v1\n%s\n%d\n%s\n%x", nonce, status, ts, sum)
	return hex.EncodeToString(m.Sum(nil))
}

// signedHeaders reads the signature headers from Check's or ext_proc's header options.
func signedHeaders(hs []*corev3.HeaderValueOption) (nonce, ts, sig string) {
	for _, h := range hs {
		v := h.GetHeader().GetValue()
		if raw := h.GetHeader().GetRawValue(); len(raw) > 0 {
			v = string(raw)
		}
		switch h.GetHeader().GetKey() {
		case "x-nonce":
			nonce = v
		case "x-signature-timestamp":
			ts = v
		case "x-signature":
			sig = v
		}
	}
	return
}

// TestEndToEndSignedDenials: over real gRPC, Check refuses a request without a nonce
// and a replayed nonce with the dialect's bad request (VALIDATION_ERROR 400), and every
// denial on a signed route carries a signature that verifies, the nonce echoed when the
// request sent a valid one, including a denial before the app is known.
func TestEndToEndSignedDenials(t *testing.T) {
	srv := startSignedServer(t)
	const nonce = "e2e-nonce-0000000001"
	for _, tc := range []struct {
		name, path, secret string
		headers            map[string]string
		status             int
		code, echo         string
	}{
		{"no nonce", "/v1/orders", signSecret, app("shop"), 400, "VALIDATION_ERROR", ""},
		{"malformed nonce", "/v1/orders", signSecret, with(app("shop"), "x-nonce", "short"), 400, "VALIDATION_ERROR", ""},
		{"first use", "/v1/orders", signSecret, with(app("shop"), "x-nonce", nonce), 0, "", ""},
		{"replay", "/v1/orders", signSecret, with(app("shop"), "x-nonce", nonce), 400, "VALIDATION_ERROR", nonce},
		{"unknown app on a signed endpoint", "/v1/public", "public-signing-secret-0123456789abcdef",
			map[string]string{"x-app-token": "nope", "x-nonce": nonce}, 404, "APP_NOT_FOUND", nonce},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cr, err := srv.check(t, request{method: "POST", path: tc.path, headers: tc.headers})
			if err != nil {
				t.Fatal(err)
			}
			if tc.status == 0 {
				if cr.GetOkResponse() == nil {
					t.Fatalf("denied: %s", describe(cr))
				}
				return
			}
			dr := cr.GetDeniedResponse()
			if int(dr.GetStatus().GetCode()) != tc.status || bodyCode(t, dr.GetBody()) != tc.code {
				t.Fatalf("%s, want %d %s", describe(cr), tc.status, tc.code)
			}
			echo, ts, sig := signedHeaders(dr.GetHeaders())
			if echo != tc.echo || sig != hmacHex(tc.secret, tc.echo, tc.status, ts, dr.GetBody()) {
				t.Fatalf("echo %q ts %q sig %q, want echo %q and a signature that verifies", echo, ts, sig, tc.echo)
			}
		})
	}
}

// TestEndToEndSignedUpstream: the exchange as Envoy drives it on a signed route: Check
// allows, then Process gets the request headers (end_of_stream false: a POST with a
// body it does not need), the response headers, then the body in two parts; the last
// answer carries the signature of the whole body and the echoed nonce.
func TestEndToEndSignedUpstream(t *testing.T) {
	srv := startSignedServer(t)
	const nonce = "e2e-nonce-0000000002"
	cr, err := srv.check(t, request{method: "POST", path: "/v1/orders", headers: with(app("shop"), "x-nonce", nonce)})
	if err != nil || cr.GetOkResponse() == nil {
		t.Fatalf("check: %v %s", err, describe(cr))
	}
	st := procStream(t, srv)
	resp := procSend(t, st, &extprocv3.ProcessingRequest{MetadataContext: forwarded(cr), Request: &extprocv3.ProcessingRequest_RequestHeaders{
		RequestHeaders: procHeaders(false, ":method", "POST", ":path", "/v1/orders", "x-nonce", nonce)}})
	m := resp.GetModeOverride()
	if m.GetRequestBodyMode() != 0 || m.GetResponseHeaderMode() != 1 || m.GetResponseBodyMode() != 2 {
		t.Fatalf("mode %v, want no request body, response headers, buffered response body", m)
	}
	resp = procSend(t, st, &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{
		ResponseHeaders: procHeaders(false, ":status", "201", "content-type", "application/json")}})
	if resp.GetResponseHeaders() == nil {
		t.Fatalf("answer %v, want response headers CONTINUE", resp)
	}
	for i, part := range []string{`{"id":`, `42}`} {
		resp = procSend(t, st, &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{
			ResponseBody: &extprocv3.HttpBody{Body: []byte(part), EndOfStream: i == 1}}})
	}
	echo, ts, sig := signedHeaders(resp.GetResponseBody().GetResponse().GetHeaderMutation().GetSetHeaders())
	if echo != nonce || sig != hmacHex(signSecret, nonce, 201, ts, `{"id":42}`) {
		t.Fatalf("echo %q ts %q sig %q, want the nonce and the signature of the whole body", echo, ts, sig)
	}
	st.CloseSend()
	if _, err := st.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("stream end: %v", err)
	}
}

// TestEndToEndStreamCancelled: a stream Envoy abandons midway (the client went away
// before the upstream answered) ends cleanly and is counted as cancelled.
func TestEndToEndStreamCancelled(t *testing.T) {
	srv := startSignedServer(t)
	const nonce = "e2e-nonce-0000000003"
	cr, err := srv.check(t, request{path: "/v1/orders", headers: with(app("shop"), "x-nonce", nonce)})
	if err != nil || cr.GetOkResponse() == nil {
		t.Fatalf("check: %v %s", err, describe(cr))
	}
	ctx, cancel := context.WithCancel(context.Background())
	st, err := extprocv3.NewExternalProcessorClient(srv.conn).Process(ctx)
	if err != nil {
		t.Fatal(err)
	}
	procSend(t, st, &extprocv3.ProcessingRequest{MetadataContext: forwarded(cr), Request: &extprocv3.ProcessingRequest_RequestHeaders{
		RequestHeaders: procHeaders(true, ":method", "GET", ":path", "/v1/orders", "x-nonce", nonce)}})
	cancel()
	deadline := time.Now().Add(30 * time.Second) // only a stream that never ends takes this long
	for {
		if recs := srv.out.records("response"); len(recs) > 0 {
			if recs[0]["outcome"] != "cancel" || recs[0]["app"] != "shop" || recs[0]["decision_id"] == "" {
				t.Fatalf("log %v, want one cancelled exchange of app shop", recs[0])
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log line for the cancelled stream:\n%s", srv.out)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestEndToEndNonceReplayAcrossReplicas: an attacker replaying a captured request
// against another replica gets the same refusal: two Gatehouse servers share a real
// redis-server, whose records hold the replay marks.
func TestEndToEndNonceReplayAcrossReplicas(t *testing.T) {
	addr, _ := redisServer(t)
	dir := t.TempDir()
	cfg := fmt.Sprintf(signedConfig, sha("tok-shop")) + fmt.Sprintf("store: {type: redis, redis: {addrs: [%q], timeout: 1s}}\n", addr)
	for name, data := range map[string]string{"sign.key": signSecret, "public.key": "public-signing-secret-0123456789abcdef", "config.yaml": cfg} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	a := startServer(t, "--config", filepath.Join(dir, "config.yaml"))
	b := startServer(t, "--config", filepath.Join(dir, "config.yaml"))
	req := request{method: "POST", path: "/v1/orders", headers: with(app("shop"), "x-nonce", "e2e-nonce-replica-0001")}
	if cr, err := a.check(t, req); err != nil || cr.GetOkResponse() == nil {
		t.Fatalf("first use on replica a: %v %s", err, describe(cr))
	}
	cr, err := b.check(t, req)
	if err != nil {
		t.Fatal(err)
	}
	if dr := cr.GetDeniedResponse(); dr.GetStatus().GetCode() != 400 || bodyCode(t, dr.GetBody()) != "VALIDATION_ERROR" {
		t.Fatalf("replay on replica b: %s, want VALIDATION_ERROR 400", describe(cr))
	}
}
