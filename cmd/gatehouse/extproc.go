package main

import (
	"context"
	"log/slog"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/gatehouse/gatehouse/extproc"
	"github.com/gatehouse/gatehouse/telemetry"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
)

// exchangeObserver records each response-phase exchange in metrics and, when Gatehouse
// answered instead of the upstream or the stream ended midway, in the decision log.
type exchangeObserver struct {
	exchanges *prometheus.CounterVec
	duration  prometheus.Histogram
	log       *slog.Logger
	budget    *telemetry.LogBudget
}

func newExchangeObserver(m *telemetry.Metrics, log *slog.Logger, perSecond int) *exchangeObserver {
	o := &exchangeObserver{
		exchanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_response_exchanges_total",
			Help: "Response-phase (ext_proc) streams by outcome (skip, pass, replace, replayed, cancel), catalogue code, app and endpoint.",
		}, []string{"outcome", "code", "app", "endpoint"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "gatehouse_response_exchange_duration_seconds",
			Help:    "Time from a response-phase stream's first message to its end, upstream time included.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 8),
		}),
		log:    log,
		budget: telemetry.NewLogBudget(perSecond, m.DecisionLogsSuppressed),
	}
	m.Registry.MustRegister(o.exchanges, o.duration)
	return o
}

// ObserveExchange implements extproc.Observer.
func (o *exchangeObserver) ObserveExchange(ctx context.Context, x *extproc.Outcome, start time.Time) {
	outcome := "pass"
	switch {
	case x.Skipped:
		// Metadata of a route without features is not a configured name's: no labels.
		o.exchanges.WithLabelValues("skip", "", "", "").Inc()
		return
	case x.Cancelled:
		outcome = "cancel"
	case x.Code != "":
		outcome = "replace"
	case x.Replayed:
		outcome = "replayed"
	}
	o.exchanges.WithLabelValues(outcome, string(x.Code), x.App, x.Endpoint).Inc()
	o.duration.Observe(time.Since(start).Seconds())
	if outcome == "pass" || !o.budget.Allow("response:"+outcome+":"+string(x.Code), start) {
		return
	}
	o.log.LogAttrs(ctx, slog.LevelInfo, "response",
		slog.String("decision_id", x.DecisionID), slog.String("outcome", outcome), slog.String("code", string(x.Code)),
		slog.String("app", x.App), slog.String("endpoint", x.Endpoint), slog.Int("status", x.Status),
		slog.Int("upstream_status", x.UpstreamStatus), slog.Int("upstream_bytes", x.UpstreamBytes),
		slog.Bool("signed", x.Signed))
}

// registerExtProc serves the response phase on srv, with the routes of the snapshot in
// force.
func (s *server) registerExtProc(srv *grpc.Server) {
	routes := func() *extproc.Routes {
		if snap := s.store.Current(); snap != nil {
			return snap.Response
		}
		return nil
	}
	extprocv3.RegisterExternalProcessorServer(srv, extproc.NewServer(routes, extproc.Options{
		Log: s.log, Observer: newExchangeObserver(s.metrics, s.log, s.flags.denialLogs)}))
}
