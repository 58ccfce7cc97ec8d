// Package telemetry sets up Gatehouse's logs, metrics and traces.
package telemetry

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are Gatehouse's Prometheus metrics. Label values come only from configured
// names and catalogue codes, never from request data, so every label set is bounded.
type Metrics struct {
	Registry *prometheus.Registry

	Decisions     *prometheus.CounterVec
	CheckDuration *prometheus.HistogramVec
	Reloads       *prometheus.CounterVec
	ConfigInfo    *prometheus.GaugeVec
	ConfigLoaded  prometheus.Gauge
	// ConfigLastOK is 1 when the last configuration load succeeded, else 0.
	ConfigLastOK prometheus.Gauge
	JWKSFetches  *prometheus.CounterVec
	RLSDuration  *prometheus.HistogramVec
	// DecisionSteps counts every decision but a plain allow by the step that made it.
	DecisionSteps *prometheus.CounterVec
	// DecisionLogsSuppressed counts decision log lines dropped by the per-code budget.
	DecisionLogsSuppressed *prometheus.CounterVec
}

// NewMetrics registers every metric, and Go runtime and process metrics, on a fresh
// registry.
func NewMetrics() *Metrics {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &Metrics{
		Registry: r,
		Decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_decisions_total",
			Help: "Check decisions by outcome (allow, fail_open, deny, error), catalogue code, dialect, app and endpoint.",
		}, []string{"decision", "code", "dialect", "app", "endpoint"}),
		CheckDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gatehouse_check_duration_seconds",
			Help:    "Time to decide one Check, from request decoded to response built.",
			Buckets: []float64{.00001, .000025, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .2},
		}, []string{"decision"}),
		Reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_config_reloads_total",
			Help: "Configuration loads by result (success, failure).",
		}, []string{"result"}),
		ConfigInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gatehouse_config_info",
			Help: "The configuration version in force (value 1).",
		}, []string{"version"}),
		ConfigLoaded: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gatehouse_config_last_success_timestamp_seconds",
			Help: "Unix time of the last successful configuration load.",
		}),
		ConfigLastOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gatehouse_config_last_reload_successful",
			Help: "1 when the last configuration load succeeded; 0 when it failed, or none has yet.",
		}),
		JWKSFetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_jwks_fetches_total",
			Help: "JWKS fetches by result (success, failure).",
		}, []string{"result"}),
	}
	m.RLSDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "gatehouse_rls_duration_seconds",
		Help:    "Time to answer one ShouldRateLimit, by overall code (ok, over_limit).",
		Buckets: []float64{.00001, .000025, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .02},
	}, []string{"code"})
	m.DecisionSteps = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gatehouse_decision_steps_total",
		Help: "Denials, errors and fail-open allows by outcome, catalogue code and the pipeline step that decided (plain allows are not counted: their step is always done).",
	}, []string{"decision", "code", "step"})
	m.DecisionLogsSuppressed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gatehouse_decision_logs_suppressed_total",
		Help: "Decision log lines not written because their code had used its lines for the second (--log-denials-per-second), by code.",
	}, []string{"code"})
	// The results the alerts watch with increase() start at 0: a series born at 1 shows
	// no increase, so the first failure would never alert.
	for _, result := range []string{"success", "failure"} {
		m.Reloads.WithLabelValues(result)
		m.JWKSFetches.WithLabelValues(result)
	}
	r.MustRegister(m.Decisions, m.CheckDuration, m.Reloads, m.ConfigInfo, m.ConfigLoaded, m.ConfigLastOK, m.JWKSFetches, m.RLSDuration, m.DecisionSteps, m.DecisionLogsSuppressed)
	return m
}

// JWKSFetched counts one key-set fetch.
func (m *Metrics) JWKSFetched(err error) {
	if err != nil {
		m.JWKSFetches.WithLabelValues("failure").Inc()
		return
	}
	m.JWKSFetches.WithLabelValues("success").Inc()
}

// ConfigLoadedAt records a successful load of version.
func (m *Metrics) ConfigLoadedAt(version string, at time.Time) {
	m.Reloads.WithLabelValues("success").Inc()
	m.ConfigInfo.Reset()
	m.ConfigInfo.WithLabelValues(version).Set(1)
	m.ConfigLoaded.Set(float64(at.Unix()))
	m.ConfigLastOK.Set(1)
}

// ConfigLoadFailed records a failed load (the previous configuration, if any, stays).
func (m *Metrics) ConfigLoadFailed() {
	m.Reloads.WithLabelValues("failure").Inc()
	m.ConfigLastOK.Set(0)
}

// CounterFunc registers a counter whose value is read from f at scrape time.
func (m *Metrics) CounterFunc(name, help string, f func() float64) {
	m.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f))
}

// GaugeFunc registers a gauge whose value is read from f at scrape time.
func (m *Metrics) GaugeFunc(name, help string, f func() float64) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

// SetBuildInfo registers gatehouse_build_info: value 1, the build in its labels, so a
// query can tell which replicas run which build.
func (m *Metrics) SetBuildInfo(version, commit, goVersion string) {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "gatehouse_build_info",
		Help:        "The running build (value 1): version, commit and Go version.",
		ConstLabels: prometheus.Labels{"version": version, "commit": commit, "go_version": goVersion},
	})
	g.Set(1)
	m.Registry.MustRegister(g)
}
