package state

import "time"

// Clock returns the current time. The package never reads the wall clock itself: callers
// pass a Clock (usually [SystemClock]; a fake one in tests) wherever time is needed and
// not already given per call.
type Clock func() time.Time

// SystemClock is the real clock, for callers to pass in production.
func SystemClock() time.Time { return time.Now() }

func OrSystem(c Clock) Clock {
	if c == nil {
		return SystemClock
	}
	return c
}
