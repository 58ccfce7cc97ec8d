package main

import (
	"testing"

	"github.com/gatehouse/gatehouse/config"
)

// TestGeneratedConfigs: the configs run --redis and --gen-config hand Gatehouse parse with
// its strict parser, and --no-lease turns leases off.
func TestGeneratedConfigs(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		lease      int64
	}{
		{"redis", redisConfig("127.0.0.1:6379", false), 0},
		{"redis --no-lease", redisConfig("127.0.0.1:6379", true), -1},
		{"memory", memoryConfig(), 0},
		{"devices redis", deviceThrottleConfig(redisStoreYAML("127.0.0.1:6379", false)), 0},
		{"devices redis --no-lease", deviceThrottleConfig(redisStoreYAML("127.0.0.1:6379", true)), -1},
		{"devices memory", deviceThrottleConfig("store:\n  type: memory\n"), 0},
	} {
		f, err := config.Parse([]byte(tc.text))
		if err != nil {
			t.Fatalf("%s: %v\n%s", tc.name, err, tc.text)
		}
		if got := f.Store.Redis.Lease.MaxUnits; got != tc.lease {
			t.Errorf("%s: lease.max_units %d, want %d", tc.name, got, tc.lease)
		}
	}
	if c, err := parseRunFlags([]string{"--device-throttle"}, nil); err != nil || !c.attest || c.shape.path != attestPath {
		t.Errorf("--device-throttle: %v; want --attest on %s", err, attestPath)
	}
	if _, err := parseRunFlags([]string{"--device-throttle", "--config", "f.yaml"}, nil); err == nil {
		t.Error("--device-throttle accepted with --config")
	}
	if _, err := parseRunFlags([]string{"--no-lease"}, nil); err == nil {
		t.Error("--no-lease accepted without --redis")
	}
	if _, err := parseRunFlags([]string{"--redis", "--no-lease", "--config", "f.yaml"}, nil); err == nil {
		t.Error("--no-lease accepted with --config")
	}
}
