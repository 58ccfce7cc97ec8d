package main

import (
	"context"
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	commonrl "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"github.com/gatehouse/gatehouse/grpcauth/grpcauthtest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
)

const (
	envoySPIFFE    = "spiffe://cluster.local/ns/gw/sa/envoy"
	refunderSPIFFE = "spiffe://cluster.local/ns/billing/sa/refunder"
	strangerSPIFFE = "spiffe://cluster.local/ns/x/sa/curious"
)

const tlsTestConfig = `
server:
  tls:
{{TLS}}
apps:
  - name: acc
    app_token_sha256: ["{{T:acc}}"]
    endpoints: ["*"]
endpoints:
  - {name: api, path: /v1/api}
rate_limit_service:
  domains:
    - domain: acc
      counting: atomic # a refused call consumes nothing: one refund makes room
      descriptors:
        - key: k
          rate_limit: {unit: hour, requests_per_unit: 2} # an hour: the calls almost never straddle a window's end
`

// pki is the certificates of one TLS test, written into dir/tls.
type pki struct {
	dir    string
	config string // the configuration file start wrote
	ca     *grpcauthtest.CA
	server grpcauthtest.Leaf
}

func newPKI(t *testing.T) *pki {
	p := &pki{dir: filepath.Join(t.TempDir(), "tls"), ca: grpcauthtest.NewCA(t, "cluster CA"),
		server: grpcauthtest.Leaf{CommonName: "gatehouse", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}}
	os.Mkdir(p.dir, 0o700)
	p.writeServer(t, p.ca)
	writeFile(t, filepath.Join(p.dir, "ca.crt"), p.ca.PEM)
	return p
}

// writeServer issues a server certificate from ca and swaps it in, key first, each
// file replaced by a rename.
func (p *pki) writeServer(t *testing.T, ca *grpcauthtest.CA) {
	crt, key := ca.Issue(t, p.server)
	writeFile(t, filepath.Join(p.dir, "tls.key"), key)
	writeFile(t, filepath.Join(p.dir, "tls.crt"), crt)
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path+".tmp", b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}

// start runs Gatehouse with the server.tls lines given (indented under tls:).
func (p *pki) start(t *testing.T, tlsLines ...string) *testServer {
	lines := append([]string{"cert_file: " + filepath.Join(p.dir, "tls.crt"), "key_file: " + filepath.Join(p.dir, "tls.key")}, tlsLines...)
	cfg := strings.Replace(tlsTestConfig, "{{TLS}}", "    "+strings.Join(lines, "\n    "), 1)
	p.config = writeConfig(t, t.TempDir(), cfg)
	srv := startServer(t, "--config", p.config)
	srv.waitReady(t)
	return srv
}

// dialTLS connects trusting roots, presenting a client certificate for uri (none when
// ca is nil).
func dialTLS(t *testing.T, addr string, roots *grpcauthtest.CA, ca *grpcauthtest.CA, uri string) *grpc.ClientConn {
	t.Helper()
	cfg := &tls.Config{RootCAs: roots.Pool()}
	if ca != nil {
		cfg.Certificates = []tls.Certificate{ca.Pair(t, grpcauthtest.Leaf{URIs: []string{uri}, Client: true})}
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func callCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 5*time.Second)
}

func checkOn(conn *grpc.ClientConn) (*authv3.CheckResponse, error) {
	ctx, cancel := callCtx()
	defer cancel()
	return authv3.NewAuthorizationClient(conn).Check(ctx, envoyRequest(request{path: "/v1/api", headers: app("acc")}))
}

func rlsOn(conn *grpc.ClientConn, value string, refund bool) (*rlsv3.RateLimitResponse, error) {
	ctx, cancel := callCtx()
	defer cancel()
	d := &commonrl.RateLimitDescriptor{Entries: []*commonrl.RateLimitDescriptor_Entry{{Key: "k", Value: value}}, IsNegativeHits: refund}
	return rlsv3.NewRateLimitServiceClient(conn).ShouldRateLimit(ctx, &rlsv3.RateLimitRequest{Domain: "acc", Descriptors: []*commonrl.RateLimitDescriptor{d}})
}

func healthOn(conn *grpc.ClientConn) error {
	ctx, cancel := callCtx()
	defer cancel()
	r, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err == nil && r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return status.Errorf(codes.Unavailable, "health %v", r.GetStatus())
	}
	return err
}

// TestGRPCTLS: with server.tls, a plaintext client is refused and a TLS client that
// trusts the CA is served; a client that trusts another CA refuses the server.
func TestGRPCTLS(t *testing.T) {
	p := newPKI(t)
	srv := p.start(t)
	plain, err := grpc.NewClient(srv.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if _, err := checkOn(plain); status.Code(err) != codes.Unavailable {
		t.Fatalf("plaintext Check: %v, want Unavailable", err)
	}
	if _, err := rlsOn(plain, "a", false); status.Code(err) != codes.Unavailable {
		t.Fatalf("plaintext ShouldRateLimit: %v, want Unavailable", err)
	}
	conn := dialTLS(t, srv.grpcAddr, p.ca, nil, "")
	if resp, err := checkOn(conn); err != nil || resp.GetOkResponse() == nil {
		t.Fatalf("TLS Check: %v %s", err, describe(resp))
	}
	if _, err := checkOn(dialTLS(t, srv.grpcAddr, grpcauthtest.NewCA(t, "other CA"), nil, "")); status.Code(err) != codes.Unavailable {
		t.Fatalf("a client trusting another CA: %v", err)
	}
}

// TestGRPCMutualTLS: with a client CA and allow-lists, each method is judged by its own
// list, refunds by theirs; health and reflection stay open to every client with a
// certificate; nothing a refused call asked for is counted.
func TestGRPCMutualTLS(t *testing.T) {
	p := newPKI(t)
	srv := p.start(t,
		"client_ca_file: "+filepath.Join(p.dir, "ca.crt"),
		"require_client_cert: true",
		"allow:",
		"  check: ["+envoySPIFFE+"]",
		"  ratelimit: ["+envoySPIFFE+", "+refunderSPIFFE+"]",
		"  refunds: ["+refunderSPIFFE+"]")
	envoy := dialTLS(t, srv.grpcAddr, p.ca, p.ca, envoySPIFFE)
	refunder := dialTLS(t, srv.grpcAddr, p.ca, p.ca, refunderSPIFFE)
	stranger := dialTLS(t, srv.grpcAddr, p.ca, p.ca, strangerSPIFFE)
	noCert := dialTLS(t, srv.grpcAddr, p.ca, nil, "")
	wrongCA := dialTLS(t, srv.grpcAddr, p.ca, grpcauthtest.NewCA(t, "rogue CA"), envoySPIFFE)

	for name, conn := range map[string]*grpc.ClientConn{"no client certificate": noCert, "a certificate of another CA": wrongCA} {
		if _, err := checkOn(conn); err == nil {
			t.Errorf("%s: Check served", name)
		}
		if err := healthOn(conn); err == nil {
			t.Errorf("%s: health served", name)
		}
	}
	if resp, err := checkOn(envoy); err != nil || resp.GetOkResponse() == nil {
		t.Fatalf("listed Check: %v %s", err, describe(resp))
	}
	for name, conn := range map[string]*grpc.ClientConn{"refunder": refunder, "stranger": stranger} {
		resp, err := checkOn(conn)
		den := resp.GetDeniedResponse()
		if err != nil || den == nil || den.GetStatus().GetCode() != 403 || bodyCode(t, den.GetBody()) != "FORBIDDEN" {
			t.Fatalf("%s Check: %v %s, want a 403 FORBIDDEN denial (not an error)", name, err, describe(resp))
		}
	}
	over := func(conn *grpc.ClientConn) rlsv3.RateLimitResponse_Code {
		t.Helper()
		r, err := rlsOn(conn, "v", false)
		if err != nil {
			t.Fatal(err)
		}
		return r.GetOverallCode()
	}
	for i, want := range []rlsv3.RateLimitResponse_Code{rlsv3.RateLimitResponse_OK, rlsv3.RateLimitResponse_OK, rlsv3.RateLimitResponse_OVER_LIMIT} {
		if got := over(envoy); got != want {
			t.Fatalf("spend %d: %v, want %v", i+1, got, want)
		}
	}
	if _, err := rlsOn(stranger, "v", false); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("unlisted ShouldRateLimit: %v", err)
	}
	for name, conn := range map[string]*grpc.ClientConn{"envoy (ratelimit list only)": envoy, "stranger": stranger} {
		_, err := rlsOn(conn, "v", true)
		if status.Code(err) != codes.PermissionDenied {
			t.Fatalf("%s refund: %v, want PermissionDenied", name, err)
		}
		if strings.Contains(err.Error(), "spiffe") {
			t.Fatalf("the refusal echoes the identity: %v", err)
		}
	}
	if got := over(envoy); got != rlsv3.RateLimitResponse_OVER_LIMIT {
		t.Fatalf("a refused refund gave units back: %v", got)
	}
	if _, err := rlsOn(refunder, "v", true); err != nil {
		t.Fatalf("listed refund: %v", err)
	}
	if got := over(envoy); got != rlsv3.RateLimitResponse_OK {
		t.Fatalf("after the listed refund: %v", got)
	}
	for name, conn := range map[string]*grpc.ClientConn{"envoy": envoy, "stranger": stranger} {
		if err := healthOn(conn); err != nil {
			t.Errorf("%s health: %v", name, err)
		}
		if err := listServices(conn); err != nil {
			t.Errorf("%s reflection: %v", name, err)
		}
	}
	metrics := srv.body(t, "/metrics")
	for _, want := range []string{
		`gatehouse_grpc_refused_total{list="check"} 2`,
		`gatehouse_grpc_refused_total{list="ratelimit"} 2`, // the stranger's spend and refund
		`gatehouse_grpc_refused_total{list="refunds"} 1`,   // envoy's refund
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// Five refusals, logged at most once every 10 s: fewer than five lines unless this
	// test ran for more than 40 s.
	if n := len(srv.out.records("gRPC call refused by the client allow-list (at most one line every 10s)")); n < 1 || n >= 5 {
		t.Errorf("%d refusal log lines for 5 refusals", n)
	}
}

func listServices(conn *grpc.ClientConn) error {
	ctx, cancel := callCtx()
	defer cancel()
	st, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		return err
	}
	if err := st.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{ListServices: "*"}}); err != nil {
		return err
	}
	_, err = st.Recv()
	return err
}

// TestGRPCCertRotation: a new server certificate written into the watched directory
// reaches new connections; a connection made before the swap keeps working.
func TestGRPCCertRotation(t *testing.T) {
	p := newPKI(t)
	srv := p.start(t)
	old := dialTLS(t, srv.grpcAddr, p.ca, nil, "")
	if resp, err := checkOn(old); err != nil || resp.GetOkResponse() == nil {
		t.Fatalf("before the swap: %v %s", err, describe(resp))
	}
	next := grpcauthtest.NewCA(t, "next CA")
	p.writeServer(t, next)
	waitUntil(t, "new connections to get the new certificate", func() bool {
		c := dialTLS(t, srv.grpcAddr, next, nil, "")
		defer c.Close()
		return healthOn(c) == nil
	})
	if err := healthOn(dialTLS(t, srv.grpcAddr, p.ca, nil, "")); err == nil {
		t.Fatal("a new connection still gets the old certificate")
	}
	// The old connection trusts only the old CA: it can only be served on the
	// connection made before the swap.
	if resp, err := checkOn(old); err != nil || resp.GetOkResponse() == nil {
		t.Fatalf("the connection made before the swap: %v %s", err, describe(resp))
	}
	if strings.Contains(srv.out.String(), "PRIVATE KEY") {
		t.Fatal("a key in the log")
	}

	// A reload that changes server.tls says that it waits for a restart.
	data, _ := os.ReadFile(p.config)
	writeFile(t, p.config, []byte(strings.Replace(string(data), "  tls:\n", "  tls:\n    require_client_cert: false\n    client_ca_file: "+filepath.Join(p.dir, "ca.crt")+"\n", 1)))
	waitUntil(t, "the server.tls change to be reported", func() bool {
		return len(srv.out.records("the server.tls section changed: the running TLS settings stay until a restart (the certificate files themselves are re-read when they change)")) > 0
	})
}
