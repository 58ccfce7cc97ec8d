package main

import (
	"context"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
)

// otlpReceiver is an OTLP/gRPC trace collector on loopback that keeps what it receives.
type otlpReceiver struct {
	collectortrace.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans []*tracepb.Span
	raw   [][]byte
}

func (r *otlpReceiver) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, _ := proto.Marshal(req)
	r.raw = append(r.raw, b)
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			r.spans = append(r.spans, ss.GetSpans()...)
		}
	}
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

func (r *otlpReceiver) snapshot() ([]*tracepb.Span, [][]byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*tracepb.Span(nil), r.spans...), append([][]byte(nil), r.raw...)
}

func spanAttr(s *tracepb.Span, k string) string {
	for _, kv := range s.GetAttributes() {
		if kv.GetKey() == k {
			v := kv.GetValue()
			switch {
			case v.GetStringValue() != "":
				return v.GetStringValue()
			case v.GetIntValue() != 0:
				return strconv.FormatInt(v.GetIntValue(), 10)
			default:
				return strconv.FormatBool(v.GetBoolValue())
			}
		}
	}
	return ""
}

// TestTracesReachOTLP starts a Gatehouse process with the standard OTEL_* variables pointing at a
// collector on loopback and checks the spans that arrive: Envoy's trace context is the
// parent, the decision span explains the verdict, child spans cover key fetches, and no
// credential or raw device id appears anywhere in the export.
func TestTracesReachOTLP(t *testing.T) {
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
	t.Setenv("OTEL_SERVICE_NAME", "gatehouse-test")

	p := newIDP(t)
	dir := t.TempDir()
	srv := startProcess(t, "--config", writeE2EConfig(t, dir, p)) // a real process, configured only by OTEL_* variables
	srv.waitReady(t)

	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	userTok := p.token(t, "k1", nil)
	secrets := []string{"tok-main", userTok, "provider-secret-123", "sealed-provider-key", "phone-secret-device-7"}
	send := func(r request) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ctx = metadata.AppendToOutgoingContext(ctx, "traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
		srv.auth.Check(ctx, envoyRequest(r))
	}
	send(request{path: "/v1/profile", headers: with(app("main"), "authorization", "Bearer "+userTok, "x-device-id", "phone-secret-device-7")})
	send(request{path: "/v1/proxy", headers: app("main")})
	send(request{path: "/v1/closed", headers: app("main")})
	send(request{path: "/v1/down", headers: with(app("erring"), "authorization", "Bearer "+userTok)})
	srv.stop(t) // flushes the exporter

	spans, raw := recv.snapshot()
	byName := map[string][]*tracepb.Span{}
	for _, s := range spans {
		byName[s.GetName()] = append(byName[s.GetName()], s)
	}
	// With Envoy's trace context in the metadata, the server span itself records the
	// decision: one span per Check, plus children for uncached work.
	if len(byName["envoy.service.auth.v3.Authorization/Check"]) != 4 || len(byName["gatehouse.decision"]) != 0 {
		t.Fatalf("spans received: %d server, %d separate decision", len(byName["envoy.service.auth.v3.Authorization/Check"]), len(byName["gatehouse.decision"]))
	}
	if len(byName["gatehouse.jwks.fetch"]) == 0 || len(byName["gatehouse.jwt.verify"]) == 0 {
		t.Errorf("child spans missing: %v", keys(byName))
	}
	got := map[string]*tracepb.Span{}
	for _, s := range byName["envoy.service.auth.v3.Authorization/Check"] {
		if hexID(s.GetTraceId()) != traceID {
			t.Errorf("decision span outside Envoy's trace: %s", hexID(s.GetTraceId()))
		}
		got[spanAttr(s, "gatehouse.endpoint")] = s
	}
	if s := got["profile"]; spanAttr(s, "gatehouse.decision") != "allow" || spanAttr(s, "gatehouse.config.version") == "" {
		t.Errorf("profile span: %v", s.GetAttributes())
	}
	if s := got["closed"]; spanAttr(s, "gatehouse.code") != "ENDPOINT_DISABLED" || spanAttr(s, "gatehouse.http_status") != "403" || s.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR {
		t.Errorf("deny span: %v %v", s.GetAttributes(), s.GetStatus())
	}
	if s := got["downstream"]; spanAttr(s, "gatehouse.decision") != "error" || s.GetStatus().GetCode() != tracepb.Status_STATUS_CODE_ERROR {
		t.Errorf("undecided span: %v %v", s.GetAttributes(), s.GetStatus())
	}
	for _, b := range raw {
		for _, secret := range secrets {
			if strings.Contains(string(b), secret) {
				t.Errorf("an exported span contains a secret (%.8s…)", secret)
			}
		}
	}
}

func hexID(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

func keys(m map[string][]*tracepb.Span) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestMetricsCountDecisions scrapes /metrics after a scripted mix of requests.
func TestMetricsCountDecisions(t *testing.T) {
	p := newIDP(t)
	srv := startServer(t, "--config", writeE2EConfig(t, t.TempDir(), p))
	srv.waitReady(t)
	mix := []struct {
		r    request
		n    int
		line string
	}{
		{request{path: "/v1/hello", headers: app("main")}, 5, `gatehouse_decisions_total{app="main",code="",decision="allow",dialect="protectmyapi",endpoint="hello"}`},
		{request{path: "/v1/hello"}, 3, `gatehouse_decisions_total{app="",code="UNAUTHORIZED",decision="deny",dialect="protectmyapi",endpoint="hello"}`},
		{request{path: "/v1/closed", headers: app("gen")}, 2, `gatehouse_decisions_total{app="gen",code="ENDPOINT_DISABLED",decision="deny",dialect="generic",endpoint="closed"}`},
		{request{path: "/v1/anything-at-all-" + strconv.Itoa(7), headers: app("main")}, 4, `gatehouse_decisions_total{app="main",code="ENDPOINT_NOT_FOUND",decision="deny",dialect="protectmyapi",endpoint=""}`},
	}
	for _, m := range mix {
		for i := 0; i < m.n; i++ {
			srv.check(t, m.r)
		}
	}
	body := srv.body(t, "/metrics")
	for _, m := range mix {
		re := regexp.MustCompile(regexp.QuoteMeta(m.line) + ` (\d+)`)
		sub := re.FindStringSubmatch(body)
		if sub == nil || sub[1] != strconv.Itoa(m.n) {
			t.Errorf("%s: got %v, want %d", m.line, sub, m.n)
		}
	}
	if !regexp.MustCompile(`gatehouse_check_duration_seconds_count\{decision="deny"\} 9`).MatchString(body) {
		t.Error("check duration histogram does not count the 9 denials")
	}
	if strings.Contains(body, "anything-at-all") {
		t.Error("a request path became a label value")
	}
}
