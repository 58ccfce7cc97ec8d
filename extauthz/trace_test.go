package extauthz_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/gatehouse/gatehouse/config"
	"github.com/gatehouse/gatehouse/extauthz"
	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/telemetry"
	"go.opentelemetry.io/contrib/propagators/b3"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
)

type traced struct {
	rec    *tracetest.SpanRecorder
	client authv3.AuthorizationClient
	health healthpb.HealthClient
	rules  **policy.Rules
}

// tracedServer runs the real adapter on loopback gRPC with the otelgrpc stats handler
// and a span recorder, the way serve wires them.
func tracedServer(t *testing.T, mode extauthz.UserParent) *traced {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	prop := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{},
		b3.New(b3.WithInjectEncoding(b3.B3MultipleHeader|b3.B3SingleHeader)))
	snap, err := config.LoadBytes(config.Demo, config.DemoPath, config.Deps{Offline: true})
	if err != nil {
		t.Fatal(err)
	}
	rules := snap.Rules
	g := grpc.NewServer(grpc.StatsHandler(telemetry.ServerHandler(tp, prop)))
	authv3.RegisterAuthorizationServer(g, extauthz.NewServer(func() *policy.Rules { return rules }, extauthz.Options{
		Tracing: extauthz.NewTracing(tp.Tracer("test"), prop, mode, []byte("k"))}))
	healthpb.RegisterHealthServer(g, health.NewServer())
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve(l)
	t.Cleanup(g.Stop)
	conn, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &traced{rec: rec, client: authv3.NewAuthorizationClient(conn), health: healthpb.NewHealthClient(conn), rules: &rules}
}

const (
	envoyTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	envoySpan  = "00f067aa0ba902b7"
	userTrace  = "0af7651916cd43dd8448eb211c80319c"
	userSpan   = "b7ad6b7169203331"
)

func checkReq(headers map[string]string) *authv3.CheckRequest {
	h := map[string]string{":method": "GET", ":path": "/v1/hello", "x-app-token": "demo-app-token"}
	for k, v := range headers {
		h[k] = v
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
		Http: &authv3.AttributeContext_HttpRequest{Id: "req-42", Method: "GET", Path: "/v1/hello", Headers: h}}}}
}

func (tr *traced) call(t *testing.T, md metadata.MD, headers map[string]string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if md != nil {
		ctx = metadata.NewOutgoingContext(ctx, md)
	}
	if _, err := tr.client.Check(ctx, checkReq(headers)); err != nil {
		t.Fatal(err)
	}
}

// settle waits until the server span of the last call has ended: gRPC ends it after the
// response is on its way, so it can trail the client's return.
func (tr *traced) settle() {
	deadline := time.Now().Add(30 * time.Second) // only a span that never ends takes this long
	for time.Now().Before(deadline) {
		for _, s := range tr.rec.Ended() {
			if s.Name() == "envoy.service.auth.v3.Authorization/Check" {
				return
			}
		}
		time.Sleep(time.Millisecond)
	}
}

func (tr *traced) spans(t *testing.T) (server, decision sdktrace.ReadOnlySpan) {
	t.Helper()
	tr.settle()
	for _, s := range tr.rec.Ended() {
		switch s.Name() {
		case "envoy.service.auth.v3.Authorization/Check":
			server = s
		case "gatehouse.decision":
			decision = s
		}
	}
	if server == nil {
		t.Fatalf("server span missing: %v", names(tr.rec.Ended()))
	}
	if decision == nil { // the usual case: the server span records the decision
		decision = server
	}
	return server, decision
}

func names(ss []sdktrace.ReadOnlySpan) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s.Name())
	}
	return out
}

func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		m[kv.Key] = kv.Value
	}
	return m
}

func TestTraceParents(t *testing.T) {
	userTP := "00-" + userTrace + "-" + userSpan + "-01"
	envoyTP := "00-" + envoyTrace + "-" + envoySpan + "-01"
	cases := []struct {
		name         string
		mode         extauthz.UserParent
		md           metadata.MD
		headers      map[string]string
		trace        string // the decision span's trace id
		serverParent string // the server span's remote parent
		link         string // a linked trace id, "" for none
	}{
		{"traceparent metadata", extauthz.UserParentAsParent, metadata.Pairs("traceparent", envoyTP), nil, envoyTrace, envoySpan, ""},
		{"b3 multi metadata", extauthz.UserParentAsParent, metadata.Pairs("x-b3-traceid", envoyTrace, "x-b3-spanid", envoySpan, "x-b3-sampled", "1"), nil, envoyTrace, envoySpan, ""},
		{"b3 single metadata", extauthz.UserParentAsParent, metadata.Pairs("b3", envoyTrace+"-"+envoySpan+"-1"), nil, envoyTrace, envoySpan, ""},
		{"user traceparent without envoy context", extauthz.UserParentAsParent, nil, map[string]string{"traceparent": userTP}, userTrace, "", "server"},
		{"both differ: user linked", extauthz.UserParentAsParent, metadata.Pairs("traceparent", envoyTP), map[string]string{"traceparent": userTP}, envoyTrace, envoySpan, userTrace},
		{"link mode never parents", extauthz.UserParentLink, nil, map[string]string{"traceparent": userTP}, "", "", userTrace},
		{"off ignores the user", extauthz.UserParentOff, nil, map[string]string{"traceparent": userTP}, "", "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tr := tracedServer(t, tc.mode)
			tr.call(t, tc.md, tc.headers)
			server, decision := tr.spans(t)
			if tc.serverParent != "" {
				if got := server.Parent().SpanID().String(); got != tc.serverParent || !server.Parent().IsRemote() {
					t.Errorf("server span parent %s, want remote %s", got, tc.serverParent)
				}
			}
			switch {
			case tc.trace != "" && decision.SpanContext().TraceID().String() != tc.trace:
				t.Errorf("decision span in trace %s, want %s", decision.SpanContext().TraceID(), tc.trace)
			case tc.trace == "" && decision.SpanContext().TraceID() != server.SpanContext().TraceID():
				t.Errorf("decision span left the server span's trace")
			}
			if separate := decision != server; separate != (tc.trace == userTrace) {
				t.Errorf("separate decision span: %v, want one only when the user's context is the parent", separate)
			}
			if tc.trace == userTrace && decision.Parent().SpanID().String() != userSpan {
				t.Errorf("decision span's parent %s, want the user's span", decision.Parent().SpanID())
			}
			var links []string
			for _, l := range decision.Links() {
				links = append(links, l.SpanContext.TraceID().String())
			}
			switch tc.link {
			case "":
				if len(links) > 0 {
					t.Errorf("unexpected links %v", links)
				}
			case "server":
				if len(links) != 1 || links[0] != server.SpanContext().TraceID().String() {
					t.Errorf("links %v, want the server span", links)
				}
			default:
				if len(links) != 1 || links[0] != tc.link {
					t.Errorf("links %v, want %s", links, tc.link)
				}
			}
		})
	}
}

func TestDecisionAttributes(t *testing.T) {
	tr := tracedServer(t, extauthz.UserParentAsParent)
	t.Run("allow", func(t *testing.T) {
		tr.rec.Reset()
		tr.call(t, nil, nil)
		_, d := tr.spans(t)
		a := attrs(d)
		want := map[string]string{"gatehouse.decision": "allow", "gatehouse.app": "demo", "gatehouse.endpoint": "hello", "gatehouse.step": "done", "gatehouse.request_id": "req-42"}
		for k, v := range want {
			if a[attribute.Key(k)].AsString() != v {
				t.Errorf("%s = %q, want %q", k, a[attribute.Key(k)].AsString(), v)
			}
		}
		for _, k := range []string{"gatehouse.cache_hit", "gatehouse.config.version", "gatehouse.decision_id"} {
			if _, ok := a[attribute.Key(k)]; !ok {
				t.Errorf("missing %s", k)
			}
		}
		if d.Status().Code == codes.Error {
			t.Error("an allow is not an error")
		}
	})
	t.Run("deny", func(t *testing.T) {
		tr.settle()
		tr.rec.Reset()
		tr.call(t, nil, map[string]string{"x-app-token": "wrong-secret-value"})
		_, d := tr.spans(t)
		a := attrs(d)
		if a["gatehouse.decision"].AsString() != "deny" || a["gatehouse.code"].AsString() != "APP_NOT_FOUND" ||
			a["gatehouse.http_status"].AsInt64() != 404 || a["gatehouse.step"].AsString() != "app" {
			t.Errorf("deny attributes %v", a)
		}
		if d.Status().Code == codes.Error {
			t.Error("a deny is not a span error")
		}
		for _, s := range tr.rec.Ended() {
			for _, kv := range s.Attributes() {
				if strings.Contains(kv.Value.Emit(), "wrong-secret-value") || strings.Contains(kv.Value.Emit(), "demo-app-token") {
					t.Errorf("span %s leaks a credential in %s", s.Name(), kv.Key)
				}
			}
		}
	})
	t.Run("health checks are not traced", func(t *testing.T) {
		tr.settle()
		tr.rec.Reset()
		tr.health.Check(context.Background(), &healthpb.HealthCheckRequest{})
		if len(tr.rec.Ended()) != 0 {
			t.Errorf("health check traced: %v", names(tr.rec.Ended()))
		}
	})
	_ = trace.SpanKindServer
}
