package state

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts what the limiter decides. Create one with NewMetrics, register it once
// (it is a prometheus.Collector) and pass it to every Compile with WithMetrics. A nil
// *Metrics counts nothing. Allowed requests are not counted here (the decision metrics of
// the callers do), so the hot path touches no counter.
type Metrics struct {
	overLimit   *prometheus.CounterVec
	shadow      *prometheus.CounterVec
	storeErrors *prometheus.CounterVec
	// Remote store round trips (the memory store is not timed: it costs ~100 ns).
	storeDuration *prometheus.HistogramVec
	redisDuration prometheus.Observer // storeDuration{backend="redis"}, looked up once
	storeFailures *prometheus.CounterVec
	breakerOpen   prometheus.Gauge
	leaseUnits    *prometheus.CounterVec
	leasedUnits   prometheus.Counter // leaseUnits{event="leased"}, looked up once
	returnedUnits prometheus.Counter // leaseUnits{event="returned"}
	lateUnits     *prometheus.CounterVec
	memShed       prometheus.Counter // memory store: live counters under their limit shed
	memUntracked  prometheus.Counter // memory store: new keys not tracked (full)
	shareSlot     prometheus.Gauge   // the share slot this replica holds, -1: none
	shareUnits    prometheus.CounterFunc
	shareSource   atomic.Pointer[func() uint64] // the store's count of units its shares admitted
	breakerState  atomic.Int32                  // the value breakerOpen was last set to
	breakerMu     sync.Mutex
}

// NewMetrics returns unregistered metrics.
func NewMetrics() *Metrics {
	m := &Metrics{
		overLimit: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_ratelimit_over_limit_total",
			Help: "Requests denied by a limit, by surface (inline, rls) and limit.",
		}, []string{"surface", "limit"}),
		shadow: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_ratelimit_shadow_mode_total",
			Help: "Requests a limit in shadow mode would have denied, by surface and limit (limit=global: the global shadow mode).",
		}, []string{"surface", "limit"}),
		storeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_ratelimit_store_errors_total",
			Help: "Store calls that failed, by the fail mode applied (closed, open, local).",
		}, []string{"fail_mode"}),
		storeDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gatehouse_store_request_duration_seconds",
			Help:    "Round trips to a remote counter store, by backend.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05},
		}, []string{"backend"}),
		storeFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_store_errors_total",
			Help: "Round trips to a remote counter store that failed (including those refused by an open circuit breaker), by backend.",
		}, []string{"backend"}),
		breakerOpen: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gatehouse_store_circuit_breaker_open",
			Help: "1 while the circuit breaker in front of the remote store is open.",
		}),
		leaseUnits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_store_lease_units_total",
			Help: "Counter units this replica leased from Redis (event=leased) and gave back unused (event=returned); the difference is mostly units admitted without a round trip (the rest ended unused with their window).",
		}, []string{"event"}),
		lateUnits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_store_late_units_total",
			Help: "Counter units added by store calls that gave up waiting for Redis (a stall): given back once Redis ran them (outcome=given_back), or left counted until their window ends because no reply came (outcome=unknown).",
		}, []string{"outcome"}),
		memShed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_ratelimit_memory_shed_total",
			Help: "Counters under their limit the memory store dropped to make room (their keys start afresh).",
		}),
		memUntracked: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_ratelimit_memory_untracked_total",
			Help: "Requests on a new key the memory store could not track: max_entries is full of counters it keeps (over their limit, quotas, credits, lockouts).",
		}),
		shareSlot: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gatehouse_store_share_slot",
			Help: "The slot of redis.shares this replica holds (it admits from its share of each device throttle without a round trip), -1 while it holds none.",
		}),
	}
	m.shareSlot.Set(-1)
	m.shareUnits = prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "gatehouse_store_share_units_total",
		Help: "Units of device throttles this replica took from its redis.shares slot's shares, without a round trip (units given back when another limit refused the request included).",
	}, func() float64 {
		if f := m.shareSource.Load(); f != nil {
			return float64((*f)())
		}
		return 0
	})
	m.redisDuration = m.storeDuration.WithLabelValues("redis")
	m.leasedUnits = m.leaseUnits.WithLabelValues("leased")
	m.returnedUnits = m.leaseUnits.WithLabelValues("returned")
	return m
}

// StoreCall records one remote store round trip.
func (m *Metrics) StoreCall(backend string, took time.Duration, err error, breakerOpen bool) {
	if m == nil {
		return
	}
	if backend == "redis" {
		m.redisDuration.Observe(took.Seconds())
	} else {
		m.storeDuration.WithLabelValues(backend).Observe(took.Seconds())
	}
	if err != nil {
		m.storeFailures.WithLabelValues(backend).Inc()
	}
	// Written only when it changes: every call storing to one shared gauge would bounce
	// its cache line between cores.
	if open := b2i32(breakerOpen); m.breakerState.Load() != open {
		m.breakerMu.Lock() // keeps the gauge and breakerState alike; the next call corrects a stale view
		m.breakerState.Store(open)
		m.breakerOpen.Set(float64(open))
		m.breakerMu.Unlock()
	}
}

func b2i32(b bool) int32 {
	if b {
		return 1
	}
	return 0
}

// StoreFailure counts a failed round trip that is not timed on its own (the take-back of
// a refused request's units).
func (m *Metrics) StoreFailure(backend string) {
	if m != nil {
		m.storeFailures.WithLabelValues(backend).Inc()
	}
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	m.overLimit.Describe(ch)
	m.shadow.Describe(ch)
	m.storeErrors.Describe(ch)
	m.storeDuration.Describe(ch)
	m.storeFailures.Describe(ch)
	m.breakerOpen.Describe(ch)
	m.leaseUnits.Describe(ch)
	m.lateUnits.Describe(ch)
	m.memShed.Describe(ch)
	m.memUntracked.Describe(ch)
	m.shareSlot.Describe(ch)
	m.shareUnits.Describe(ch)
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.overLimit.Collect(ch)
	m.shadow.Collect(ch)
	m.storeErrors.Collect(ch)
	m.storeDuration.Collect(ch)
	m.storeFailures.Collect(ch)
	m.breakerOpen.Collect(ch)
	m.leaseUnits.Collect(ch)
	m.lateUnits.Collect(ch)
	m.memShed.Collect(ch)
	m.memUntracked.Collect(ch)
	m.shareSlot.Collect(ch)
	m.shareUnits.Collect(ch)
}

// ShareUnits sets where gatehouse_store_share_units_total is read from: the store keeps
// the count where its hot path already writes, and the metric reads it when scraped.
func (m *Metrics) ShareUnits(count func() uint64) {
	if m != nil {
		m.shareSource.Store(&count)
	}
}

// ShareSlot records the redis.shares slot this replica holds (-1: none).
func (m *Metrics) ShareSlot(slot int) {
	if m != nil {
		m.shareSlot.Set(float64(slot))
	}
}

func (m *Metrics) MemoryShed(n int64) {
	if m != nil {
		m.memShed.Add(float64(n))
	}
}

func (m *Metrics) MemoryUntracked() {
	if m != nil {
		m.memUntracked.Inc()
	}
}

// Leased counts units leased (returned: given back unused).
func (m *Metrics) Leased(n int64, returned bool) {
	if m == nil || n <= 0 {
		return
	}
	if returned {
		m.returnedUnits.Add(float64(n))
	} else {
		m.leasedUnits.Add(float64(n))
	}
}

// LateUnits counts units of store calls that gave up waiting for Redis: given back once
// Redis ran their commands, or left counted (no reply came).
func (m *Metrics) LateUnits(n int64, givenBack bool) {
	if m == nil || n <= 0 {
		return
	}
	outcome := "unknown"
	if givenBack {
		outcome = "given_back"
	}
	m.lateUnits.WithLabelValues(outcome).Add(float64(n))
}

func (m *Metrics) OverLimitHit(surface, limit string) {
	if m != nil {
		m.overLimit.WithLabelValues(surface, limit).Inc()
	}
}

func (m *Metrics) ShadowHit(surface, limit string) {
	if m != nil {
		m.shadow.WithLabelValues(surface, limit).Inc()
	}
}

func (m *Metrics) StoreError(failMode string) {
	if m != nil {
		m.storeErrors.WithLabelValues(failMode).Inc()
	}
}

// ShadowCounter returns the shadow-mode counter of a surface and limit (for tests).
func (m *Metrics) ShadowCounter(surface, limit string) prometheus.Counter {
	return m.shadow.WithLabelValues(surface, limit)
}
