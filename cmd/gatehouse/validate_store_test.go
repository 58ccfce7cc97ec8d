package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestValidateAgreesWithServeOnStoreFiles: a Redis store whose CA file holds no
// certificate is a configuration serve does not load (it stays live, not ready, and logs
// why); validate (plain and --offline) refuses it too, naming the key, instead of saying OK.
func TestValidateAgreesWithServeOnStoreFiles(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "redis-ca.pem")
	if err := os.WriteFile(ca, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "config.yaml")
	body := "endpoints:\n  - {name: e, path: /e}\nstore:\n  type: redis\n  redis:\n    addrs: [127.0.0.1:1]\n    tls: {enabled: true, ca_file: " + ca + "}\n"
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	const want = "store.redis.tls.ca_file: no certificate found"
	srv := startAdmin(t, false, "--config", cfg)
	waitUntil(t, "serve to reject the configuration", func() bool {
		return strings.Contains(srv.out.String(), "no certificate found")
	})
	if got := srv.get(t, "/readyz"); got != http.StatusServiceUnavailable {
		t.Fatalf("serve on the rejected configuration: /readyz %d, want 503", got)
	}
	if got := srv.get(t, "/healthz"); got != http.StatusOK {
		t.Fatalf("serve on the rejected configuration: /healthz %d, want 200", got)
	}
	for _, args := range [][]string{{"validate", "--config", cfg}, {"validate", "--offline", "--config", cfg}} {
		code, stdout, stderr := runCLI(args...)
		if code != 1 || !strings.Contains(stderr, want) {
			t.Fatalf("%v: exit %d\nstdout:\n%s\nstderr:\n%s", args, code, stdout, stderr)
		}
	}
}
