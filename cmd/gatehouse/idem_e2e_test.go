package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
)

// idemConfig has an orders endpoint with idempotency keys (app main, generic dialect;
// the caller is the attested device) and a login endpoint with the login lockout (app
// pk, protekt dialect), on the Redis at addr: 3 failures within an hour lock for an hour.
func idemConfig(addr string) string {
	return fmt.Sprintf(`
store: {type: redis, redis: {addrs: ["%s"], timeout: 1s}}
lockout: {max_failures: 3, window: 1h, lock_for: 1h, key: [ip, account]}
apps:
  - name: main
    dialect: generic
    app_token_sha256: ["{{T:main}}"]
    endpoints: ["*"]
    attestation:
      providers:
`+demoTokenProviderYAML+`  - {name: pk, dialect: protekt, app_token_sha256: ["{{T:pk}}"], endpoints: [login]}
endpoints:
  - name: orders
    path: /v1/orders
    methods: [POST]
    attestation: require
    response:
      idempotency: {replay_headers: [content-type, location]}
  - name: login
    path: /v1/login
    methods: [POST]
    response:
      login: {account_field: email}
`, addr)
}

// deviceTokens mints demo attestation tokens for n devices.
func deviceTokens(t *testing.T, n int) []string {
	t.Helper()
	var out, errOut bytes.Buffer
	if err := demoToken([]string{"--count", strconv.Itoa(n), "--device", "phone"}, &out, &errOut); err != nil {
		t.Fatalf("demo-token: %v %s", err, errOut.String())
	}
	var toks []string
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		_, tok, _ := strings.Cut(line, "\t")
		toks = append(toks, tok)
	}
	return toks
}

// httpExchange is one HTTP exchange Envoy runs through Check, then Process: the
// request, and the upstream's answer if Gatehouse lets it through.
type httpExchange struct {
	req      request
	status   string // the upstream's
	respBody string
}

// procExchange is an exchange's Process stream, driven phase by phase as Envoy does.
type procExchange struct {
	t  *testing.T
	st extprocv3.ExternalProcessor_ProcessClient
	x  httpExchange
}

// begin runs Check on s, then sends the request headers and body to Process; ir is
// Gatehouse's immediate answer, if it gave one.
func begin(t *testing.T, s *testServer, x httpExchange) (p *procExchange, ir *extprocv3.ImmediateResponse) {
	t.Helper()
	cr, err := s.check(t, x.req)
	if err != nil || cr.GetOkResponse() == nil {
		t.Fatalf("check: %v %s", err, describe(cr))
	}
	return beginProcess(t, s, cr, x)
}

func beginProcess(t *testing.T, s *testServer, cr *authv3.CheckResponse, x httpExchange) (*procExchange, *extprocv3.ImmediateResponse) {
	t.Helper()
	p := &procExchange{t: t, st: procStream(t, s), x: x}
	kv := []string{":method", x.req.method, ":path", x.req.path}
	for k, v := range x.req.headers {
		kv = append(kv, k, v)
	}
	resp := procSend(t, p.st, &extprocv3.ProcessingRequest{MetadataContext: forwarded(cr),
		Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: procHeaders(x.req.body == "", kv...)}})
	if ir := resp.GetImmediateResponse(); ir != nil {
		return p, p.ended(ir)
	}
	if x.req.body != "" {
		resp = procSend(t, p.st, &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{
			RequestBody: &extprocv3.HttpBody{Body: []byte(x.req.body), EndOfStream: true}}})
		if ir := resp.GetImmediateResponse(); ir != nil {
			return p, p.ended(ir)
		}
	}
	return p, nil
}

// finish sends the upstream's response and ends the stream; ir is Gatehouse's
// replacement, if it gave one.
func (p *procExchange) finish() (ir *extprocv3.ImmediateResponse) {
	t := p.t
	t.Helper()
	resp := procSend(t, p.st, &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{
		ResponseHeaders: procHeaders(p.x.respBody == "", ":status", p.x.status, "content-type", "application/json", "location", "/v1/orders/7")}})
	if ir := resp.GetImmediateResponse(); ir != nil {
		return p.ended(ir)
	}
	if p.x.respBody != "" && resp.GetResponseHeaders() != nil {
		resp = procSend(t, p.st, &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{
			ResponseBody: &extprocv3.HttpBody{Body: []byte(p.x.respBody), EndOfStream: true}}})
		if ir := resp.GetImmediateResponse(); ir != nil {
			return p.ended(ir)
		}
	}
	p.st.CloseSend()
	if _, err := p.st.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("stream end: %v", err)
	}
	return nil
}

// ended waits for the end of a stream Gatehouse ended with ir.
func (p *procExchange) ended(ir *extprocv3.ImmediateResponse) *extprocv3.ImmediateResponse {
	if _, err := p.st.Recv(); !errors.Is(err, io.EOF) {
		p.t.Fatalf("stream end after an immediate response: %v", err)
	}
	return ir
}

// runExchange is one whole exchange; ir is Gatehouse's answer when it gave one.
func runExchange(t *testing.T, s *testServer, x httpExchange) *extprocv3.ImmediateResponse {
	t.Helper()
	p, ir := begin(t, s, x)
	if ir != nil {
		return ir
	}
	return p.finish()
}

// wantAnswer checks Gatehouse's answer: its status and the "code" (generic) or "error"
// (protekt) of its body.
func wantAnswer(t *testing.T, ir *extprocv3.ImmediateResponse, status int, code string) {
	t.Helper()
	if ir == nil {
		t.Fatalf("went to the upstream, want %d %s", status, code)
	}
	var b struct{ Code, Error string }
	_ = json.Unmarshal(ir.GetBody(), &b)
	if int(ir.GetStatus().GetCode()) != status || (b.Code != code && b.Error != code) {
		t.Fatalf("answer %d %s, want %d %s", ir.GetStatus().GetCode(), ir.GetBody(), status, code)
	}
}

func irHeader(ir *extprocv3.ImmediateResponse, name string) string {
	for _, h := range ir.GetHeaders().GetSetHeaders() {
		if h.GetHeader().GetKey() == name {
			return string(h.GetHeader().GetRawValue())
		}
	}
	return ""
}

// redisPings is how many PINGs the redis-server at addr has answered (INFO
// commandstats): the replicas' readiness checks, once a second each.
func redisPings(t *testing.T, addr string) int {
	t.Helper()
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Skip("redis-cli is not installed: it reads the server's command counts")
	}
	host, port, _ := net.SplitHostPort(addr)
	out, err := exec.Command(cli, "-h", host, "-p", port, "INFO", "commandstats").Output()
	if err != nil {
		t.Fatalf("redis-cli INFO: %v", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_ping:calls="); ok {
			calls, _, _ := strings.Cut(rest, ",")
			n, err := strconv.Atoi(calls)
			if err != nil {
				t.Fatalf("INFO commandstats line %q", line)
			}
			return n
		}
	}
	return 0
}

// roundTrips returns the Redis round trips replica s makes while the step prepare
// returns runs, from its store metrics
// (gatehouse_store_request_duration_seconds_count{backend="redis"}). The metric counts
// the readiness pings too: a measure during which Redis answered a ping is taken again,
// with a fresh step (prepare(i) for the i-th try, not measured).
func roundTrips(t *testing.T, s *testServer, addr string, prepare func(i int) func()) int {
	t.Helper()
	const series = `gatehouse_store_request_duration_seconds_count{backend="redis"}`
	for i := range 20 {
		step := prepare(i)
		p0, m0 := redisPings(t, addr), metricValue(t, s.body(t, "/metrics"), series)
		step()
		m1, p1 := metricValue(t, s.body(t, "/metrics"), series), redisPings(t, addr)
		if p1 == p0 {
			return int(m1 - m0)
		}
	}
	t.Fatal("every measure overlapped a readiness ping")
	return 0
}

func order(tok, key, body string) httpExchange {
	return httpExchange{req: request{method: "POST", path: "/v1/orders", body: body,
		headers: with(app("main"), "x-attestation-token", tok, "idempotency-key", key)}, status: "201", respBody: `{"id":7}`}
}

// TestEndToEndIdempotencyReplicas: two Gatehouse processes share one redis-server. A
// duplicate sent to the second replica while the first request is in flight on the
// first is CONFLICT-409; once the first completes, a repeat on the second gets the
// stored response replayed, without the upstream; another body is a conflict; another
// device's same key is its own. Each phase costs one Redis round trip.
func TestEndToEndIdempotencyReplicas(t *testing.T) {
	addr, _ := redisServer(t)
	path := writeConfig(t, t.TempDir(), idemConfig(addr))
	a, b := startProcess(t, "--config", path), startProcess(t, "--config", path)
	a.waitReady(t)
	b.waitReady(t)
	toks := deviceTokens(t, 2)

	first, ir := begin(t, a, order(toks[0], "k-1", `{"sku":"a"}`))
	if ir != nil {
		t.Fatalf("first request answered %d %s", ir.GetStatus().GetCode(), ir.GetBody())
	}
	wantAnswer(t, runExchange(t, b, order(toks[0], "k-1", `{"sku":"a"}`)), 409, "CONFLICT-409")
	if ir := first.finish(); ir != nil {
		t.Fatalf("first response replaced: %d %s", ir.GetStatus().GetCode(), ir.GetBody())
	}
	// What each phase of a first request costs, on fresh keys (Check's own round trips
	// are not counted).
	cr, err := a.check(t, order(toks[0], "m", `{"sku":"a"}`).req)
	if err != nil || cr.GetOkResponse() == nil {
		t.Fatalf("check: %v %s", err, describe(cr))
	}
	var open []*procExchange
	requestPhase := roundTrips(t, a, addr, func(i int) func() {
		return func() {
			p, _ := beginProcess(t, a, cr, order(toks[0], fmt.Sprintf("m-%d", i), `{"sku":"a"}`))
			open = append(open, p)
		}
	})
	for _, p := range open { // ended outside any measure
		p.finish()
	}
	responsePhase := roundTrips(t, a, addr, func(i int) func() {
		p, _ := beginProcess(t, a, cr, order(toks[0], fmt.Sprintf("n-%d", i), `{"sku":"a"}`))
		return func() { p.finish() }
	})
	if requestPhase != 1 || responsePhase != 1 {
		t.Errorf("Redis round trips: %d in the request phase, %d in the response phase; want 1 each", requestPhase, responsePhase)
	}
	t.Logf("idempotency: %d Redis round trip(s) in the request phase, %d in the response phase", requestPhase, responsePhase)

	ir = runExchange(t, b, order(toks[0], "k-1", `{"sku":"a"}`))
	if ir == nil || ir.GetStatus().GetCode() != 201 || string(ir.GetBody()) != `{"id":7}` ||
		irHeader(ir, "idempotent-replayed") != "true" || irHeader(ir, "location") != "/v1/orders/7" {
		t.Fatalf("repeat on the other replica: %v, want the stored 201 replayed", ir)
	}
	wantAnswer(t, runExchange(t, b, order(toks[0], "k-1", `{"sku":"b"}`)), 409, "CONFLICT-409")
	if ir := runExchange(t, b, order(toks[1], "k-1", `{"sku":"a"}`)); ir != nil {
		t.Fatalf("another device's key answered %d %s", ir.GetStatus().GetCode(), ir.GetBody())
	}
}

// TestEndToEndIdempotencyCancelled: a stream cancelled midway (after the request, before
// any response) releases its in-flight mark: the client's retry, on another replica,
// proceeds.
func TestEndToEndIdempotencyCancelled(t *testing.T) {
	addr, _ := redisServer(t)
	path := writeConfig(t, t.TempDir(), idemConfig(addr))
	a, b := startProcess(t, "--config", path), startProcess(t, "--config", path)
	a.waitReady(t)
	b.waitReady(t)
	tok := deviceTokens(t, 1)[0]
	cr, err := a.check(t, order(tok, "k-1", "{}").req)
	if err != nil || cr.GetOkResponse() == nil {
		t.Fatalf("check: %v %s", err, describe(cr))
	}
	// Envoy resets the stream when the client goes away: the stream's context ends.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := extprocv3.NewExternalProcessorClient(a.conn).Process(ctx)
	if err != nil {
		t.Fatal(err)
	}
	procSend(t, st, &extprocv3.ProcessingRequest{MetadataContext: forwarded(cr), Request: &extprocv3.ProcessingRequest_RequestHeaders{
		RequestHeaders: procHeaders(false, ":method", "POST", ":path", "/v1/orders", "idempotency-key", "k-1")}})
	if r := procSend(t, st, &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{
		RequestBody: &extprocv3.HttpBody{Body: []byte("{}"), EndOfStream: true}}}); r.GetImmediateResponse() != nil {
		t.Fatalf("first request answered %v", r)
	}
	wantAnswer(t, runExchange(t, b, order(tok, "k-1", "{}")), 409, "CONFLICT-409")
	cancel()
	waitUntil(t, "the cancelled exchange to be logged", func() bool {
		for _, r := range a.out.records("response") {
			if r["outcome"] == "cancel" {
				return true
			}
		}
		return false
	})
	if ir := runExchange(t, b, order(tok, "k-1", "{}")); ir != nil {
		t.Fatalf("retry after a cancelled stream answered %d %s", ir.GetStatus().GetCode(), ir.GetBody())
	}
}

func loginAttempt(email, source, status string) httpExchange {
	return httpExchange{req: request{method: "POST", path: "/v1/login", source: source, headers: app("pk"),
		body: `{"email":"` + email + `","password":"guess"}`}, status: status}
}

// TestEndToEndLoginLockoutReplicas: failed logins counted on two replicas that share
// Redis lock the account on both: the next attempt, from another address and in another
// spelling, is refused before the upstream with account_locked 423 and Retry-After. The
// failures also count against the address, which Check then refuses on every endpoint.
// The check costs one Redis round trip.
func TestEndToEndLoginLockoutReplicas(t *testing.T) {
	addr, _ := redisServer(t)
	path := writeConfig(t, t.TempDir(), idemConfig(addr))
	a, b := startProcess(t, "--config", path), startProcess(t, "--config", path)
	a.waitReady(t)
	b.waitReady(t)
	for i, s := range []*testServer{a, b, a} {
		if ir := runExchange(t, s, loginAttempt("victim@example.com", "192.0.2.1", "401")); ir != nil {
			t.Fatalf("attempt %d refused: %s", i+1, ir.GetBody())
		}
	}
	x := loginAttempt(" Victim@Example.COM", "198.51.100.7", "200")
	cr, err := b.check(t, x.req)
	if err != nil || cr.GetOkResponse() == nil {
		t.Fatalf("check: %v %s", err, describe(cr))
	}
	var ir *extprocv3.ImmediateResponse
	checked := roundTrips(t, b, addr, func(int) func() { return func() { _, ir = beginProcess(t, b, cr, x) } })
	wantAnswer(t, ir, 423, "account_locked")
	if v := irHeader(ir, "retry-after"); v != "3600" && v != "3599" {
		t.Fatalf("retry-after %q, want 3600 (or 3599 if a second passed)", v)
	}
	if checked != 1 {
		t.Errorf("the lockout check took %d Redis round trips, want 1", checked)
	}
	t.Logf("login lockout: %d Redis round trip(s) before the upstream", checked)
	// The address that failed three times is locked for Check too.
	cr, err = a.check(t, loginAttempt("other@example.com", "192.0.2.1", "200").req)
	if err != nil || cr.GetDeniedResponse() == nil || cr.GetDeniedResponse().GetStatus().GetCode() != 423 {
		t.Fatalf("check from the locked address: %v %s, want account_locked 423", err, describe(cr))
	}
}
