package main

// End-to-end: the span attributes an operator's trace backend receives over OTLP from a
// real Gatehouse process: the request id under Gatehouse's namespace, store spans named
// after their command and server, error.type on the span of a decision that could not be
// made.

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy/attest/attesttest"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

const spansE2EConfig = `
store: {type: redis, redis: {addrs: ["{{REDIS}}"], timeout: 1s}}
jwt_providers:
  - {name: idp, issuer: https://id.test, audiences: [api], jwks: {url: "{{JWKS}}", allow_http: true, min_refresh: 1h}}
apps:
  - {name: main, app_token_sha256: ["{{T:main}}"], endpoints: ["*"]}
  - {name: erring, fail_mode: error, app_token_sha256: ["{{T:erring}}"], endpoints: ["*"]}
endpoints:
  - {name: api, path: /v1/api, user: {provider: idp}}
  - name: limited
    path: /v1/limited
    limits: [{name: per_app, key: [app], requests: 100, per: 1h}]
`

func TestSpanAttributesOverOTLP(t *testing.T) {
	recv := &otlpReceiver{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(g, recv)
	go g.Serve(l)
	defer g.Stop()
	t.Setenv("OTEL_TRACES_EXPORTER", "otlp")
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+l.Addr().String())
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "50")

	redisAddr, _ := redisServer(t)
	keys := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "key service down", http.StatusInternalServerError)
	}))
	defer keys.Close()
	cfg := strings.NewReplacer("{{REDIS}}", redisAddr, "{{JWKS}}", keys.URL+"/keys").Replace(spansE2EConfig)
	srv := startProcess(t, "--config", writeConfig(t, t.TempDir(), cfg))
	srv.waitReady(t)

	jwt := "Bearer " + attesttest.Sign(t, attesttest.NewKey(t, "ES256", "no-such-kid"),
		attesttest.Claims{"iss": "https://id.test", "aud": "api", "sub": "u", "exp": time.Now().Add(time.Hour).Unix()}, nil)
	send := func(r request) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ctx = metadata.AppendToOutgoingContext(ctx, "traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
		srv.auth.Check(ctx, envoyRequest(r))
	}
	send(request{path: "/v1/limited", headers: app("main")})
	send(request{path: "/v1/api", headers: with(app("erring"), "authorization", jwt)})
	srv.stop(t) // flushes the exporter

	spans, _ := recv.snapshot()
	decisions := map[string]*tracepb.Span{}
	var store []*tracepb.Span
	for _, s := range spans {
		switch s.GetName() {
		case "envoy.service.auth.v3.Authorization/Check":
			decisions[spanAttr(s, "gatehouse.endpoint")] = s
		case "gatehouse.store":
			store = append(store, s)
		}
	}
	_, redisPort, _ := net.SplitHostPort(redisAddr)
	if len(store) != 1 {
		t.Fatalf("%d store spans, want 1 (the limited request's round trip)", len(store))
	}
	for k, want := range map[string]string{"db.system.name": "redis", "db.operation.name": "INCRBY", "server.address": "127.0.0.1", "server.port": redisPort} {
		if got := spanAttr(store[0], k); got != want {
			t.Errorf("store span: %s = %q, want %q", k, got, want)
		}
	}
	if s := decisions["limited"]; s == nil || spanAttr(s, "gatehouse.request_id") != "req-1" || spanAttr(s, "envoy.request_id") != "" {
		t.Errorf("limited: gatehouse.request_id %q, envoy.request_id %q; want req-1 and none", spanAttr(s, "gatehouse.request_id"), spanAttr(s, "envoy.request_id"))
	}
	if s := decisions["api"]; s == nil || spanAttr(s, "error.type") != "undecided" || s.GetStatus().GetCode() != tracepb.Status_STATUS_CODE_ERROR {
		t.Errorf("undecided decision span: %v %v, want error.type undecided and status Error", s.GetAttributes(), s.GetStatus())
	}
	if s := decisions["limited"]; spanAttr(s, "error.type") != "" {
		t.Errorf("an allowed decision has error.type %q", spanAttr(s, "error.type"))
	}
}
