package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
)

// A body ended by trailers comes from Envoy's BUFFERED mode with end_of_stream false,
// then the trailers. These cases drive that shape over real gRPC.

func trailersReq(response bool) *extprocv3.ProcessingRequest {
	if response {
		return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseTrailers{
			ResponseTrailers: &extprocv3.HttpTrailers{}}}
	}
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestTrailers{
		RequestTrailers: &extprocv3.HttpTrailers{}}}
}

// TestEndToEndLoginTrailersStillLocked: after three failed logins on the memory store,
// a login body ended by trailers is refused with account_locked 423 at the trailers,
// before the upstream sees it.
func TestEndToEndLoginTrailersStillLocked(t *testing.T) {
	dir := t.TempDir()
	cfg := fmt.Sprintf(`
lockout: {max_failures: 3, window: 1h, lock_for: 1h, key: [ip, account]}
apps:
  - {name: pk, dialect: protekt, app_token_sha256: ["%s"], endpoints: [login]}
endpoints:
  - {name: login, path: /v1/login, methods: [POST], response: {login: {account_field: email}}}
`, sha("tok-pk"))
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, "--config", path)
	for i := range 3 {
		x := loginAttempt("victim@example.com", "192.0.2.1", "401")
		x.req.headers = app("pk")
		if ir := runExchange(t, s, x); ir != nil {
			t.Fatalf("attempt %d refused: %s", i+1, ir.GetBody())
		}
	}
	x := loginAttempt("victim@example.com", "198.51.100.7", "200")
	cr, err := s.check(t, x.req)
	if err != nil || cr.GetOkResponse() == nil {
		t.Fatalf("check: %v %s", err, describe(cr))
	}
	st := procStream(t, s)
	procSend(t, st, &extprocv3.ProcessingRequest{MetadataContext: forwarded(cr), Request: &extprocv3.ProcessingRequest_RequestHeaders{
		RequestHeaders: procHeaders(false, ":method", "POST", ":path", "/v1/login")}})
	resp := procSend(t, st, &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{
		RequestBody: &extprocv3.HttpBody{Body: []byte(x.req.body), EndOfStream: false}}})
	if resp.GetImmediateResponse() != nil {
		t.Fatalf("body answered before its trailers: %v", resp)
	}
	ir := procSend(t, st, trailersReq(false)).GetImmediateResponse()
	wantAnswer(t, ir, 423, "account_locked")
	if _, err := st.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("stream end: %v", err)
	}
}

// TestEndToEndSignedTrailersFailClosed: a signed upstream response ended by trailers
// cannot carry its signature; the client gets a signed INVALID_RESPONSE instead of the
// upstream's body unsigned.
func TestEndToEndSignedTrailersFailClosed(t *testing.T) {
	srv := startSignedServer(t)
	const nonce = "e2e-nonce-trailers-0001"
	cr, err := srv.check(t, request{path: "/v1/orders", headers: with(app("shop"), "x-nonce", nonce)})
	if err != nil || cr.GetOkResponse() == nil {
		t.Fatalf("check: %v %s", err, describe(cr))
	}
	st := procStream(t, srv)
	m := procSend(t, st, &extprocv3.ProcessingRequest{MetadataContext: forwarded(cr), Request: &extprocv3.ProcessingRequest_RequestHeaders{
		RequestHeaders: procHeaders(true, ":method", "GET", ":path", "/v1/orders", "x-nonce", nonce)}}).GetModeOverride()
	if m.GetResponseTrailerMode() != 1 { // SEND
		t.Fatalf("mode %v, want the response trailers sent", m)
	}
	procSend(t, st, &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{
		ResponseHeaders: procHeaders(false, ":status", "200")}})
	procSend(t, st, &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{
		ResponseBody: &extprocv3.HttpBody{Body: []byte(`{"secret":"upstream"}`), EndOfStream: false}}})
	ir := procSend(t, st, trailersReq(true)).GetImmediateResponse()
	if ir == nil || ir.GetStatus().GetCode() != 502 {
		t.Fatalf("trailers answered %v, want 502 INVALID_RESPONSE", ir)
	}
	echo, ts, sig := signedHeaders(ir.GetHeaders().GetSetHeaders())
	if echo != nonce || sig != hmacHex(signSecret, nonce, 502, ts, string(ir.GetBody())) {
		t.Fatalf("echo %q ts %q sig %q: the refusal is not signed", echo, ts, sig)
	}
}

// TestEndToEndSignedServedAnswer: on an app that signs its responses, an answer
// Gatehouse serves itself (here the session JWKS) carries the echoed nonce and a
// signature that verifies, like the app's other responses.
func TestEndToEndSignedServedAnswer(t *testing.T) {
	dir := t.TempDir()
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`
sessions:
  keys: [{id: k1, file: k1.pem}]
  active_key: k1
apps:
  - name: shop
    app_token_sha256: ["%s"]
    endpoints: ["*"]
    response: {sign: {secret_file: sign.key}}
endpoints:
  - {name: jwks, path: /.well-known/session-jwks.json, methods: [GET], serve: jwks}
`, sha("tok-shop"))
	for name, b := range map[string][]byte{"k1.pem": pkcs8(t, ec), "sign.key": []byte(signSecret), "config.yaml": []byte(cfg)} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	srv := startServer(t, "--config", filepath.Join(dir, "config.yaml"))
	const nonce = "e2e-nonce-served-00001"
	cr, err := srv.check(t, request{method: "GET", path: "/.well-known/session-jwks.json", headers: with(app("shop"), "x-nonce", nonce)})
	dr := cr.GetDeniedResponse()
	if err != nil || dr.GetStatus().GetCode() != 200 || !strings.Contains(dr.GetBody(), `"keys"`) {
		t.Fatalf("served: %v %s", err, describe(cr))
	}
	echo, ts, sig := signedHeaders(dr.GetHeaders())
	if echo != nonce || sig != hmacHex(signSecret, nonce, 200, ts, dr.GetBody()) {
		t.Fatalf("echo %q ts %q sig %q: the served answer is not signed", echo, ts, sig)
	}
}

// TestEndToEndClaimedDeviceIsNoCaller: on an app that trusts the x-device-id header, a
// client without a user token or an attested device has no caller to scope an
// idempotency key by, whatever device id it claims: the key is refused with
// UNAUTHORIZED before the upstream, so it can never be answered with the stored
// responses of the device whose id it sent.
func TestEndToEndClaimedDeviceIsNoCaller(t *testing.T) {
	dir := t.TempDir()
	cfg := fmt.Sprintf(`
apps:
  - name: main
    dialect: generic
    app_token_sha256: ["%s"]
    endpoints: ["*"]
    devices: {trust_device_header: true}
endpoints:
  - {name: orders, path: /v1/orders, methods: [POST], response: {idempotency: {}}}
`, sha("tok-main"))
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, "--config", path)
	x := httpExchange{req: request{method: "POST", path: "/v1/orders", body: "{}",
		headers: with(app("main"), "x-device-id", "victim-device-1", "idempotency-key", "k-1")}, status: "201", respBody: `{"id":7}`}
	wantAnswer(t, runExchange(t, s, x), 401, "AUTH-401")
}

// TestEndToEndStreamStartsAtResponse: a filter misconfigured not to send the request
// headers opens the stream at the response; on a signed route Gatehouse answers a signed
// SERVICE_UNAVAILABLE instead of letting the upstream's body through unsigned.
func TestEndToEndStreamStartsAtResponse(t *testing.T) {
	srv := startSignedServer(t)
	const nonce = "e2e-nonce-noheaders-001"
	cr, err := srv.check(t, request{path: "/v1/orders", headers: with(app("shop"), "x-nonce", nonce)})
	if err != nil || cr.GetOkResponse() == nil {
		t.Fatalf("check: %v %s", err, describe(cr))
	}
	st := procStream(t, srv)
	ir := procSend(t, st, &extprocv3.ProcessingRequest{MetadataContext: forwarded(cr), Request: &extprocv3.ProcessingRequest_ResponseHeaders{
		ResponseHeaders: procHeaders(false, ":status", "200")}}).GetImmediateResponse()
	if ir == nil || ir.GetStatus().GetCode() != 503 {
		t.Fatalf("answered %v, want 503 SERVICE_UNAVAILABLE", ir)
	}
	_, ts, sig := signedHeaders(ir.GetHeaders().GetSetHeaders())
	if sig != hmacHex(signSecret, "", 503, ts, string(ir.GetBody())) {
		t.Fatalf("ts %q sig %q: the refusal is not signed", ts, sig)
	}
}
