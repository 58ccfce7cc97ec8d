package telemetry

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestLogBudgetEdges: with 3 lines a second per code, the 3rd line of a second is logged
// and the 4th suppressed; the last nanosecond of the second is still the same second, and
// its first nanosecond of the next starts afresh. Codes do not share a budget.
func TestLogBudgetEdges(t *testing.T) {
	suppressed := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "s"}, []string{"code"})
	b := NewLogBudget(3, suppressed)
	t0 := time.Unix(1_800_000_000, 0)
	steps := []struct {
		name string
		code string
		at   time.Time
		want bool
	}{
		{"1st", "UNAUTHORIZED", t0, true},
		{"2nd", "UNAUTHORIZED", t0.Add(time.Millisecond), true},
		{"3rd: the budget's edge", "UNAUTHORIZED", t0.Add(2 * time.Millisecond), true},
		{"4th: one past it", "UNAUTHORIZED", t0.Add(3 * time.Millisecond), false},
		{"another code has its own budget", "APP_NOT_FOUND", t0.Add(3 * time.Millisecond), true},
		{"last nanosecond of the second", "UNAUTHORIZED", t0.Add(time.Second - time.Nanosecond), false},
		{"next second: afresh", "UNAUTHORIZED", t0.Add(time.Second), true},
		{"next second: 2nd", "UNAUTHORIZED", t0.Add(time.Second + 1), true},
		{"next second: 3rd", "UNAUTHORIZED", t0.Add(time.Second + 2), true},
		{"next second: 4th", "UNAUTHORIZED", t0.Add(time.Second + 3), false},
	}
	for _, s := range steps {
		if got := b.Allow(s.code, s.at); got != s.want {
			t.Errorf("%s: Allow = %v, want %v", s.name, got, s.want)
		}
	}
	if got := testutil.ToFloat64(suppressed.WithLabelValues("UNAUTHORIZED")); got != 3 {
		t.Errorf("suppressed{UNAUTHORIZED} = %v, want 3", got)
	}
	if got := testutil.ToFloat64(suppressed.WithLabelValues("APP_NOT_FOUND")); got != 0 {
		t.Errorf("suppressed{APP_NOT_FOUND} = %v, want 0", got)
	}
}

// TestLogBudgetUnlimited: a budget of 0 logs every line.
func TestLogBudgetUnlimited(t *testing.T) {
	b := NewLogBudget(0, prometheus.NewCounterVec(prometheus.CounterOpts{Name: "s"}, []string{"code"}))
	t0 := time.Unix(1_800_000_000, 0)
	for i := range 1000 {
		if !b.Allow("UNAUTHORIZED", t0) {
			t.Fatalf("line %d suppressed with no limit", i)
		}
	}
}

// TestLogBudgetSuppressedAllocatesNothing: a suppressed line costs no allocation.
func TestLogBudgetSuppressedAllocatesNothing(t *testing.T) {
	b := NewLogBudget(1, prometheus.NewCounterVec(prometheus.CounterOpts{Name: "s"}, []string{"code"}))
	t0 := time.Unix(1_800_000_000, 0)
	b.Allow("UNAUTHORIZED", t0)
	b.Allow("UNAUTHORIZED", t0)
	if n := testing.AllocsPerRun(1000, func() { b.Allow("UNAUTHORIZED", t0) }); n != 0 {
		t.Errorf("%v allocations per suppressed line, want 0", n)
	}
}

func BenchmarkLogBudgetSuppressed(b *testing.B) {
	lb := NewLogBudget(1, prometheus.NewCounterVec(prometheus.CounterOpts{Name: "s"}, []string{"code"}))
	t0 := time.Unix(1_800_000_000, 0)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			lb.Allow("UNAUTHORIZED", t0)
		}
	})
}
