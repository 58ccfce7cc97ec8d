package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// probeFlags are the targets and credentials of `gatehouse probe`.
type probeFlags struct {
	addr, admin, checkPath          string
	useTLS                          bool
	caFile, certFile, keyFile, name string
	timeout                         time.Duration
}

const probeUsage = `usage: gatehouse probe [--admin http://host:9192] [--addr host:9191 [--check-path /p]] [TLS flags]

Checks a running Gatehouse over the network, as the Helm chart's test does: the admin
port's /healthz and /readyz must answer 200, the gRPC health service SERVING, and with
--check-path one ext_authz Check (GET, no credentials) must be answered with a decision.
Prints one line per check; exits 1 when any failed.

`

// probe is `gatehouse probe`: network checks of an installed server.
func probe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f, err := parseProbeFlags(args, stdout, stderr)
	if f == nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	failed := false
	report := func(name string, err error, ok string) {
		if err != nil {
			failed = true
			fmt.Fprintf(stdout, "FAIL  %s: %v\n", name, err)
			return
		}
		fmt.Fprintf(stdout, "ok    %s: %s\n", name, ok)
	}
	if f.admin != "" {
		for _, path := range []string{"/healthz", "/readyz"} {
			code, err := probeHTTP(ctx, strings.TrimRight(f.admin, "/")+path)
			report("admin "+path, err, fmt.Sprint(code))
		}
	}
	if f.addr != "" {
		probeGRPC(ctx, f, report)
	}
	if failed {
		return exitError(1)
	}
	return nil
}

func parseProbeFlags(args []string, stdout, stderr io.Writer) (*probeFlags, error) {
	fs := flag.NewFlagSet("probe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	f := &probeFlags{}
	fs.StringVar(&f.admin, "admin", "", "admin base `URL` (http://host:9192): GET /healthz and /readyz must answer 200")
	fs.StringVar(&f.addr, "addr", "", "gRPC `host:port`: grpc.health.v1 Check must answer SERVING")
	fs.StringVar(&f.checkPath, "check-path", "", "with --addr, send one ext_authz Check for GET `PATH` (no credentials); any decision passes")
	fs.BoolVar(&f.useTLS, "tls", false, "speak TLS to --addr")
	fs.StringVar(&f.caFile, "ca-file", "", "with --tls, PEM CA bundle that verifies the server (default: the system roots)")
	fs.StringVar(&f.certFile, "cert-file", "", "with --tls, PEM client certificate to present")
	fs.StringVar(&f.keyFile, "key-file", "", "with --tls, PEM key of --cert-file")
	fs.StringVar(&f.name, "server-name", "", "with --tls, name to verify in the server's certificate (default: the host of --addr)")
	fs.DurationVar(&f.timeout, "timeout", 10*time.Second, "deadline of all checks together")
	fs.Usage = func() { fmt.Fprint(fs.Output(), probeUsage); fs.PrintDefaults() }
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		if errors.Is(err, errHelp) {
			return nil, nil
		}
		return nil, err
	}
	var bad string
	switch {
	case fs.NArg() > 0:
		bad = "unexpected argument"
	case f.addr == "" && f.admin == "":
		bad = "nothing to probe: give --admin, --addr or both"
	case f.admin != "" && !strings.HasPrefix(f.admin, "http://") && !strings.HasPrefix(f.admin, "https://"):
		bad = "--admin must be an http:// or https:// URL"
	case (f.certFile == "") != (f.keyFile == ""):
		bad = "--cert-file and --key-file go together"
	case f.timeout <= 0:
		bad = "--timeout must be positive"
	}
	if bad != "" {
		fmt.Fprintf(stderr, "gatehouse probe: %s\n\n", bad)
		fs.Usage()
		return nil, exitError(2)
	}
	return f, nil
}

// probeHTTP GETs url and returns its status; anything but 200 is an error.
func probeHTTP(ctx context.Context, url string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, fmt.Errorf("%d", resp.StatusCode)
	}
	return resp.StatusCode, nil
}

// probeGRPC calls the health service and, with --check-path, Check.
func probeGRPC(ctx context.Context, f *probeFlags, report func(string, error, string)) {
	creds, err := probeCredentials(f)
	if err != nil {
		report("grpc tls", err, "")
		return
	}
	conn, err := grpc.NewClient(f.addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		report("grpc health", err, "")
		return
	}
	defer conn.Close()
	hr, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(false))
	if err == nil && hr.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		err = errors.New(hr.GetStatus().String())
	}
	report("grpc health", err, hr.GetStatus().String())
	if f.checkPath == "" {
		return
	}
	name := "check GET " + f.checkPath
	resp, err := authv3.NewAuthorizationClient(conn).Check(ctx, probeRequest(f.checkPath))
	switch {
	case err != nil:
		report(name, err, "")
	case resp.GetOkResponse() != nil:
		report(name, nil, "allowed")
	case resp.GetDeniedResponse() != nil:
		report(name, nil, fmt.Sprintf("denied with HTTP %d", int(resp.GetDeniedResponse().GetStatus().GetCode())))
	default:
		report(name, errors.New("a response with no verdict"), "")
	}
}

// probeRequest is the CheckRequest Envoy would send for `GET path` from the probe.
func probeRequest(path string) *authv3.CheckRequest {
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 1}},
		}}},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: http.MethodGet, Path: path, Host: "gatehouse-probe", Scheme: "http", Protocol: "HTTP/1.1",
			Headers: map[string]string{":method": http.MethodGet, ":path": path, ":authority": "gatehouse-probe", "user-agent": "gatehouse-probe"},
		}},
	}}
}

func probeCredentials(f *probeFlags) (credentials.TransportCredentials, error) {
	if !f.useTLS {
		return insecure.NewCredentials(), nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: f.name}
	if f.caFile != "" {
		pem, err := os.ReadFile(f.caFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no PEM certificate", f.caFile)
		}
	}
	if f.certFile != "" {
		cert, err := tls.LoadX509KeyPair(f.certFile, f.keyFile)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return credentials.NewTLS(cfg), nil
}
