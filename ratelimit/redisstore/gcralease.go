package redisstore

import (
	"context"
	_ "embed"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse/gatehouse/ratelimit/state"
	"github.com/redis/rueidis"
)

// gcraLeaseScript takes a request's units, and up to ARGV[5] more for the replica's lease,
// from the token bucket KEYS[1]: ARGV now (µs), burst, cost, interval (µs), extra, and at
// most a quarter of what the bucket has left after the request's own (near empty, few
// units sit unused in leases). It never refuses a request that fits for want of extra units.
// Reply: admitted, the TAT after the call (µs; unchanged when refused), units taken.
var gcraLeaseScript = newLuaScript(gcraLeaseScriptText)

//go:embed lua/gcralease.lua
var gcraLeaseScriptText string

// gcraBackScript moves the TAT of bucket KEYS[1] back by ARGV[2] µs, not before now
// (ARGV[3]), only if it is still ARGV[1]: no reservation came after the one whose last
// units go back, so no other replica holds the slots they free.
var gcraBackScript = newLuaScript(gcraBackScriptText)

//go:embed lua/gcraback.lua
var gcraBackScriptText string

const (
	// gcraLeaseMax bounds the units one reservation asks for beyond the request's own.
	gcraLeaseMax = 16
	// gcraLeaseShare: a reservation takes at most 1/gcraLeaseShare of the burst, so that
	// other replicas keep most of a device's burst.
	gcraLeaseShare = 4
	// gcraStreak: requests on one bucket less than this apart make a streak, which
	// leases units (a device's burst of calls as an app opens).
	gcraStreak = time.Second
)

// gcraLeases lets a replica admit requests of a busy token bucket (a device's inline
// throttle) without a round trip, from units it took from the bucket in Redis
// beforehand. A request that goes to Redis less than gcraStreak after the one before
// (a device in a session) asks, in the same script, for gcraLeaseMax more units (at most
// a quarter of the burst, less its own). Taking units moves the bucket's TAT in Redis as admitting them
// would: the units the replica holds occupy the last slots of the emission schedule
// before that TAT (one interval each), and a held unit is used only before its slot
// ends; units whose slot has ended are dropped (the bucket has refilled them in Redis).
// So every admitted request owns a slot of Redis's schedule that had not ended when it
// was admitted: across any number of replicas, a device never gets more than the bucket
// allows, in any span d at most burst + d/interval. The price: while a replica holds
// units, other replicas see that many fewer (at most a quarter of the burst per replica,
// for at most gcraLeaseMax intervals).
type gcraLeases struct {
	n      atomic.Int64
	shards [leaseShards]gcraShard
}

type gcraShard struct {
	mu sync.Mutex
	m  map[uint64]*gcraLease
	_  [48]byte
}

// gcraLease is one replica's units of one bucket.
type gcraLease struct {
	key      state.Key
	burst    int64 // the op's burst and interval when the units were taken: they serve only those
	interval int64
	slot     int64 // ns: the interval as Redis counts it (whole µs), one held unit's slot
	end      int64 // ns: the TAT Redis replied when the units were taken; held units' slots end by then
	left     int64
	last     int64 // ns: the last request on the bucket
	streak   int64
	pending  bool // a reservation with extra units is in flight: concurrent requests ask for none
}

func newGCRALeases() *gcraLeases {
	g := &gcraLeases{}
	for i := range g.shards {
		g.shards[i].m = make(map[uint64]*gcraLease)
	}
	return g
}

// gcraLeasable: an enforcing token bucket that counts, with a burst a lease can share.
func gcraLeasable(op *state.Op) bool {
	return op.Kind == state.KindGCRA && op.Cost > 0 && !op.Shadow && !op.Always && !op.Exact &&
		op.Interval > 0 && op.Limit >= 2*gcraLeaseShare
}

// usable is how many held units may still be used at ns: those whose slot has not ended.
func (e *gcraLease) usable(ns int64) int64 {
	return max(min(e.left, (e.end-ns)/e.slot), 0)
}

// take serves op from the lease when it holds enough usable units (local), and else
// returns how many extra units the request should ask for. The entry is created when
// there is room.
func (g *gcraLeases) take(id uint64, op *state.Op, ns int64) (value, end, extra int64, local bool) {
	sh := &g.shards[id%leaseShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.m[id]
	switch {
	case e == nil:
		if g.n.Load() >= leaseKeys {
			return 0, 0, 0, false
		}
		g.n.Add(1)
		e = &gcraLease{key: op.Key}
		sh.m[id] = e
	case !sameCounter(&e.key, &op.Key): // another bucket with this digest: Redis alone
		return 0, 0, 0, false
	}
	if ns-e.last < int64(gcraStreak) {
		e.streak++
	} else {
		e.streak = 0
	}
	e.last = max(e.last, ns)
	if e.burst == op.Limit && e.interval == op.Interval {
		if e.left = e.usable(ns); e.left >= op.Cost {
			e.left -= op.Cost
			return e.end - e.left*e.slot, e.end, 0, true
		}
	}
	if e.pending {
		return 0, 0, 0, false
	}
	if e.streak > 0 { // a second request within gcraStreak: the device is in a session
		extra = max(min(gcraLeaseMax, op.Limit/gcraLeaseShare-op.Cost), 0)
	}
	e.pending = extra > 0
	return 0, 0, extra, false
}

// fill ends the reservation of a request that asked for extra units: Redis granted
// extra of them (0 on a refusal or a failure), the TAT after it being end. Units still
// held from before (given back meanwhile) are dropped: they stay counted in Redis, fewer
// admissions, never more.
func (g *gcraLeases) fill(id uint64, op *state.Op, end, extra int64) {
	sh := &g.shards[id%leaseShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.m[id]
	if e == nil || !sameCounter(&e.key, &op.Key) {
		return
	}
	e.pending = false
	if extra > 0 && end >= e.end {
		e.burst, e.interval, e.slot, e.end, e.left = op.Limit, op.Interval, gcraSlot(op), end, extra
	}
}

// covers reports whether the lease holds usable units for op: an over-limit mark, set by
// a refusal this replica saw, must not refuse what its own lease admits.
func (g *gcraLeases) covers(id uint64, op *state.Op, ns int64) bool {
	if g == nil || !gcraLeasable(op) {
		return false
	}
	sh := &g.shards[id%leaseShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.m[id]
	return e != nil && sameCounter(&e.key, &op.Key) && e.burst == op.Limit && e.interval == op.Interval && e.usable(ns) >= op.Cost
}

// giveBack returns a request's units to the lease when another limit refused the
// request (or the call failed) after the bucket admitted it; the units keep their slots
// (the last ones before end). It reports false when the lease is gone or has been
// refilled since: the caller then refunds the units in Redis.
func (g *gcraLeases) giveBack(id uint64, op *state.Op, end int64) (int64, bool) {
	sh := &g.shards[id%leaseShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.m[id]
	if e == nil || !sameCounter(&e.key, &op.Key) || e.end != end || e.burst != op.Limit || e.interval != op.Interval {
		return 0, false
	}
	e.left += op.Cost
	return e.end - e.left*e.slot, true
}

// gcraSlot is op's emission interval as Redis counts it: whole µs, at least 1.
func gcraSlot(op *state.Op) int64 { return max(op.Interval/1000, 1) * 1000 }

// sweep forgets the buckets without a request since before ns−gcraStreak whose held
// units have all expired.
func (g *gcraLeases) sweep(ns int64) {
	for i := range g.shards {
		sh := &g.shards[i]
		sh.mu.Lock()
		for id, e := range sh.m {
			if ns-e.last >= int64(gcraStreak) && e.end <= ns {
				delete(sh.m, id)
				g.n.Add(-1)
			}
		}
		sh.mu.Unlock()
	}
}

// throttleShape returns the index of the one token bucket that gcraLeasable accepts
// among ops whose others are all counters applyCounters may count on their own
// (enforcing, not Always): the inline device throttle beside quotas. -1: another shape.
func throttleShape(ops []state.Op) int {
	g := -1
	for i := range ops {
		op := &ops[i]
		switch {
		case op.Kind == state.KindGCRA && g < 0 && gcraLeasable(op):
			g = i
		case op.Kind == state.KindCounter && op.Cost >= 0 && !op.Shadow && !op.Always:
		default:
			return -1
		}
	}
	return g
}

// applyThrottle evaluates a request with one token bucket (ops[g]) and counters: the
// bucket first, from the replica's lease or with the lease script (one key, a fraction
// of the general script's Redis CPU), then, if it admits, the counters by applyCounters
// (whose leases usually serve them without a round trip). A request the counters refuse
// gives its units back to the bucket's lease (or, when the lease moved on, refunds them
// in a second round trip), so a refused request consumes nothing, as with the general
// script; meanwhile a concurrent request on the same device may see those units taken.
// When the bucket refuses, the counters are not asked: they are reported Unknown.
// shared: this replica's share (shares.go) admitted the bucket's units already; Redis
// and the lease are not asked, and its caller gives the units back on a refusal.
func (s *Store) applyThrottle(ctx context.Context, ops []state.Op, out []state.Outcome, g int, ns int64, shared bool) error {
	op := &ops[g]
	id := s.leaseID(op)
	var value, end, extra int64
	local := shared
	if !shared {
		value, end, extra, local = s.gcra.take(id, op, ns)
	} else {
		value = ns // Redis's part is not known: the caller's outcome takes it as full
	}
	if local {
		out[g] = state.Outcome{Allowed: true, Value: value}
	} else {
		o, tat, err := s.reserveGCRA(ctx, op, id, extra, ns)
		if err != nil {
			return err
		}
		out[g], end = o, tat
		if !o.Allowed {
			for i := range ops {
				if i != g {
					out[i] = state.Outcome{Allowed: true, Unknown: true}
				}
			}
			s.rememberOver(op, o, ns)
			return nil
		}
	}
	if len(ops) == 1 {
		return nil
	}
	err := s.throttleCounters(ctx, ops, out, g, ns)
	commit := err == nil
	for i := range ops {
		commit = commit && (i == g || out[i].Allowed)
	}
	if commit || shared {
		return err
	}
	if v, ok := s.gcra.giveBack(id, op, end); ok {
		out[g].Value = v
	} else if s.refundGCRA(ctx, op, end, ns) {
		out[g].Value -= op.Cost * gcraSlot(op)
	}
	return err
}

// reserveGCRA runs the lease script for op: its units plus up to extra for the lease,
// which it fills with what Redis granted beyond the request's own. It returns the op's
// outcome (its Value leaves out the units leased) and Redis's TAT after the call (ns).
func (s *Store) reserveGCRA(ctx context.Context, op *state.Op, id uint64, extra, ns int64) (state.Outcome, int64, error) {
	iv := max(op.Interval/1000, 1)
	key := op.Key.Render(s.prefix, s.cluster)
	if extra == 0 && op.Cost <= op.Limit {
		tat, ok, err := s.takeFullGCRA(ctx, key, op.Cost*iv, ns)
		if err != nil {
			return state.Outcome{}, 0, err
		}
		if ok {
			return state.Outcome{Allowed: true, Value: tat}, tat, nil
		}
	}
	args := []string{strconv.FormatInt(ns/1000, 10), strconv.FormatInt(op.Limit, 10),
		strconv.FormatInt(op.Cost, 10), strconv.FormatInt(iv, 10), strconv.FormatInt(extra, 10)}
	var res []int64
	err := s.call(ctx, "EVALSHA", func(r redisCall) error {
		reply := r.do(r.c.B().Evalsha().Sha1(gcraLeaseScript.sha).Numkeys(1).Key(key).Arg(args...).Build())
		if rerr, ok := rueidis.IsRedisErr(reply.Error()); ok && rerr.IsNoScript() { // Redis restarted
			reply = r.do(r.c.B().Eval().Script(gcraLeaseScript.text).Numkeys(1).Key(key).Arg(args...).Build())
		}
		var err error
		res, err = reply.AsIntSlice()
		return err
	})
	if err == nil && len(res) != 3 {
		err = fmt.Errorf("%w: lease script returned %d values", state.ErrUnavailable, len(res))
	}
	if err != nil {
		if extra > 0 {
			s.gcra.fill(id, op, 0, 0)
		}
		return state.Outcome{}, 0, err
	}
	tat := res[1] * 1000 // µs in Redis
	var leased int64
	if res[0] == 1 {
		leased = max(res[2]-op.Cost, 0)
	}
	if extra > 0 {
		s.gcra.fill(id, op, tat, leased)
	}
	if res[0] != 1 {
		return state.Outcome{Value: tat}, tat, nil
	}
	return state.Outcome{Allowed: true, Value: tat - leased*gcraSlot(op)}, tat, nil
}

// takeFullGCRA takes a request's span µs of a token bucket whose key does not exist in
// Redis, with a plain SET NX instead of the lease script: the key lives exactly while
// the bucket's TAT is ahead of the time it was written for (the script sets it with that
// expiry), so a missing key is a full bucket, where the script would admit and write
// now + span, as this does. It reports ok false, with no error, when the key exists (the
// bucket has been used since: the caller runs the script, which decides). A device's
// first request in a while (most requests of a large fleet) then costs Redis a SET, a
// fraction of a script's CPU. The TAT after the call is returned in ns.
func (s *Store) takeFullGCRA(ctx context.Context, key string, span, ns int64) (tat int64, ok bool, err error) {
	nxt := ns/1000 + span
	err = s.call(ctx, "SET", func(r redisCall) error {
		reply := r.do(r.c.B().Set().Key(key).Value(strconv.FormatInt(nxt, 10)).Nx().PxMilliseconds(max((span+999)/1000, 1)).Build())
		if err := reply.Error(); err != nil {
			if rueidis.IsRedisNil(err) { // NX: the key exists
				return nil
			}
			return err
		}
		ok = true
		return nil
	})
	return nxt * 1000, ok, err
}

// throttleCounters counts the ops other than the bucket ops[g] with applyCounters.
func (s *Store) throttleCounters(ctx context.Context, ops []state.Op, out []state.Outcome, g int, ns int64) error {
	switch g {
	case 0:
		return s.applyCounters(ctx, ops[1:], out[1:], ns)
	case len(ops) - 1:
		return s.applyCounters(ctx, ops[:g], out[:g], ns)
	}
	rest := append(append(make([]state.Op, 0, len(ops)-1), ops[:g]...), ops[g+1:]...)
	restOut := make([]state.Outcome, len(rest))
	err := s.applyCounters(ctx, rest, restOut, ns)
	copy(out[:g], restOut[:g])
	copy(out[g+1:], restOut[g:])
	return err
}

// refundGCRA gives a refused request's units back to its bucket in Redis when its
// reservation, ending at end (ns), is still the last one; else (or should it fail) they
// stay taken: fewer admissions, never more (a TAT moved back under a later reservation
// would free slots another replica holds).
func (s *Store) refundGCRA(ctx context.Context, op *state.Op, end, ns int64) bool {
	key := op.Key.Render(s.prefix, s.cluster)
	args := []string{strconv.FormatInt(end/1000, 10), strconv.FormatInt(op.Cost*(gcraSlot(op)/1000), 10),
		strconv.FormatInt(ns/1000, 10)}
	var back int64
	_ = s.call(ctx, "EVALSHA", func(r redisCall) error {
		var err error
		back, err = r.do(r.c.B().Eval().Script(gcraBackScript.text).Numkeys(1).Key(key).Arg(args...).Build()).AsInt64()
		return err
	})
	return back == 1
}
