package ratelimit

import "time"

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
