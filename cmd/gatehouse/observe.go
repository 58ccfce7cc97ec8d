package main

import (
	"cmp"
	"context"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/telemetry"
	"github.com/prometheus/client_golang/prometheus"
)

// observer records each decision in metrics and, for denials, in the decision log.
type observer struct {
	m           *telemetry.Metrics
	log         *slog.Logger
	allowSample float64              // fraction of allows logged
	budget      *telemetry.LogBudget // lines per code and second (sampled allows under "allow")
	// durations holds the check duration histogram of each outcome once one was seen
	// (a series appears on /metrics when its first decision is recorded, as before).
	durations [len(outcomes)]atomic.Pointer[prometheus.Observer]
	// decisions holds the decisions counter of each label set seen, so that a decision
	// finds its counter with one map lookup and no lock, not by hashing and checking its
	// five labels under the vector's lock. Copied on write, under mu; at most
	// maxDecisionLabelSets sets (labels are configured names and catalogue codes).
	decisions atomic.Pointer[map[decisionLabels]prometheus.Counter]
	mu        sync.Mutex
}

// decisionLabels are the labels of gatehouse_decisions_total.
type decisionLabels struct {
	outcome, code, dialect, app, endpoint string
}

// maxDecisionLabelSets bounds the counters an observer keeps resolved; past it, a
// decision resolves its counter as before.
const maxDecisionLabelSets = 4096

// outcomes are the values of outcomeLabel.
var outcomes = [...]string{"allow", "deny", "error", "served", "fail_open"}

// newObserver returns an observer that logs at most perSecond denial lines per code and
// second (0: every one).
func newObserver(m *telemetry.Metrics, log *slog.Logger, allowSample float64, perSecond int) *observer {
	o := &observer{m: m, log: log, allowSample: allowSample, budget: telemetry.NewLogBudget(perSecond, m.DecisionLogsSuppressed)}
	o.decisions.Store(&map[decisionLabels]prometheus.Counter{})
	return o
}

// decisionCounter returns the decisions counter of l.
func (o *observer) decisionCounter(l decisionLabels) prometheus.Counter {
	if c, ok := (*o.decisions.Load())[l]; ok {
		return c
	}
	c := o.m.Decisions.WithLabelValues(l.outcome, l.code, l.dialect, l.app, l.endpoint)
	o.mu.Lock()
	defer o.mu.Unlock()
	if old := *o.decisions.Load(); len(old) < maxDecisionLabelSets {
		next := maps.Clone(old)
		next[l] = c
		o.decisions.Store(&next)
	}
	return c
}

// outcomeLabel is the decision label of the metrics: a request allowed only because a
// dependency failed is "fail_open", so that it can be told from a plain allow; a request
// Gatehouse answered itself is "served".
func outcomeLabel(d *policy.Decision) string {
	switch {
	case d.Outcome == policy.Deny:
		return "deny"
	case d.Outcome == policy.Undecided:
		return "error"
	case d.Outcome == policy.Served:
		return "served" // answered by Gatehouse itself (sessions)
	case d.FailOpen:
		return "fail_open"
	}
	return "allow"
}

// duration returns the check duration histogram of outcome.
func (o *observer) duration(outcome string) prometheus.Observer {
	i := slices.Index(outcomes[:], outcome)
	if i < 0 {
		return o.m.CheckDuration.WithLabelValues(outcome)
	}
	if h := o.durations[i].Load(); h != nil {
		return *h
	}
	h := o.m.CheckDuration.WithLabelValues(outcome)
	o.durations[i].Store(&h)
	return h
}

// Observe implements extauthz.Observer.
func (o *observer) Observe(ctx context.Context, in *policy.Input, d *policy.Decision, id string, start time.Time) {
	outcome := outcomeLabel(d)
	o.decisionCounter(decisionLabels{outcome, string(d.Code), d.Dialect.String(), d.App, d.Endpoint}).Inc()
	o.duration(outcome).Observe(time.Since(start).Seconds())
	if outcome == "allow" {
		if o.allowSample <= 0 || rand.Float64() >= o.allowSample {
			return
		}
	} else {
		o.m.DecisionSteps.WithLabelValues(outcome, string(d.Code), string(d.Step)).Inc()
	}
	// Sampled allows too: a sample is a fraction of a flood, the budget a bound on it.
	if !o.budget.Allow(cmp.Or(string(d.Code), outcome), start) {
		return // counted in gatehouse_decision_logs_suppressed_total
	}
	o.log.LogAttrs(ctx, slog.LevelInfo, "decision",
		slog.String("decision_id", id), slog.String("decision", outcome), slog.String("code", string(d.Code)),
		slog.String("step", string(d.Step)), slog.String("app", d.App), slog.String("endpoint", d.Endpoint),
		slog.String("request_id", in.RequestID), slog.String("cause", d.Cause))
}
