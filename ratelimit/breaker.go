package ratelimit

import (
	"sync"
	"time"
)

// breaker is a consecutive-failure circuit breaker. Closed: calls pass. After `failures`
// consecutive failures it opens: calls fail at once (microseconds instead of a timeout).
// After `cooldown` one probe call passes (half-open); its success closes the breaker, its
// failure opens it for another cooldown.
type breaker struct {
	mu        sync.Mutex
	failures  int
	cooldown  time.Duration
	count     int
	open      bool
	openedAt  time.Time
	probing   bool
	probeFrom time.Time
}

// allow reports whether a call may go to the store now; probe is true for the single
// half-open probe, which must report back with done.
func (b *breaker) allow(now time.Time) (ok, probe bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.open {
		return true, false
	}
	if now.Sub(b.openedAt) < b.cooldown {
		return false, false
	}
	if b.probing && now.Sub(b.probeFrom) < b.cooldown { // a probe is out; a lost one expires
		return false, false
	}
	b.probing, b.probeFrom = true, now
	return true, true
}

// done records the outcome of a call that allow let through.
func (b *breaker) done(now time.Time, probe, failed bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if probe {
		b.probing = false
	}
	if !failed {
		b.count, b.open = 0, false
		return
	}
	b.count++
	if probe || b.count >= b.failures {
		b.open, b.openedAt = true, now
	}
}

// isOpen reports whether calls are currently refused (tests, readiness).
func (b *breaker) isOpen() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.open
}
