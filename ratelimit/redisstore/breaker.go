package redisstore

import (
	"sync"
	"sync/atomic"
	"time"
)

// breaker is a consecutive-failure circuit breaker. Closed: calls pass. It opens after at
// least `failures` consecutive failures spanning at least `window`: calls then fail at
// once (microseconds instead of a timeout). After `cooldown` one probe call passes
// (half-open); its success closes the breaker, its failure opens it for another cooldown.
//
// The window keeps a burst of timeouts from opening it: when the machine stalls for a
// moment, every call in flight times out together, yet Redis is fine. A Redis that is
// down or unreachable fails every call for as long as it stays so.
//
// While closed, allow is one atomic load and a success one more, so that the breaker
// costs the hot path nothing measurable.
type breaker struct {
	failures int
	window   time.Duration
	cooldown time.Duration

	open   atomic.Bool
	streak atomic.Int64 // consecutive failures

	mu        sync.Mutex
	firstFail time.Time // start of the current streak
	openedAt  time.Time
	probing   bool
	probeFrom time.Time
}

// allow reports whether a call may go to the store now; probe is true for the single
// half-open probe, which must report back with done.
func (b *breaker) allow(now time.Time) (ok, probe bool) {
	if !b.open.Load() {
		return true, false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.open.Load() {
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
	if !failed && !probe && !b.open.Load() {
		if b.streak.Load() != 0 {
			b.streak.Store(0)
		}
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if probe {
		b.probing = false
	}
	if !failed {
		b.streak.Store(0)
		b.open.Store(false)
		return
	}
	n := b.streak.Add(1)
	if n == 1 {
		b.firstFail = now
	}
	if probe || (n >= int64(b.failures) && now.Sub(b.firstFail) >= b.window) {
		b.open.Store(true)
		b.openedAt = now
	}
}

// release returns a call that allow let through but that never reached the store (its
// caller was gone): it is neither a success nor a failure.
func (b *breaker) release(probe bool) {
	if probe {
		b.mu.Lock()
		b.probing = false
		b.mu.Unlock()
	}
}

// isOpen reports whether calls are currently refused (tests, readiness, metrics).
func (b *breaker) isOpen() bool { return b.open.Load() }
