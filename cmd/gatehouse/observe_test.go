package main

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/telemetry"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestObserverFailOpenIsItsOwnOutcome: a request allowed only because a dependency failed
// is counted as decision="fail_open", not "allow", so that alerts and dashboards can tell
// the two apart; a denial after failing open stays a denial.
func TestObserverFailOpenIsItsOwnOutcome(t *testing.T) {
	m := telemetry.NewMetrics()
	o := newObserver(m, slog.New(slog.DiscardHandler), 0, 10)
	in := &policy.Input{}
	start := time.Unix(1_800_000_000, 0)
	o.Observe(context.Background(), in, &policy.Decision{Outcome: policy.Allow, FailOpen: true, App: "a", Endpoint: "e"}, "id", start)
	o.Observe(context.Background(), in, &policy.Decision{Outcome: policy.Allow, App: "a", Endpoint: "e"}, "id", start)
	o.Observe(context.Background(), in, &policy.Decision{Outcome: policy.Deny, FailOpen: true, Code: policy.RateLimited, App: "a", Endpoint: "e"}, "id", start)
	for _, c := range []struct{ decision, code string }{{"fail_open", ""}, {"allow", ""}, {"deny", "RATE_LIMITED"}} {
		if got := testutil.ToFloat64(m.Decisions.WithLabelValues(c.decision, c.code, "protectmyapi", "a", "e")); got != 1 {
			t.Errorf("decisions{decision=%q,code=%q} = %v, want 1", c.decision, c.code, got)
		}
	}
}

// TestObserverDenialLogBudget: with 2 lines a second per code, a flood of one code logs
// 2 lines in each second (times from an injected clock: the Check start), counts the
// rest as suppressed, and leaves other codes their own budget.
func TestObserverDenialLogBudget(t *testing.T) {
	m := telemetry.NewMetrics()
	var out strings.Builder
	o := newObserver(m, slog.New(slog.NewJSONHandler(&out, nil)), 0, 2)
	t0 := time.Unix(1_800_000_000, 0)
	deny := func(code policy.Code, at time.Time) {
		o.Observe(context.Background(), &policy.Input{}, &policy.Decision{Outcome: policy.Deny, Code: code}, "id", at)
	}
	for i := range 5 {
		deny(policy.Unauthorized, t0.Add(time.Duration(i)*time.Millisecond))
	}
	deny(policy.Unauthorized, t0.Add(time.Second-time.Nanosecond))
	deny(policy.AppNotFound, t0.Add(time.Second-time.Nanosecond))
	deny(policy.Unauthorized, t0.Add(time.Second))
	if got, want := strings.Count(out.String(), `"code":"UNAUTHORIZED"`), 3; got != want {
		t.Errorf("%d UNAUTHORIZED lines logged, want %d:\n%s", got, want, out.String())
	}
	if got := strings.Count(out.String(), `"code":"APP_NOT_FOUND"`); got != 1 {
		t.Errorf("%d APP_NOT_FOUND lines logged, want 1", got)
	}
	if got := testutil.ToFloat64(m.DecisionLogsSuppressed.WithLabelValues("UNAUTHORIZED")); got != 4 {
		t.Errorf("suppressed{UNAUTHORIZED} = %v, want 4", got)
	}
}

// TestObserverCountsSteps: every decision but a plain allow is counted by code and the
// step that made it (a plain allow's step is always "done").
func TestObserverCountsSteps(t *testing.T) {
	m := telemetry.NewMetrics()
	o := newObserver(m, slog.New(slog.DiscardHandler), 0, 0)
	start := time.Unix(1_800_000_000, 0)
	for _, d := range []policy.Decision{
		{Outcome: policy.Allow, Step: policy.StepDone},
		{Outcome: policy.Deny, Code: policy.Unauthorized, Step: policy.StepApp},
		{Outcome: policy.Deny, Code: policy.Unauthorized, Step: policy.StepApp},
		{Outcome: policy.Undecided, Step: policy.StepIdentity},
	} {
		o.Observe(context.Background(), &policy.Input{}, &d, "id", start)
	}
	for _, c := range []struct {
		decision, code, step string
		want                 float64
	}{{"deny", "UNAUTHORIZED", "app", 2}, {"error", "", "identity", 1}, {"allow", "", "done", 0}} {
		if got := testutil.ToFloat64(m.DecisionSteps.WithLabelValues(c.decision, c.code, c.step)); got != c.want {
			t.Errorf("decision_steps{%s,%s,%s} = %v, want %v", c.decision, c.code, c.step, got, c.want)
		}
	}
}

// BenchmarkObserveDeny measures what the observer costs a denial, the path a flood of bad
// requests takes (the decision log line suppressed, as under a flood).
func BenchmarkObserveDeny(b *testing.B) {
	m := telemetry.NewMetrics()
	o := newObserver(m, slog.New(slog.DiscardHandler), 0, 1)
	d := &policy.Decision{Outcome: policy.Deny, Code: policy.Unauthorized, Step: policy.StepApp, App: "a", Endpoint: "e"}
	in := &policy.Input{}
	start := time.Unix(1_800_000_000, 0)
	b.ReportAllocs()
	for b.Loop() {
		o.Observe(context.Background(), in, d, "id", start)
	}
}

// TestObserverCountsEveryLabelSet: each decision is counted under its own labels, the
// label sets past those the observer keeps resolved included, from two goroutines at
// once (-race): 4106 endpoints, each decided twice, each counted 2.
func TestObserverCountsEveryLabelSet(t *testing.T) {
	m := telemetry.NewMetrics()
	o := newObserver(m, slog.New(slog.DiscardHandler), 0, 10)
	const n = maxDecisionLabelSets + 10
	done := make(chan struct{})
	for range 2 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range n {
				d := &policy.Decision{Outcome: policy.Allow, App: "a", Endpoint: "e" + strconv.Itoa(i)}
				o.Observe(context.Background(), &policy.Input{}, d, "id", time.Unix(1_800_000_000, 0))
			}
		}()
	}
	<-done
	<-done
	for _, i := range []int{0, maxDecisionLabelSets - 1, maxDecisionLabelSets, n - 1} {
		if got := testutil.ToFloat64(m.Decisions.WithLabelValues("allow", "", "protectmyapi", "a", "e"+strconv.Itoa(i))); got != 2 {
			t.Errorf("endpoint e%d counted %v, want 2", i, got)
		}
	}
	if got := testutil.CollectAndCount(m.CheckDuration); got != 1 {
		t.Errorf("%d duration series, want 1 (allow)", got)
	}
}

// BenchmarkObserveAllow: recording an allowed decision, from every core at once.
func BenchmarkObserveAllow(b *testing.B) {
	o := newObserver(telemetry.NewMetrics(), slog.New(slog.DiscardHandler), 0, 10)
	d := &policy.Decision{Outcome: policy.Allow, App: "demo", Endpoint: "secure", DeviceID: "device-1"}
	start := time.Now()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			o.Observe(context.Background(), &policy.Input{}, d, "id", start)
		}
	})
}
