package telemetry

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestFailureCountersStartAtZero: the failure series the alerts watch with increase()
// exist at 0 from the start. A series born at 1 (the first failure) has no earlier sample,
// so increase() sees no rise and GatehouseConfigReloadFailing or GatehouseJWKSFetchFailing
// would never fire for a pod's first bad ConfigMap or first failed fetch.
func TestFailureCountersStartAtZero(t *testing.T) {
	m := NewMetrics()
	want := `
# HELP gatehouse_config_reloads_total Configuration loads by result (success, failure).
# TYPE gatehouse_config_reloads_total counter
gatehouse_config_reloads_total{result="failure"} 0
gatehouse_config_reloads_total{result="success"} 0
# HELP gatehouse_jwks_fetches_total JWKS fetches by result (success, failure).
# TYPE gatehouse_jwks_fetches_total counter
gatehouse_jwks_fetches_total{result="failure"} 0
gatehouse_jwks_fetches_total{result="success"} 0
`
	if err := testutil.GatherAndCompare(m.Registry, strings.NewReader(want), "gatehouse_config_reloads_total", "gatehouse_jwks_fetches_total"); err != nil {
		t.Fatal(err)
	}
}

// TestLastReloadSuccessful: gatehouse_config_last_reload_successful is 0 until a load
// succeeds, 1 after a good load and 0 after a failed one, until the next good load. It is
// what an alert needs for a pod whose configuration was bad from the start (its failure
// counter never rises while Prometheus watches) or stays bad longer than a rate window.
func TestLastReloadSuccessful(t *testing.T) {
	m := NewMetrics()
	at := time.Unix(1_800_000_000, 0)
	steps := []struct {
		name string
		do   func()
		want float64
	}{
		{"before any load", func() {}, 0},
		{"a failed first load", m.ConfigLoadFailed, 0},
		{"a good load", func() { m.ConfigLoadedAt("v1", at) }, 1},
		{"a failed reload", m.ConfigLoadFailed, 0},
		{"a good reload", func() { m.ConfigLoadedAt("v2", at) }, 1},
	}
	for _, s := range steps {
		s.do()
		if got := testutil.ToFloat64(m.ConfigLastOK); got != s.want {
			t.Fatalf("after %s: %v, want %v", s.name, got, s.want)
		}
	}
	if got := testutil.ToFloat64(m.Reloads.WithLabelValues("failure")); got != 2 {
		t.Fatalf("failures counted: %v, want 2", got)
	}
}
