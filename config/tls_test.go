package config

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/grpcauth/grpcauthtest"
)

// TestServerTLS: a server.tls section with real files compiles, with paths relative to
// the configuration.
func TestServerTLS(t *testing.T) {
	dir := t.TempDir()
	ca := grpcauthtest.NewCA(t, "CA")
	crt, key := ca.Issue(t, grpcauthtest.Leaf{IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	os.Mkdir(filepath.Join(dir, "tls"), 0o700)
	os.WriteFile(filepath.Join(dir, "tls", "tls.crt"), crt, 0o600)
	os.WriteFile(filepath.Join(dir, "tls", "tls.key"), key, 0o600)
	os.WriteFile(filepath.Join(dir, "tls", "ca.crt"), ca.PEM, 0o600)
	section := `server:
  tls:
    cert_file: tls/tls.crt
    key_file: tls/tls.key
    client_ca_file: tls/ca.crt
    require_client_cert: true
    allow:
      check: [spiffe://cluster.local/ns/gw/sa/envoy]
      ratelimit: [spiffe://cluster.local/ns/gw/sa/envoy, envoy.gw.svc]
`
	path := filepath.Join(dir, "config.yaml")
	os.WriteFile(path, []byte(strings.Replace(string(Demo), "server:\n", section, 1)), 0o600)
	snap, err := Load(path, testDeps())
	if err != nil {
		t.Fatalf("rejected:\n%v", err)
	}
	tl := TLSFromFile(snap.File, dir)
	if tl.CertFile != filepath.Join(dir, "tls", "tls.crt") || tl.ClientCAFile != filepath.Join(dir, "tls", "ca.crt") {
		t.Fatalf("paths not resolved: %+v", tl)
	}
	a, err := tl.Lists()
	if err != nil || a.Check == nil || a.RateLimit == nil || a.Refunds != nil {
		t.Fatalf("guard %+v %v", a, err)
	}

}
