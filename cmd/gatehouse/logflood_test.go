package main

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/telemetry"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestObserverSampledAllowsWithinBudget: a flood of allowed requests (a public endpoint,
// or one valid token replayed) with --log-allow-sample 1 logs at most the per-second
// budget of allow lines, counting the rest as suppressed{code="allow"}, and leaves the
// denials their own budget. A sample is a fraction: without the cap, the lines would grow
// with the flood.
func TestObserverSampledAllowsWithinBudget(t *testing.T) {
	m := telemetry.NewMetrics()
	var out strings.Builder
	o := newObserver(m, slog.New(slog.NewJSONHandler(&out, nil)), 1, 2)
	t0 := time.Unix(1_800_000_000, 0)
	for i := range 5 {
		o.Observe(context.Background(), &policy.Input{}, &policy.Decision{Outcome: policy.Allow}, "id", t0.Add(time.Duration(i)*time.Millisecond))
	}
	o.Observe(context.Background(), &policy.Input{}, &policy.Decision{Outcome: policy.Deny, Code: policy.Unauthorized}, "id", t0)
	o.Observe(context.Background(), &policy.Input{}, &policy.Decision{Outcome: policy.Allow}, "id", t0.Add(time.Second))
	if got, want := strings.Count(out.String(), `"decision":"allow"`), 3; got != want {
		t.Errorf("%d allow lines logged, want %d (2 in the first second, 1 in the next):\n%s", got, want, out.String())
	}
	if got := strings.Count(out.String(), `"code":"UNAUTHORIZED"`); got != 1 {
		t.Errorf("%d UNAUTHORIZED lines logged, want 1", got)
	}
	if got := testutil.ToFloat64(m.DecisionLogsSuppressed.WithLabelValues("allow")); got != 3 {
		t.Errorf(`suppressed{code="allow"} = %v, want 3`, got)
	}
}
