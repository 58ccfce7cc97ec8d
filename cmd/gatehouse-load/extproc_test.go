package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/gatehouse/gatehouse/config"
	"github.com/gatehouse/gatehouse/extproc"
	"github.com/gatehouse/gatehouse/extproc/extproctest"
	"github.com/gatehouse/gatehouse/signature"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// serveProc serves p on a loopback port and returns a client.
func serveProc(t *testing.T, p extprocv3.ExternalProcessorServer) extprocv3.ExternalProcessorClient {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	extprocv3.RegisterExternalProcessorServer(srv, p)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return extprocv3.NewExternalProcessorClient(cc)
}

// gatehouseProc is Gatehouse's Process with one route, demo/hello, rewriting upstream errors
// (it reads the response headers, not the body).
func gatehouseProc() *extproc.Server {
	rs := extproc.NewRoutes(0)
	rs.Add(&extproc.Route{App: "demo", Endpoint: "hello", UpstreamErrors: true})
	return extproc.NewServer(func() *extproc.Routes { return rs }, extproc.Options{})
}

// signingProc is Gatehouse's Process signing demo/hello's responses (it reads the body).
func signingProc(t *testing.T) *extproc.Server {
	sg, err := signature.New([]byte(loadSecret), signature.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	rs := extproc.NewRoutes(0)
	rs.Add(&extproc.Route{App: "demo", Endpoint: "hello", Sign: sg})
	return extproc.NewServer(func() *extproc.Routes { return rs }, extproc.Options{})
}

// TestRunExchange: the load client sends what Envoy would, given each server's answers. The
// no-op server never overrides the mode, so it gets all three phases of the buffered route;
// Gatehouse's answers to the request headers decide what follows.
func TestRunExchange(t *testing.T) {
	shape := reqShape{devices: 1, host: "api.example.com", path: "/v1/hello", exts: map[string]string{"endpoint": "hello"}}
	status := func(code string) func(*procExchange) {
		return func(x *procExchange) {
			x.respHeaders.GetResponseHeaders().Headers = headerMap(map[string]string{":status": code})
		}
	}
	cases := []struct {
		name     string
		server   extprocv3.ExternalProcessorServer
		endpoint string
		edit     func(*procExchange)
		want     outcome
		sent     int // typed from the phases of each case
	}{
		{"noop: every phase", extproctest.Noop{}, "hello", nil, outcomeOK, 3},
		{"gatehouse: response headers only", gatehouseProc(), "hello", nil, outcomeOK, 2},
		{"gatehouse: route without features skips the rest", gatehouseProc(), "other", nil, outcomeOK, 1},
		{"gatehouse: upstream 503 replaced", gatehouseProc(), "hello", status("503"), outcomeDenied, 2},
		{"gatehouse: upstream 500 replaced", gatehouseProc(), "hello", status("500"), outcomeDenied, 2},
		{"gatehouse: upstream 499 passes", gatehouseProc(), "hello", status("499"), outcomeOK, 2},
		{"gatehouse signing: every phase", signingProc(t), "hello", nil, outcomeOK, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			shape.exts["endpoint"] = tc.endpoint
			x := buildExchanges(shape, 1024)[0]
			if tc.edit != nil {
				tc.edit(x)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			o, sent, err := runExchange(ctx, serveProc(t, tc.server), x)
			if err != nil {
				t.Fatal(err)
			}
			if o != tc.want || sent != tc.sent {
				t.Errorf("outcome %d after %d messages, want %d after %d", o, sent, tc.want, tc.sent)
			}
		})
	}
}

// TestJSONBody: the response bodies of the load are valid JSON of exactly the size asked.
func TestJSONBody(t *testing.T) {
	for _, n := range []int{12, 13, 1024, 16384} {
		b := jsonBody(n)
		if len(b) != n || !json.Valid(b) {
			t.Errorf("jsonBody(%d): %d bytes, valid %v", n, len(b), json.Valid(b))
		}
	}
}

// TestHeaderMapRawValue: header values travel in raw_value, as recent Envoys send them.
func TestHeaderMapRawValue(t *testing.T) {
	hm := headerMap(map[string]string{":status": "200"})
	if len(hm.GetHeaders()) != 1 || string(hm.GetHeaders()[0].GetRawValue()) != "200" || hm.GetHeaders()[0].GetValue() != "" {
		t.Errorf("headers %v, want :status in raw_value", hm.GetHeaders())
	}
}

// TestExtprocConfig: the generated config of --mode extproc compiles, and its demo app has a
// response-phase route on the endpoint the load sends (so Gatehouse does work per stream
// rather than skipping).
func TestExtprocConfig(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "sign.key")
	if err := os.WriteFile(secret, []byte(loadSecret), 0o600); err != nil {
		t.Fatal(err)
	}
	snap, err := config.LoadBytes([]byte(extprocConfig(secret)), "gatehouse-extproc.yaml", config.Deps{})
	if err != nil {
		t.Fatalf("%v\n%s", err, extprocConfig(secret))
	}
	if r := snap.Response.Lookup("demo", "hello"); r == nil || r.Sign == nil || !r.UpstreamErrors {
		t.Errorf("demo/hello's response route %+v, want one that signs and rewrites upstream errors", r)
	}
	c, err := parseRunFlags([]string{"--mode", "extproc", "--body-sizes", "1024, 16384"}, io.Discard)
	if err != nil || len(c.bodySizes) != 2 || c.bodySizes[0] != 1024 || c.bodySizes[1] != 16384 {
		t.Errorf("--body-sizes: %v %v", c, err)
	}
	for _, bad := range []string{"", "x", "-1", "1024,,2048", "16777217"} {
		if _, err := parseRunFlags([]string{"--mode", "extproc", "--body-sizes", bad}, io.Discard); err == nil {
			t.Errorf("--body-sizes %q accepted", bad)
		}
	}
}
