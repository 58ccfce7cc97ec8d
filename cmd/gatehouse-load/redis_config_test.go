package main

import (
	"math/rand/v2"
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
		{"devices redis", deviceThrottleConfig(redisStoreYAML("127.0.0.1:6379", false), true), 0},
		{"devices redis --no-attest", deviceThrottleConfig(redisStoreYAML("127.0.0.1:6379", false), false), 0},
		{"devices redis --no-lease", deviceThrottleConfig(redisStoreYAML("127.0.0.1:6379", true), true), -1},
		{"devices memory", deviceThrottleConfig("store:\n  type: memory\n", true), 0},
		{"devices memory --no-attest", deviceThrottleConfig("store:\n  type: memory\n", false), 0},
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

// TestSessionPicker: --session N keeps one device for N requests in a row, then picks
// again; N = 1 picks every time.
func TestSessionPicker(t *testing.T) {
	spec := &loadSpec{session: 3}
	pick := spec.picker(rand.New(rand.NewPCG(1, 2)), 1000)
	for run := 0; run < 5; run++ {
		first := pick()
		for i := 1; i < 3; i++ {
			if got := pick(); got != first {
				t.Fatalf("run %d, request %d: device %d, want %d for the whole session", run, i, got, first)
			}
		}
	}
	spec.session = 1
	pick = spec.picker(rand.New(rand.NewPCG(1, 2)), 1000)
	same := 0
	for i, prev := 0, -1; i < 100; i++ {
		d := pick()
		if d == prev {
			same++
		}
		prev = d
	}
	if same > 2 {
		t.Fatalf("session 1: %d repeats in 100 picks among 1000 devices", same)
	}
}
