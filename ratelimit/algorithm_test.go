package ratelimit

import (
	"context"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/ratelimit/state"
)

func TestPeriodBounds(t *testing.T) {
	ny, _ := time.LoadLocation("America/New_York")
	berlin, _ := time.LoadLocation("Europe/Berlin")
	santiago, err := time.LoadLocation("America/Santiago") // DST starts at midnight
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		now        string
		period     Period
		loc        *time.Location
		start, end string
		hours      float64 // length, 0 = do not check
	}{
		{"month end 31", "2025-01-31T23:59:59Z", PeriodMonth, time.UTC, "2025-01-01T00:00:00Z", "2025-02-01T00:00:00Z", 744},
		{"february leap", "2024-02-29T12:00:00Z", PeriodMonth, time.UTC, "2024-02-01T00:00:00Z", "2024-03-01T00:00:00Z", 29 * 24},
		{"february common", "2023-02-28T12:00:00Z", PeriodMonth, time.UTC, "2023-02-01T00:00:00Z", "2023-03-01T00:00:00Z", 28 * 24},
		{"december rolls year", "2024-12-15T00:00:00Z", PeriodMonth, time.UTC, "2024-12-01T00:00:00Z", "2025-01-01T00:00:00Z", 0},
		{"zone: still february locally", "2024-03-01T03:00:00Z", PeriodMonth, ny, "2024-02-01T05:00:00Z", "2024-03-01T05:00:00Z", 0},
		{"zone: already march in Berlin", "2024-02-29T23:30:00Z", PeriodMonth, berlin, "2024-02-29T23:00:00Z", "2024-03-31T22:00:00Z", 0},
		{"DST spring day 23h", "2024-03-10T12:00:00-04:00", PeriodDay, ny, "2024-03-10T05:00:00Z", "2024-03-11T04:00:00Z", 23},
		{"DST autumn day 25h", "2024-11-03T12:00:00-05:00", PeriodDay, ny, "2024-11-03T04:00:00Z", "2024-11-04T05:00:00Z", 25},
		{"midnight skipped: the day before ends at the change", "2025-09-06T23:10:00-04:00", PeriodDay, santiago, "2025-09-06T04:00:00Z", "2025-09-07T04:00:00Z", 24},
		{"midnight skipped: the day starts at the change", "2025-09-07T12:00:00-03:00", PeriodDay, santiago, "2025-09-07T04:00:00Z", "2025-09-08T03:00:00Z", 23},
		{"midnight skipped: the week ends as usual", "2025-09-07T12:00:00-03:00", PeriodWeek, santiago, "2025-09-01T04:00:00Z", "2025-09-08T03:00:00Z", 167},
		{"week from monday", "2024-06-09T10:00:00Z", PeriodWeek, time.UTC, "2024-06-03T00:00:00Z", "2024-06-10T00:00:00Z", 168},
		{"week monday itself", "2024-06-10T00:00:00Z", PeriodWeek, time.UTC, "2024-06-10T00:00:00Z", "2024-06-17T00:00:00Z", 168},
		{"leap year", "2024-12-31T23:59:59Z", PeriodYear, time.UTC, "2024-01-01T00:00:00Z", "2025-01-01T00:00:00Z", 366 * 24},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start, end := periodBounds(mustTime(t, tt.now), tt.period, tt.loc)
			if !start.Equal(mustTime(t, tt.start)) || !end.Equal(mustTime(t, tt.end)) {
				t.Fatalf("bounds = %v – %v, want %s – %s", start.UTC(), end.UTC(), tt.start, tt.end)
			}
			if tt.hours != 0 && end.Sub(start).Hours() != tt.hours {
				t.Fatalf("length %v h, want %v", end.Sub(start).Hours(), tt.hours)
			}
		})
	}
}

func TestWindowBounds(t *testing.T) {
	tests := []struct {
		at, per    time.Duration
		start, end time.Duration
	}{
		{59*time.Second + 999*time.Millisecond, time.Minute, 0, time.Minute},
		{time.Minute, time.Minute, time.Minute, 2 * time.Minute},
		{100 * time.Second, 90 * time.Second, 90 * time.Second, 180 * time.Second},
		{-time.Second, time.Minute, -time.Minute, 0},
	}
	for _, tt := range tests {
		s, e := state.WindowBounds(int64(tt.at), tt.per)
		if s != int64(tt.start) || e != int64(tt.end) {
			t.Errorf("state.WindowBounds(%v, %v) = %v, %v; want %v, %v", tt.at, tt.per, time.Duration(s), time.Duration(e), tt.start, tt.end)
		}
	}
}

// step is one request at an offset from the start, with the expected verdict.
type step struct {
	at        time.Duration
	cost      int64
	allowed   bool
	remaining int64
	retry     time.Duration // checked when non-zero
}

func runSteps(t *testing.T, l LimitConfig, start time.Time, steps []step) {
	t.Helper()
	l.Name = "l"
	in := CompileInput{Apps: map[string]AppLimits{"a": {Limits: []LimitConfig{l}}}}
	e := mustCompile(t, in, memStore(t, MemoryConfig{}, nil))
	for i, s := range steps {
		res, err := e.Limit(context.Background(), start.Add(s.at), policy.LimitRequest{App: "a", Cost: s.cost})
		if err != nil {
			t.Fatal(err)
		}
		if (res.Code == "") != s.allowed || res.Remaining != s.remaining || (s.retry != 0 && res.RetryAfter != s.retry) {
			t.Fatalf("step %d at %v: got code %q remaining %d retry %v; want allowed=%v remaining %d retry %v",
				i, s.at, res.Code, res.Remaining, res.RetryAfter, s.allowed, s.remaining, s.retry)
		}
	}
}

func TestGCRA(t *testing.T) {
	start := mustTime(t, "2025-01-01T00:00:00Z")
	t.Run("burst then refill", func(t *testing.T) {
		var steps []step
		for i := int64(0); i < 100; i++ { // 50/s with bursts of 100: 100 at once
			steps = append(steps, step{cost: 1, allowed: true, remaining: 99 - i})
		}
		steps = append(steps,
			step{cost: 1, allowed: false, remaining: 0, retry: 20 * time.Millisecond},
			step{at: 19 * time.Millisecond, cost: 1, allowed: false, remaining: 0, retry: time.Millisecond},
			step{at: 20 * time.Millisecond, cost: 1, allowed: true, remaining: 0},
			step{at: time.Second + 20*time.Millisecond, cost: 1, allowed: true, remaining: 49},
			step{at: time.Second + 20*time.Millisecond, cost: 50, allowed: false, remaining: 49, retry: 20 * time.Millisecond},
			step{at: time.Second + 20*time.Millisecond, cost: 49, allowed: true, remaining: 0},
		)
		runSteps(t, LimitConfig{Algorithm: "gcra", Requests: 50, Per: time.Second, Burst: 100}, start, steps)
	})
	t.Run("full after idle", func(t *testing.T) {
		runSteps(t, LimitConfig{Algorithm: "gcra", Requests: 2, Per: time.Second, Burst: 2}, start, []step{
			{cost: 1, allowed: true, remaining: 1},
			{cost: 1, allowed: true, remaining: 0},
			{cost: 1, allowed: false, retry: 500 * time.Millisecond},
			{at: time.Hour, cost: 1, allowed: true, remaining: 1},
			{at: time.Hour, cost: 3, allowed: false, remaining: 1},
		})
	})
}

func TestFixedWindow(t *testing.T) {
	start := mustTime(t, "2025-01-01T00:00:00Z")
	runSteps(t, LimitConfig{Requests: 3, Per: time.Minute}, start, []step{
		{at: 0, cost: 1, allowed: true, remaining: 2},
		{at: 30 * time.Second, cost: 1, allowed: true, remaining: 1},
		{at: 59 * time.Second, cost: 1, allowed: true, remaining: 0},
		{at: 59*time.Second + 999*time.Millisecond, cost: 1, allowed: false, remaining: 0, retry: time.Millisecond},
		{at: time.Minute, cost: 1, allowed: true, remaining: 2},
		{at: time.Minute, cost: 3, allowed: false, remaining: 2, retry: time.Minute},
		{at: time.Minute, cost: 2, allowed: true, remaining: 0},
	})
	t.Run("90s window", func(t *testing.T) {
		runSteps(t, LimitConfig{Requests: 1, Per: 90 * time.Second}, start, []step{
			{at: 0, cost: 1, allowed: true},
			{at: 89 * time.Second, cost: 1, allowed: false, retry: time.Second},
			{at: 90 * time.Second, cost: 1, allowed: true},
		})
	})
}

func TestCalendarQuota(t *testing.T) {
	berlin := "Europe/Berlin"
	// 2025-01-31 22:59 UTC is 23:59 in Berlin; 23:00 UTC is already February there.
	start := mustTime(t, "2025-01-31T22:00:00Z")
	runSteps(t, LimitConfig{Requests: 2, Period: "month", TimeZone: berlin}, start, []step{
		{at: 0, cost: 1, allowed: true, remaining: 1},
		{at: 59 * time.Minute, cost: 1, allowed: true, remaining: 0},
		{at: 59*time.Minute + 59*time.Second, cost: 1, allowed: false, retry: time.Second},
		{at: time.Hour, cost: 1, allowed: true, remaining: 1},
	})
	t.Run("leap day", func(t *testing.T) {
		start := mustTime(t, "2024-02-28T23:59:59Z")
		runSteps(t, LimitConfig{Requests: 1, Period: "day"}, start, []step{
			{at: 0, cost: 1, allowed: true},
			{at: time.Second, cost: 1, allowed: true}, // 29 Feb is a day of its own
			{at: time.Second + 24*time.Hour - time.Nanosecond, cost: 1, allowed: false},
			{at: 24*time.Hour + time.Second, cost: 1, allowed: true},
		})
	})
	t.Run("DST day in New York is 23h", func(t *testing.T) {
		start := mustTime(t, "2024-03-10T05:00:00Z") // local midnight
		runSteps(t, LimitConfig{Requests: 1, Period: "day", TimeZone: "America/New_York"}, start, []step{
			{at: 0, cost: 1, allowed: true},
			{at: 23*time.Hour - time.Second, cost: 1, allowed: false, retry: time.Second},
			{at: 23 * time.Hour, cost: 1, allowed: true},
		})
	})
}
