package main

import (
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
	allowSample float64 // fraction of allows logged
}

func (o *observer) Observe(ctx context.Context, in *policy.Input, d *policy.Decision, id string, start time.Time) {
	outcome := "allow"
	switch d.Outcome {
	case policy.Deny:
		outcome = "deny"
	case policy.Undecided:
		outcome = "error"
	}
	o.m.Decisions.WithLabelValues(outcome, string(d.Code), d.Dialect.String(), d.App, d.Endpoint).Inc()
	o.m.CheckDuration.WithLabelValues(outcome).Observe(time.Since(start).Seconds())
	if d.Outcome != policy.Allow || d.FailOpen || (o.allowSample > 0 && rand.Float64() < o.allowSample) {
		o.log.LogAttrs(ctx, slog.LevelInfo, "decision",
			slog.String("decision_id", id), slog.String("decision", outcome), slog.String("code", string(d.Code)),
			slog.String("step", string(d.Step)), slog.String("app", d.App), slog.String("endpoint", d.Endpoint),
			slog.String("request_id", in.RequestID), slog.String("cause", d.Cause))
	}
}
