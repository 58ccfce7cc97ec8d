package telemetry

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// LogBudget caps how many lines of one kind (a catalogue code) are logged per second, so
// that a flood of bad requests cannot fill the disk or drown the other lines: the first
// perSecond lines of each code in each wall-clock second are logged, the rest are counted
// in suppressed{code} and dropped. Safe for concurrent use; a suppressed line costs a map
// lookup and three atomic operations, and allocates nothing.
//
// The windows are whole seconds of the time passed in (an injected clock in tests). At a
// window's change two goroutines may both start it afresh, which lets a few extra lines
// through: the cap bounds a flood, it is not an exact count.
type LogBudget struct {
	perSecond  int64
	suppressed *prometheus.CounterVec
	slots      atomic.Pointer[map[string]*budgetSlot] // copied on write: reads take no lock
	mu         sync.Mutex                             // serialises writers of slots
}

type budgetSlot struct {
	window     atomic.Int64 // the Unix second being counted
	used       atomic.Int64 // lines asked for in that second
	suppressed prometheus.Counter
}

// NewLogBudget returns a budget of perSecond lines per code and second; 0 or less means
// no limit. suppressed must have the single label "code".
func NewLogBudget(perSecond int, suppressed *prometheus.CounterVec) *LogBudget {
	b := &LogBudget{perSecond: int64(perSecond), suppressed: suppressed}
	b.slots.Store(&map[string]*budgetSlot{})
	return b
}

// Allow reports whether a line of code, at now, may be logged; if not, it counts it.
func (b *LogBudget) Allow(code string, now time.Time) bool {
	if b == nil || b.perSecond <= 0 {
		return true
	}
	s := (*b.slots.Load())[code]
	if s == nil {
		s = b.slot(code)
	}
	sec := now.Unix()
	if w := s.window.Load(); w != sec && s.window.CompareAndSwap(w, sec) {
		s.used.Store(0)
	}
	if s.used.Add(1) <= b.perSecond {
		return true
	}
	s.suppressed.Inc()
	return false
}

// slot returns code's slot, adding it on the code's first line. Codes come from the
// catalogue, so the map stays small.
func (b *LogBudget) slot(code string) *budgetSlot {
	b.mu.Lock()
	defer b.mu.Unlock()
	old := *b.slots.Load()
	if s := old[code]; s != nil {
		return s
	}
	next := make(map[string]*budgetSlot, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	s := &budgetSlot{suppressed: b.suppressed.WithLabelValues(code)}
	s.window.Store(-1 << 63)
	next[code] = s
	b.slots.Store(&next)
	return s
}
