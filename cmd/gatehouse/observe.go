package main

import (
	"cmp"
	"context"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/telemetry"
)

// observer records each decision in metrics and, for denials, in the decision log.
type observer struct {
	m           *telemetry.Metrics
	log         *slog.Logger
	allowSample float64              // fraction of allows logged
	budget      *telemetry.LogBudget // lines per code and second (sampled allows under "allow")
}

// newObserver returns an observer that logs at most perSecond denial lines per code and
// second (0: every one).
func newObserver(m *telemetry.Metrics, log *slog.Logger, allowSample float64, perSecond int) *observer {
	return &observer{m: m, log: log, allowSample: allowSample, budget: telemetry.NewLogBudget(perSecond, m.DecisionLogsSuppressed)}
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

// Observe implements extauthz.Observer.
func (o *observer) Observe(ctx context.Context, in *policy.Input, d *policy.Decision, id string, start time.Time) {
	outcome := outcomeLabel(d)
	o.m.Decisions.WithLabelValues(outcome, string(d.Code), d.Dialect.String(), d.App, d.Endpoint).Inc()
	o.m.CheckDuration.WithLabelValues(outcome).Observe(time.Since(start).Seconds())
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
