package ratelimit

import (
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/ratelimit/state"
)

// algorithm is how a compiled rule counts.
type algorithm uint8

const (
	algFixedWindow algorithm = iota + 1
	algGCRA
	algCalendar
	algCredits
)

// component is one kind of entity a limit is keyed on.
type component uint8

const (
	compDevice component = iota + 1
	compApp
	compEndpoint
	compIP
	compLicense
	compOrg
)

var componentNames = map[string]component{
	"device": compDevice, "app": compApp, "endpoint": compEndpoint,
	"ip": compIP, "license": compLicense, "org": compOrg,
}

// rule is one compiled limit. It is immutable once compiled, except for the cached
// calendar period.
type rule struct {
	id       string // counter identity: scope, owner, name and algorithm
	label    string // scope/owner/name, for metrics
	idh      uint64 // state.IDHash(id)
	name     string
	alg      algorithm
	requests int64
	per      time.Duration
	burst    int64
	interval int64 // gcra: ns per unit
	period   Period
	loc      *time.Location
	shadow   bool
	persist  bool
	code     policy.Code
	comps    []component
	cur      atomic.Pointer[periodSpan] // calendar: the period last computed
}

type periodSpan struct{ start, end int64 }

// signature makes the counter identity change when the way of counting changes, so a
// reload never reads a GCRA's TAT as a window's count.
func (r *rule) signature() string {
	switch r.alg {
	case algGCRA:
		return "g" + strconv.FormatInt(r.interval, 36)
	case algCalendar:
		return "c" + strconv.Itoa(int(r.period)) + r.loc.String()
	case algCredits:
		return "k"
	default:
		return "w" + strconv.FormatInt(int64(r.per), 36)
	}
}

// value returns the request's value for c ("" when unknown).
func value(req *policy.LimitRequest, org string, c component) string {
	switch c {
	case compDevice:
		return req.Device
	case compApp:
		return req.App
	case compEndpoint:
		return req.Endpoint
	case compIP:
		return req.IP
	case compLicense:
		return req.License
	default:
		return org
	}
}

// fill completes op for this rule at now: op.Key already carries ID, tag and parts; it
// gets its window here. Filling in place keeps the hot path free of struct copies.
func (r *rule) fill(op *Op, now time.Time, cost int64) {
	switch r.alg {
	case algGCRA:
		op.Kind, op.Limit, op.Interval, op.Expire, op.Persist = KindGCRA, r.burst, r.interval, 0, false
	case algCredits:
		op.Kind, op.Limit, op.Interval, op.Expire, op.Persist = KindCounter, r.requests, 0, 0, true
	case algCalendar:
		sp := r.span(now)
		op.Key.Window = sp.start
		op.Kind, op.Limit, op.Interval, op.Expire, op.Persist = KindCounter, r.requests, 0, sp.end, true
	default:
		start, end := state.WindowBounds(now.UnixNano(), r.per)
		op.Key.Window = start
		op.Kind, op.Limit, op.Interval, op.Expire, op.Persist = KindCounter, r.requests, 0, end, r.persist
	}
	op.Cost = cost
	op.Shadow = r.shadow
	op.Key.Seal()
}

// span returns the calendar period containing now, reusing the last one computed.
func (r *rule) span(now time.Time) periodSpan {
	ns := now.UnixNano()
	if sp := r.cur.Load(); sp != nil && ns >= sp.start && ns < sp.end {
		return *sp
	}
	start, end := periodBounds(now, r.period, r.loc)
	sp := &periodSpan{start: start.UnixNano(), end: end.UnixNano()}
	r.cur.Store(sp)
	return *sp
}
