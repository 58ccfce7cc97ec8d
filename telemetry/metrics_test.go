package telemetry

import (
	"strings"
	"testing"

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
