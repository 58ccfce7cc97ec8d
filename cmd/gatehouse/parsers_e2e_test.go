package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/config"
)

// hostileConfigs are configurations that must be refused quickly, each with the message
// an operator reads (typed from the rules, not from the code).
var hostileConfigs = []struct {
	name, fixture, want string
}{
	{"alias bomb", "alias-bomb.yaml", "aliases expand the configuration to more than 1000000 YAML nodes"},
	{"alias bomb in a JSON schema", "alias-bomb-schema.yaml", "aliases expand the configuration to more than 1000000 YAML nodes"},
	{"alias to its own ancestor", "alias-cycle.yaml", "line 6: alias *loop refers to a node that contains it"},
	{"nesting", "too-deep.yaml", "nests deeper than 64 levels"},
	{"provider without issuer or audiences", "provider-no-issuer-no-audiences.yaml",
		"jwt_providers[0].issuer: is required (or set allow_any_issuer: true to accept tokens from any issuer)"},
}

func fixture(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "..", "config", "testdata", "bad", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestValidateRefusesHostileConfigs: `gatehouse validate` exits 1 with the reason for each
// hostile file and for a file over 1 MiB, and still accepts the demo.
func TestValidateRefusesHostileConfigs(t *testing.T) {
	big := filepath.Join(t.TempDir(), "big.yaml")
	pad := bytes.Repeat([]byte("# padding padding padding padding padding padding padding padding\n"), 1048576/66+1)
	if err := os.WriteFile(big, append(append([]byte{}, config.Demo...), pad...), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct{ name, path, want string }{{"over 1 MiB", big, "larger than the limit of 1048576 bytes"}}
	for _, h := range hostileConfigs {
		cases = append(cases, struct{ name, path, want string }{h.name, fixture(t, h.fixture), h.want})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), []string{"validate", "--config", c.path}, strings.NewReader(""), &stdout, &stderr)
			var code exitError
			if !errors.As(err, &code) || code != 1 {
				t.Fatalf("exit %v, want 1; stderr:\n%s", err, stderr.String())
			}
			if !strings.Contains(stderr.String(), c.want) {
				t.Fatalf("stderr lacks %q:\n%s", c.want, stderr.String())
			}
		})
	}
	var stdout, stderr bytes.Buffer
	demo := filepath.Join("..", "..", "config", "demo.yaml")
	if err := run(context.Background(), []string{"validate", "--config", demo}, strings.NewReader(""), &stdout, &stderr); err != nil {
		t.Fatalf("demo refused: %v\n%s", err, stderr.String())
	}
}

// TestStartRefusesAliasBomb: a server started on a bomb says why and stays not ready,
// rather than hanging or dying.
func TestStartRefusesAliasBomb(t *testing.T) {
	for _, h := range hostileConfigs[:3] {
		t.Run(h.name, func(t *testing.T) {
			srv := startAdmin(t, false, "--config", fixture(t, h.fixture)) // the gRPC port stays closed
			waitUntil(t, "the rejection to be logged", func() bool {
				for _, r := range srv.out.records("no valid configuration yet: not ready") {
					if e, _ := r["error"].(string); strings.Contains(e, h.want) {
						return true
					}
				}
				return false
			})
			if code := srv.get(t, "/readyz"); code != http.StatusServiceUnavailable {
				t.Fatalf("readyz %d on a refused configuration", code)
			}
		})
	}
}

// TestReloadRefusesAliasBomb: a bomb written over a serving configuration is refused by
// the reload (logged and counted) and the old configuration keeps answering Check.
func TestReloadRefusesAliasBomb(t *testing.T) {
	for _, h := range hostileConfigs[:3] {
		t.Run(h.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "config.yaml")
			if err := os.WriteFile(path, config.Demo, 0o644); err != nil {
				t.Fatal(err)
			}
			srv := startServer(t, "--config", path)
			srv.waitReady(t)
			hello := request{path: "/v1/hello", headers: map[string]string{"x-app-token": "demo-app-token"}}
			bomb, err := os.ReadFile(fixture(t, h.fixture))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, bomb, 0o644); err != nil {
				t.Fatal(err)
			}
			waitUntil(t, "the reload to be refused", func() bool {
				for _, r := range srv.out.records("configuration rejected; the previous one stays in force") {
					if e, _ := r["error"].(string); strings.Contains(e, h.want) {
						return true
					}
				}
				return false
			})
			if m := srv.body(t, "/metrics"); !strings.Contains(m, `gatehouse_config_reloads_total{result="failure"} 1`) {
				t.Fatal("failed reload not counted")
			}
			resp, err := srv.check(t, hello)
			if err != nil || resp.GetOkResponse() == nil {
				t.Fatalf("old configuration no longer serves: %v %s", err, describe(resp))
			}
			if code := srv.get(t, "/readyz"); code != http.StatusOK {
				t.Fatalf("readyz %d after a refused reload", code)
			}
		})
	}
}
