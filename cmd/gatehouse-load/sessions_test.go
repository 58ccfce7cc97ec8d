package main

import (
	"os"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/config"
)

// TestSessionsFlag: --sessions implies --attest on the attested path, and generates its
// own config, so it refuses every flag that names another.
func TestSessionsFlag(t *testing.T) {
	if c, err := parseRunFlags([]string{"--sessions"}, nil); err != nil || !c.attest || !c.sessions || c.shape.path != attestPath {
		t.Errorf("--sessions: %v; want --attest on %s", err, attestPath)
	}
	for _, other := range [][]string{{"--config", "f.yaml"}, {"--gen-config"}, {"--device-throttle"}, {"--redis"}} {
		if _, err := parseRunFlags(append([]string{"--sessions"}, other...), nil); err == nil {
			t.Errorf("--sessions accepted with %v", other)
		}
	}
}

// TestSessionsConfig: the generated config names the key file written beside it, and
// Gatehouse accepts it.
func TestSessionsConfig(t *testing.T) {
	dir := t.TempDir()
	path, err := writeSessionsConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "file: "+dir+"/session-key.pem") || strings.Contains(string(b), "{{") {
		t.Fatalf("config:\n%s", b)
	}
	if k, err := os.ReadFile(dir + "/session-key.pem"); err != nil || !strings.HasPrefix(string(k), "-----BEGIN PRIVATE KEY-----") {
		t.Fatalf("key file: %v", err)
	}
	if _, err := config.Load(path, config.Deps{Offline: true}); err != nil {
		t.Fatalf("Gatehouse refuses the generated config: %v", err)
	}
}
