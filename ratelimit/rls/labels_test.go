package rls_test

import (
	"slices"
	"strconv"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse/gatehouse/ratelimit"
)

// TestDetailedMetricLabelsAreBounded: detailed_metric never turns a client's value into a
// label: a thousand distinct values over a key-only limit make one series, whose label
// folds them into "other"; a configured value keeps its own (it is configuration).
func TestDetailedMetricLabelsAreBounded(t *testing.T) {
	c, _, m := serve(t, ratelimit.RLSConfig{}, nil)
	for i := 0; i < 1000; i++ {
		call(t, c, "example8", 11, desc("key1", "client-"+strconv.Itoa(i)))
	}
	call(t, c, "example8", 21, desc("key1", "value1"))
	call(t, c, "example8", 3, desc("path", "/api/v1/chosen-by-client"))
	got := seriesLabels(t, m, "gatehouse_ratelimit_over_limit_total", "limit")
	want := []string{"example8.key1_other", "example8.key1_value1", "example8.path_/api/v1/*"}
	if !slices.Equal(got, want) {
		t.Fatalf("limit labels %q, want %q", got, want)
	}
}

// seriesLabels returns the sorted values of label on every series of metric.
func seriesLabels(t *testing.T, m *ratelimit.Metrics, metric, label string) []string {
	t.Helper()
	reg := prometheus.NewRegistry()
	if err := reg.Register(m); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, mf := range mfs {
		if mf.GetName() != metric {
			continue
		}
		for _, s := range mf.GetMetric() {
			for _, lp := range s.GetLabel() {
				if lp.GetName() == label {
					out = append(out, lp.GetValue())
				}
			}
		}
	}
	slices.Sort(out)
	return out
}
