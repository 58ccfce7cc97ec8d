package state

import (
	"math"
	"time"
)

// Kind says how a store evaluates an [Op].
type Kind uint8

const (
	// KindCounter admits Cost more units if the counter stays ≤ Limit; the counter
	// expires at Expire (unix ns; 0 = never, as for prepaid credits).
	KindCounter Kind = iota + 1
	// KindGCRA is the generic cell rate algorithm (a token bucket): Interval is the
	// emission interval in ns (the time one unit takes to refill), Limit the burst. The
	// stored value is the theoretical arrival time (TAT, unix ns).
	KindGCRA
	// KindPeek reads a value without changing it.
	KindPeek
	// KindSet stores Limit as the value, expiring at Expire.
	KindSet
)

// Op is one limit to evaluate against the store.
type Op struct {
	Key      Key
	Kind     Kind
	Limit    int64 // counter: most units per window; gcra: burst; set: the value
	Cost     int64 // units this request consumes (≥ 1; 0: check without counting; < 0: a refund)
	Interval int64 // gcra: emission interval, ns
	Expire   int64 // counter, set: unix ns when the value expires; 0 = never
	Shadow   bool  // a denial of this op never blocks the others (it is only reported)
	Persist  bool  // the memory store writes the value to its file (quotas, credits)
	Exact    bool  // the outcome's Value must be the store's own count (never leased): a lockout's failures
	// Always counts the op on its own, as envoyproxy/ratelimit counts: it neither blocks
	// the batch's other ops nor is blocked by them, and a counter keeps its Cost even when
	// it goes past Limit (the next request sees it). A token bucket still commits only
	// what it admits: a refused request moves no TAT.
	Always bool
}

// Outcome is what the store reports for one Op.
type Outcome struct {
	// Allowed: this op alone admits the request (for a peek: the value exists).
	Allowed bool
	// Unknown: the store answered without looking (an over-limit mark decided the
	// request first); Value is then meaningless.
	Unknown bool
	// Value is the stored value after the call: the count or TAT that was committed,
	// or the unchanged one when the request was not admitted. For a Redis counter with
	// leases, the count leaves out the units this replica leased and has not used.
	Value int64
	// Expire is the value's expiry (peek only), unix ns; 0 = none.
	Expire int64
}

// CounterStep is the fixed-window / calendar / credits algorithm: cur is the stored count
// (0 when absent). A sum past the top of int64 stays at the top, refused: a counter that
// keeps refused units (Op.Always) must never wrap to a count that admits.
func CounterStep(cur, cost, limit int64) (next int64, ok bool) {
	next = cur + cost
	if cost > 0 && next < cur {
		return math.MaxInt64, false
	}
	return next, next <= limit
}

// GCRAStep is the GCRA: tat is the stored theoretical arrival time (≤ 0 when absent), now
// and the result in ns. A request of cost units is admitted when, after adding cost
// emission intervals, the TAT lies no more than burst intervals ahead of now. A cost above
// the burst never fits (and cost×interval could overflow).
func GCRAStep(tat, now, cost, interval, burst int64) (next, base int64, ok bool) {
	base = max(tat, now)
	if cost > burst {
		return base, base, false
	}
	next = base + cost*interval
	return next, base, next-now <= burst*interval
}

// RefundCounter gives back -cost units (cost < 0) of a count, never below zero.
func RefundCounter(cur, cost int64) int64 { return max(cur+cost, 0) }

// RefundGCRA moves a TAT back by -cost intervals (cost < 0), to a full bucket at most.
func RefundGCRA(tat, now, cost, interval, burst int64) int64 {
	return max(max(tat, now)+max(cost, -burst)*interval, now)
}

// OverUntil reports whether op is out of units even for a request of cost 1 given the
// committed value v, and until when (unix ns) that holds.
func OverUntil(op *Op, v, now int64) (int64, bool) {
	switch op.Kind {
	case KindCounter:
		if v < op.Limit {
			return 0, false
		}
		if op.Expire == 0 {
			return now + int64(time.Second), true // credits: until a top-up, re-check often
		}
		return op.Expire, true
	case KindGCRA:
		until := v - (op.Limit-1)*op.Interval
		return until, until > now
	}
	return 0, false
}

// WindowBounds returns the fixed window of length per containing now, aligned to the Unix
// epoch (a 1-minute window starts on the minute, a 1-day window at 00:00 UTC).
func WindowBounds(ns int64, per time.Duration) (start, end int64) {
	p := int64(per)
	start = ns - ((ns%p)+p)%p
	return start, start + p
}
