package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/config"
	"github.com/gatehouse/gatehouse/grpcauth/grpcauthtest"
)

// writeDemo writes the demo configuration to a file, so the server runs with --config.
func writeDemo(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, config.Demo, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// runProbe runs `gatehouse probe` as the helm test Pod does and returns its output.
func runProbe(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out strings.Builder
	err := run(context.Background(), append([]string{"probe", "--timeout", "10s"}, args...), strings.NewReader(""), &out, &out)
	return out.String(), err
}

// TestProbeHealthyServer: against a ready server every probe passes, and the Check without
// credentials is answered with a decision: UNAUTHORIZED, HTTP 401 ("Missing or invalid
// authentication" in the protectmyapi seed).
func TestProbeHealthyServer(t *testing.T) {
	srv := startServer(t, "--config", writeDemo(t))
	srv.waitReady(t)
	out, err := runProbe(t, "--addr", srv.grpcAddr, "--admin", "http://"+srv.adminAddr, "--check-path", "/v1/hello")
	if err != nil {
		t.Fatalf("probe failed: %v\n%s", err, out)
	}
	for _, want := range []string{
		"ok    admin /healthz: 200",
		"ok    admin /readyz: 200",
		"ok    grpc health: SERVING",
		"ok    check GET /v1/hello: denied with HTTP 401",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestProbeFailures: a server that is up but not ready (bad configuration, no gRPC port)
// fails the probe, and so does an address where nothing listens; the probe says which
// check failed and exits 1.
func TestProbeFailures(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte("apps: [{name: broken}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := startAdmin(t, false, "--config", path)
	waitUntil(t, "the rejection to be logged", func() bool { return len(srv.out.records("no valid configuration yet: not ready")) > 0 })

	out, err := runProbe(t, "--admin", "http://"+srv.adminAddr)
	if ee, ok := err.(exitError); !ok || ee != 1 {
		t.Fatalf("probe of a server that is not ready: err %v, want exit status 1\n%s", err, out)
	}
	if !strings.Contains(out, "ok    admin /healthz: 200") || !strings.Contains(out, "FAIL  admin /readyz: 503") {
		t.Errorf("output:\n%s", out)
	}

	// The admin port's address is free of gRPC: nothing there speaks HTTP/2 gRPC.
	out, err = runProbe(t, "--addr", srv.adminAddr)
	if ee, ok := err.(exitError); !ok || ee != 1 {
		t.Fatalf("probe of a non-gRPC port: err %v, want exit status 1\n%s", err, out)
	}
	if !strings.Contains(out, "FAIL  grpc health:") {
		t.Errorf("output:\n%s", out)
	}
}

// TestProbeUsage: the probe needs something to probe, and prints its usage on --help.
func TestProbeUsage(t *testing.T) {
	out, err := runProbe(t)
	if ee, ok := err.(exitError); !ok || ee != 2 {
		t.Fatalf("probe without targets: err %v, want exit status 2\n%s", err, out)
	}
	var help strings.Builder
	if err := run(context.Background(), []string{"probe", "--help"}, strings.NewReader(""), &help, &help); err != nil {
		t.Fatalf("--help: %v", err)
	}
	if !strings.Contains(help.String(), "-addr") || !strings.Contains(help.String(), "-check-path") {
		t.Errorf("help:\n%s", help.String())
	}
	if out, err := runProbe(t, "--admin", "ftp://x"); err == nil || !strings.Contains(out, "--admin") {
		t.Errorf("a non-HTTP admin URL: %v\n%s", err, out)
	}
}

// TestProbeMutualTLS: against a port that requires client certificates the probe passes
// with --tls, the CA and a client certificate (as the chart's tests.tlsSecret gives it), and
// fails without the certificate or when it trusts another CA.
func TestProbeMutualTLS(t *testing.T) {
	p := newPKI(t)
	srv := p.start(t, "client_ca_file: "+filepath.Join(p.dir, "ca.crt"), "require_client_cert: true")
	crt, key := p.ca.Issue(t, grpcauthtest.Leaf{URIs: []string{envoySPIFFE}, Client: true})
	writeFile(t, filepath.Join(p.dir, "client.crt"), crt)
	writeFile(t, filepath.Join(p.dir, "client.key"), key)
	rogue := grpcauthtest.NewCA(t, "rogue CA")
	writeFile(t, filepath.Join(p.dir, "rogue.crt"), rogue.PEM)
	base := []string{"--addr", srv.grpcAddr, "--tls"}

	out, err := runProbe(t, append(base, "--ca-file", filepath.Join(p.dir, "ca.crt"),
		"--cert-file", filepath.Join(p.dir, "client.crt"), "--key-file", filepath.Join(p.dir, "client.key"), "--check-path", "/v1/api")...)
	if err != nil || !strings.Contains(out, "ok    grpc health: SERVING") || !strings.Contains(out, "ok    check GET /v1/api: denied with HTTP 401") {
		t.Fatalf("with a client certificate: %v\n%s", err, out)
	}
	for name, args := range map[string][]string{
		"no client certificate": {"--ca-file", filepath.Join(p.dir, "ca.crt")},
		"another CA trusted": {"--ca-file", filepath.Join(p.dir, "rogue.crt"),
			"--cert-file", filepath.Join(p.dir, "client.crt"), "--key-file", filepath.Join(p.dir, "client.key")},
		"a name the certificate does not hold": {"--server-name", "gatehouse", "--ca-file", filepath.Join(p.dir, "ca.crt"),
			"--cert-file", filepath.Join(p.dir, "client.crt"), "--key-file", filepath.Join(p.dir, "client.key")},
		"plaintext": nil,
	} {
		a := append(append([]string{}, base...), args...)
		if name == "plaintext" {
			a = []string{"--addr", srv.grpcAddr}
		}
		out, err := runProbe(t, a...)
		if ee, ok := err.(exitError); !ok || ee != 1 || !strings.Contains(out, "FAIL  grpc health:") {
			t.Errorf("%s: err %v, want exit status 1 with a failed health check\n%s", name, err, out)
		}
	}
}
