package ratelimit

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/gatehouse/gatehouse/ratelimit/memstore"
)

// TestRLSPatternOverConfigMapMount: a pattern over a directory mounted from a Kubernetes
// ConfigMap (each key a link through ..data into a timestamped directory) reads the keys,
// not the mount's own ..data link and ..<timestamp> directory, which would fail to load
// as domain files ("is a directory").
func TestRLSPatternOverConfigMapMount(t *testing.T) {
	dir := t.TempDir()
	ts := filepath.Join(dir, "..2026_12_07_00_00_00.000000001")
	if err := os.Mkdir(ts, 0o755); err != nil {
		t.Fatal(err)
	}
	domain := "domain: cm\ndescriptors:\n  - key: k\n    rate_limit: {unit: second, requests_per_unit: 1}\n"
	if err := os.WriteFile(filepath.Join(ts, "cm.yaml"), []byte(domain), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Base(ts), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join("..data", "cm.yaml"), filepath.Join(dir, "cm.yaml")); err != nil {
		t.Fatal(err)
	}
	for _, pattern := range []string{filepath.Join(dir, "*"), filepath.Join(dir, "*.yaml")} {
		if _, err := Compile(CompileInput{RLS: RLSConfig{Files: []string{pattern}}}, memstore.New(MemoryConfig{}, nil)); err != nil {
			t.Errorf("%s: %v", pattern, err)
		}
	}
}
