package ratelimit

import (
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

// counterStep is the fixed-window / calendar / credits algorithm: cur is the stored count
// (0 when absent).
func counterStep(cur, cost, limit int64) (next int64, ok bool) {
	next = cur + cost
	return next, next <= limit && next >= cur
}

// gcraStep is the GCRA: tat is the stored theoretical arrival time (≤ 0 when absent), now
// and the result in ns. A request of cost units is admitted when, after adding cost
// emission intervals, the TAT lies no more than burst intervals ahead of now. A cost above
// the burst never fits (and cost×interval could overflow).
func gcraStep(tat, now, cost, interval, burst int64) (next, base int64, ok bool) {
	base = max(tat, now)
	if cost > burst {
		return base, base, false
	}
	next = base + cost*interval
	return next, base, next-now <= burst*interval
}

// refundCounter gives back -cost units (cost < 0) of a count, never below zero.
func refundCounter(cur, cost int64) int64 { return max(cur+cost, 0) }

// refundGCRA moves a TAT back by -cost intervals (cost < 0), to a full bucket at most.
func refundGCRA(tat, now, cost, interval, burst int64) int64 {
	return max(max(tat, now)+max(cost, -burst)*interval, now)
}

// overUntil reports whether op is out of units even for a request of cost 1 given the
// committed value v, and until when (unix ns) that holds.
func overUntil(op *Op, v, now int64) (int64, bool) {
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

// Status is one limit's state after a request, as the headers and RLS statuses need it.
type Status struct {
	Limit      int64
	Remaining  int64
	Reset      time.Time     // when the limit is fully available again; zero: never by itself
	RetryAfter time.Duration // on denial: the wait until the same request could pass
}

// status derives the headers' view of rule r from its op and outcome.
func (r *rule) status(op *Op, out Outcome, now time.Time) Status {
	ns := now.UnixNano()
	switch op.Kind {
	case KindGCRA:
		st := Status{Limit: op.Limit}
		if out.Unknown {
			st.Reset = now
			return st
		}
		avail := ns + op.Limit*op.Interval - out.Value
		st.Remaining = clamp(avail/op.Interval, 0, op.Limit)
		st.Reset = time.Unix(0, max(out.Value, ns)).UTC()
		if !out.Allowed {
			// A cost above the burst never passes: the wait until the bucket is full.
			st.RetryAfter = time.Duration(max(out.Value+(min(op.Cost, op.Limit)-op.Limit)*op.Interval-ns, 0))
		}
		return st
	default:
		st := Status{Limit: op.Limit}
		if !out.Unknown {
			st.Remaining = max(op.Limit-out.Value, 0)
		}
		switch {
		case op.Expire != 0:
			st.Reset = time.Unix(0, op.Expire).UTC()
			if !out.Allowed {
				st.RetryAfter = time.Duration(op.Expire - ns)
			}
		case !out.Allowed: // credits: no reset, but a 429 promises a Retry-After
			st.RetryAfter = creditsRetryAfter
		}
		return st
	}
}

// creditsRetryAfter is the wait a refusal for want of credits suggests: only a top-up
// helps, and a client that retries once a minute sees one soon after it lands.
const creditsRetryAfter = time.Minute

// remaining is Status.Remaining without the rest of the status (the hot path compares it).
func remaining(op *Op, out Outcome, ns int64) int64 {
	if out.Unknown {
		return 0
	}
	if op.Kind == KindGCRA {
		return clamp((ns+op.Limit*op.Interval-out.Value)/op.Interval, 0, op.Limit)
	}
	return max(op.Limit-out.Value, 0)
}

func clamp(v, lo, hi int64) int64 { return min(max(v, lo), hi) }

// Period is a calendar period of a quota.
type Period uint8

// The calendar periods: a day from local midnight, a week from Monday, a month from the
// 1st, a year from 1 January.
const (
	PeriodDay Period = iota + 1
	PeriodWeek
	PeriodMonth
	PeriodYear
)

// periodBounds returns the start and the end of the calendar period containing now, in
// loc: days start at local midnight, weeks on Monday, months on the 1st, years on 1 January.
// Bounds are built from dates, so DST days are 23 or 25 hours long and months have their
// real length.
func periodBounds(now time.Time, p Period, loc *time.Location) (start, end time.Time) {
	t := now.In(loc)
	y, m, d := t.Date()
	switch p {
	case PeriodDay:
		return midnight(y, m, d, loc), midnight(y, m, d+1, loc)
	case PeriodWeek:
		back := (int(t.Weekday()) + 6) % 7 // days since Monday
		return midnight(y, m, d-back, loc), midnight(y, m, d-back+7, loc)
	case PeriodYear:
		return midnight(y, 1, 1, loc), midnight(y+1, 1, 1, loc)
	default:
		return midnight(y, m, 1, loc), midnight(y, m+1, 1, loc)
	}
}

// midnight is the start of the date (normalised like time.Date) in loc. Where the clocks
// skip that midnight (DST starting at 00:00, as in Chile or the Azores), the day starts
// when they change: time.Date would give an hour before, on the previous day.
func midnight(y int, m time.Month, d int, loc *time.Location) time.Time {
	t := time.Date(y, m, d, 0, 0, 0, 0, loc)
	if t.Day() != time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Day() {
		_, t = t.ZoneBounds() // t lies in the zone before the change, which ends then
	}
	return t
}

// windowBounds returns the fixed window of length per containing now, aligned to the Unix
// epoch (a 1-minute window starts on the minute, a 1-day window at 00:00 UTC).
func windowBounds(ns int64, per time.Duration) (start, end int64) {
	p := int64(per)
	start = ns - ((ns%p)+p)%p
	return start, start + p
}
