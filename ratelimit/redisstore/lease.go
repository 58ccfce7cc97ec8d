package redisstore

import (
	"context"
	"math/bits"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/redis/rueidis"

	"github.com/gatehouse/gatehouse/ratelimit/state"
)

const (
	// leaseShare: a replica asks for at most 1/leaseShare of the units it last saw a
	// counter have left, so that near the limit few units sit unused in leases (units an
	// INCRBY got past the limit are taken back at once: those never count).
	leaseShare = 16
	// defaultLeaseUnits bounds one reservation unless configured.
	defaultLeaseUnits = 64
	// defaultLeaseIdle: units a replica leased and has not used for about this long go
	// back to Redis.
	defaultLeaseIdle = time.Second
	// leaseKeys bounds the counters a replica tracks; past it, new counters are counted
	// one round trip per request.
	leaseKeys   = 100_000
	leaseShards = 64
)

// leases lets a replica admit requests on a busy counter without a round trip, from
// units it reserved in Redis beforehand. A request that goes to Redis anyway (the
// replica's lease is empty) asks, in the same INCRBY, for more units than its own:
// as many as the replica used of the counter in this window so far or in the previous
// one, at most max units and at most 1/leaseShare of what the counter has left. Units
// past the limit are never kept (those an INCRBY got past it are taken back), so a
// counter never admits more than its limit across replicas. The price: near the limit,
// another replica can be refused while this one still holds unused units; it uses them
// for its next requests, and returns them when it has not used them for about the idle
// time, or when it stops. A counter far from its limit costs one round trip per lease
// instead of one per request; limits of at most 2×leaseShare, credits, token buckets,
// shadow limits, lockout counts and checks are counted one round trip per request.
type leases struct {
	max    int64
	keep   int64        // sweeps an entry must be idle before it is forgotten (its calls are over)
	gen    atomic.Int64 // advanced by every sweep; entries record the gens of their last uses
	n      atomic.Int64 // entries
	shards [leaseShards]leaseShard
}

type leaseShard struct {
	mu sync.Mutex
	m  map[uint64]*lease
	_  [48]byte // keep shards' locks on their own cache lines
}

// lease is one replica's state of one counter (all its windows).
type lease struct {
	key     state.Key // the current window's key, to return units
	window  int64     // state.Key.Window of the current window
	left    int64     // units reserved in Redis and not used yet
	limit   int64     // the highest limit any of them was leased under: they serve limits ≥ it
	seen    int64     // the counter's value in Redis, as last seen by this replica (including left)
	used    int64     // units this replica admitted in the window
	prev    int64     // units it admitted in the window before
	pending bool      // a reservation is in flight: concurrent requests do not ask for another
	gone    int64     // units that ever left the lease (used, given back): counts what a held unit may have become
	touched int64     // gen of the last request on the counter
	served  int64     // gen the lease last served a request or grew
	// requeued units go back at the next sweep (a refund that took them never reached
	// Redis).
	requeued int64
}

// add puts units leased under limit into the lease. Units leased under a higher limit
// than a request's must not serve it: other replicas may have counted up to its limit
// since (a reload lowered it, or routes with different limits share the counter).
func (e *lease) add(units, limit int64) {
	if units <= 0 {
		return
	}
	if e.left == 0 {
		e.limit = limit
	} else {
		e.limit = max(e.limit, limit)
	}
	e.left += units
}

// leaseUse is what plan decided for one op of a request.
type leaseUse struct {
	on     bool  // the op is leasable: finish or unplan must follow plan
	pooled int64 // units of the request taken from the lease
	limit  int64 // the lease's limit when they were taken
	extra  int64 // units asked for the lease on top of the request's own
	// held: units leased here and unused when the request was sent, which Redis's count
	// includes (a lease this request could not use): its count leaves them out. gone: the
	// lease's gone then.
	held, gone int64
}

// newLeases returns leases of at most max units, swept every idle/2, for a store whose
// calls (a round trip and a take-back) last at most 2×timeout.
func newLeases(max int64, idle, timeout time.Duration) *leases {
	sweep := idle / 2
	l := &leases{max: max, keep: 2 + int64((2*timeout+10*time.Millisecond+sweep-1)/sweep)}
	for i := range l.shards {
		l.shards[i].m = make(map[uint64]*lease)
	}
	return l
}

// leasable: enforcing counters with an expiry (not credits) that count, with a limit
// large enough for a lease ever to be granted.
func leasable(op *state.Op) bool {
	return op.Kind == state.KindCounter && op.Cost > 0 && !op.Shadow && !op.Exact && op.Expire > 0 && op.Limit > 2*leaseShare
}

func (l *leases) shard(id uint64) *leaseShard { return &l.shards[id%leaseShards] }

// current locks the shard of op's counter and returns it with the counter's lease in
// op's window (nil: none); the caller unlocks the shard.
func (l *leases) current(id uint64, op *state.Op) (*leaseShard, *lease) {
	sh := l.shard(id)
	sh.mu.Lock()
	if e := sh.m[id]; e != nil && e.window == op.Key.Window && sameCounter(&e.key, &op.Key) {
		return sh, e
	}
	return sh, nil
}

// entry returns the lease of op's counter in op's window (nil: none); the caller holds
// the shard's lock.
func (l *leases) entry(id uint64, op *state.Op) *lease {
	if e := l.shard(id).m[id]; e != nil && e.window == op.Key.Window && sameCounter(&e.key, &op.Key) {
		return e
	}
	return nil
}

// A request's shards, as a set: bit i is shard i.
var _ [64 - leaseShards]struct{} // leaseShards ≤ 64: a uint64 holds the set

// shardBit is the set holding id's shard alone.
func shardBit(id uint64) uint64 { return 1 << (id % leaseShards) }

// lock locks the shards in set, once each, in index order: two requests that lock
// overlapping sets never wait on each other in a cycle (every other path holds one shard
// at a time).
func (l *leases) lock(set uint64) {
	for m := set; m != 0; m &= m - 1 {
		l.shards[bits.TrailingZeros64(m)].mu.Lock()
	}
}

// unlock unlocks the shards lock locked.
func (l *leases) unlock(set uint64) {
	for m := set; m != 0; m &= m - 1 {
		l.shards[bits.TrailingZeros64(m)].mu.Unlock()
	}
}

// sameCounter reports whether a and b are the same counter in any window: a lease is
// found by digest, and a key whose digest collides with another's never uses the other's
// lease.
func sameCounter(a, b *state.Key) bool { return state.SameBase(a, b) && a.Tag == b.Tag }

// plan takes what it can of op's units from the lease. It reports local when the
// lease covered all of them (out is then the op's outcome); otherwise the op goes to
// Redis with cost−pooled units plus extra for the lease, and finish must follow. early
// allows a refill before the lease runs dry (refillEarly): not for a request that counts
// the same counter twice, whose other op's units the reply's count would mix in. The
// caller holds the shard's lock (see lock), as for unplan, finish, stillHeld, saw and
// holding: a request plans all its ops under one lock per shard, and settles them under
// one more.
func (l *leases) plan(id uint64, op *state.Op, out *state.Outcome, early bool) (u leaseUse, local bool) {
	if !leasable(op) {
		if op.Kind == state.KindCounter && op.Cost >= 0 && op.Expire > 0 {
			u.held, u.gone = l.holding(id, op) // Redis's count will include them
		}
		return u, false
	}
	u.on = true
	sh := l.shard(id)
	e := sh.m[id]
	if e == nil {
		if l.n.Load() >= leaseKeys {
			return leaseUse{}, false
		}
		l.n.Add(1)
		e = &lease{key: op.Key, window: op.Key.Window}
		sh.m[id] = e
	} else if !sameCounter(&e.key, &op.Key) { // another key with this digest: Redis alone
		return leaseUse{}, false
	}
	if op.Key.Window < e.window { // a late request of the window before: Redis alone
		return leaseUse{}, false // (this window's lease is not in that key's count)
	}
	g := l.gen.Load()
	e.touched = g
	if e.window != op.Key.Window { // a new window: the old one's units went with its key
		*e = lease{key: op.Key, window: op.Key.Window, prev: e.used, touched: g, served: g}
	}
	if e.left > 0 && e.limit <= op.Limit {
		u.pooled, u.limit = min(e.left, op.Cost), e.limit
		e.left -= u.pooled
		e.gone += u.pooled
		e.served = g
		if u.pooled == op.Cost && !(early && l.refillEarly(e, op)) {
			e.used += op.Cost
			*out = state.Outcome{Allowed: true, Value: e.seen - e.left}
			return u, true
		}
	}
	u.held, u.gone = e.left, e.gone
	// More units only into an empty lease or one that serves this limit, and never more
	// than max in all: units this request could not use would pile up unused.
	if !e.pending && (e.left == 0 || e.limit <= op.Limit) {
		if u.extra = l.refill(e, op); u.extra > 0 {
			e.pending = true
		}
	}
	return u, false
}

// refill is how many units a request on op that goes to Redis asks for the lease e: as
// many as the replica used of the counter in this window or the last, at most
// 1/leaseShare of what the counter has left, and never more than max held in all.
func (l *leases) refill(e *lease, op *state.Op) int64 {
	room := (op.Limit - e.seen - op.Cost) / leaseShare
	return max(min(max(e.used, e.prev), room, l.max-e.left), 0)
}

// refillEarly reports whether a request the lease e serves (its units already taken)
// should go to Redis all the same, to ask for more units: when fewer than half of max
// are left and a refill of at least half can be had (far from the limit). The request's
// own units stay those of the lease; the requests that come while the refill is in
// flight are served from what is left, instead of each finding the lease empty and
// making its own round trip. The lease never holds more than max.
func (l *leases) refillEarly(e *lease, op *state.Op) bool {
	return !e.pending && e.left < l.max/2 && e.limit <= op.Limit && l.refill(e, op) >= l.max/2
}

// covers reports whether the lease holds all of op's units: an over-limit mark, set by
// a refusal this replica saw, must not refuse what its own lease admits.
func (l *leases) covers(id uint64, op *state.Op) bool {
	if !leasable(op) {
		return false
	}
	sh, e := l.current(id, op)
	defer sh.mu.Unlock()
	return e != nil && e.left >= op.Cost && e.limit <= op.Limit
}

// unplan gives back the units plan took from the lease for a request that another
// limit refused (or that failed): value is the op's count without them.
func (l *leases) unplan(id uint64, op *state.Op, u leaseUse, local bool, out *state.Outcome) {
	e := l.entry(id, op)
	if e == nil {
		return
	}
	e.add(u.pooled, u.limit)
	if u.extra > 0 {
		e.pending = false
	}
	if local {
		e.used -= op.Cost
		out.Value = e.seen - e.left
	}
}

// finish records the reply to op's INCRBY of cost−pooled+extra units: v is the count
// after it, own the units leased here and unused that it includes. commit says whether
// the request was admitted (then kept of the extra units stay reserved, the rest is taken
// back); otherwise all units are taken back and the pooled ones return to the lease. It
// returns the op's count as this replica knows it: Redis's, less the units it holds
// unused.
func (l *leases) finish(id uint64, op *state.Op, u leaseUse, v int64, commit bool, kept, own int64) int64 {
	sent := op.Cost - u.pooled + u.extra
	e := l.entry(id, op)
	if e == nil { // the window ended meanwhile
		if commit {
			return v - u.extra
		}
		return v - sent
	}
	if u.extra > 0 {
		e.pending = false
	}
	if !commit {
		e.add(u.pooled, u.limit)
		e.seen = max(e.seen, v-sent)
		return v - sent - own - u.pooled
	}
	value := v - u.extra - own
	if kept > 0 {
		e.add(kept, op.Limit)
		e.served = l.gen.Load()
	}
	e.seen = max(e.seen, v-(u.extra-kept))
	e.used += op.Cost
	return value
}

// observe records v, the counter's value in Redis as a script read it (after a refund
// when refund is set), and returns the units this replica holds unused, which the op's
// count does not include.
func (l *leases) observe(id uint64, op *state.Op, v int64, refund bool) int64 {
	sh, e := l.current(id, op)
	defer sh.mu.Unlock()
	if e != nil {
		if refund {
			e.seen = v
		} else {
			e.seen = max(e.seen, v) // a reply older than a native one may read less
		}
		return e.left
	}
	return 0
}

// surrender empties the lease of op's counter and returns its units, which the caller
// gives back to Redis (with a refund, or ahead of a script: see giveUpLeases).
func (l *leases) surrender(id uint64, op *state.Op) lent {
	sh, e := l.current(id, op)
	defer sh.mu.Unlock()
	if e == nil || e.left == 0 {
		return lent{}
	}
	n := lent{units: e.left, limit: e.limit}
	e.seen -= n.units
	e.left = 0
	e.gone += n.units
	return n
}

// lent is what surrender took: units leased under limit.
type lent struct{ units, limit int64 }

// restore puts back what surrender took, when the call that was to give it back never
// reached Redis: the units are still leased here.
func (l *leases) restore(id uint64, op *state.Op, n lent) {
	sh, e := l.current(id, op)
	defer sh.mu.Unlock()
	if e != nil {
		e.add(n.units, n.limit)
		e.seen += n.units
	}
}

// requeue hands units surrender took to the next sweep, which returns them: Redis
// refused to take them back (an error reply, not a timeout, after which they may be
// back already).
func (l *leases) requeue(id uint64, op *state.Op, n int64) {
	sh, e := l.current(id, op)
	defer sh.mu.Unlock()
	if e != nil {
		e.requeued += n
	}
}

// holding returns the units op's counter holds unused, and its gone count.
func (l *leases) holding(id uint64, op *state.Op) (left, gone int64) {
	e := l.entry(id, op)
	if e != nil {
		return e.left, e.gone
	}
	return 0, 0
}

// stillHeld returns how many of the units u held when its request was sent are still
// unused here: units that left the lease since (used by other requests, given back) may
// be the held ones, and units leased since are not in the count the request read.
func (l *leases) stillHeld(id uint64, op *state.Op, u leaseUse) int64 {
	e := l.entry(id, op)
	if e != nil {
		return max(min(u.held-(e.gone-u.gone), e.left), 0)
	}
	return 0
}

// saw records v, the count in Redis after a request on op's counter that the lease did
// not serve (a limit never leased, a check), so that counts from the lease include it.
func (l *leases) saw(id uint64, op *state.Op, v int64) {
	e := l.entry(id, op)
	if e != nil {
		e.seen = max(e.seen, v)
	}
}

// leaseReturn is leased units going back to Redis.
type leaseReturn struct {
	key   state.Key
	units int64
}

// collect advances the sweep generation and takes out the leases that have not served
// since the generation before last (all of them when all is set) and requeued units; it
// forgets counters without a request for keep sweeps.
func (l *leases) collect(all bool) []leaseReturn {
	g := l.gen.Add(1)
	var back []leaseReturn
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		for id, e := range sh.m {
			if e.requeued > 0 {
				back = append(back, leaseReturn{key: e.key, units: e.requeued})
				e.requeued = 0
			}
			// Units unused for a while go back, also on a counter still in use: they may
			// have been leased under a limit since lowered (or one of another route on
			// the same counter), which its requests now cannot use.
			if e.left > 0 && (all || g-e.served >= 2) {
				back = append(back, leaseReturn{key: e.key, units: e.left})
				e.seen -= e.left
				e.gone += e.left
				e.left = 0
			}
			// Forgotten only once no call that used it can still be running: a call
			// finishing on a forgotten entry would lose the units it was lent.
			if !all && g-e.touched >= l.keep && !e.pending {
				delete(sh.m, id)
				l.n.Add(-1)
			}
		}
		sh.mu.Unlock()
	}
	return back
}

// leaseID identifies op's counter across windows (the digest without the window).
func (s *Store) leaseID(op *state.Op) uint64 {
	if s.cluster && op.Key.Tag != "" {
		return state.Mix(op.Key.Base() ^ xxhash.Sum64String(op.Key.Tag))
	}
	return op.Key.Base()
}

// sweepLeases gives back unused leases every idle/2 until the store closes.
func (s *Store) sweepLeases(idle time.Duration) {
	s.every(idle/2, func() bool {
		s.returnLeases(s.leases.collect(false))
		s.gcra.sweep(s.clock().UnixNano())
		if s.shares != nil {
			s.shares.sweep(s.clock().UnixNano())
		}
		return false
	})
}

// returnLeases gives leased units back to Redis, in one round trip. A counter whose key
// expired meanwhile is left alone (its units went with it); none goes below zero. Units
// that fail to go back stay counted until their window ends: more refusals, never more
// admissions.
func (s *Store) returnLeases(back []leaseReturn) {
	if len(back) == 0 {
		return
	}
	box := s.client.Load()
	if box == nil {
		return
	}
	c := box.c
	cmds := make(rueidis.Commands, 0, len(back))
	for _, b := range back {
		cmds = append(cmds, c.B().Evalsha().Sha1(returnScript.sha).Numkeys(1).
			Key(b.key.Render(s.prefix, s.cluster)).Arg(strconv.FormatInt(b.units, 10)).Build())
	}
	ctx, cancel := context.WithTimeout(context.Background(), max(s.timeout, 100*time.Millisecond)+time.Duration(len(back))*time.Microsecond*20)
	defer cancel()
	s.over.Wait() // marks still buffered would be applied after the Del below
	for i, reply := range c.DoMulti(ctx, cmds...) {
		if rerr, ok := rueidis.IsRedisErr(reply.Error()); ok && rerr.IsNoScript() {
			reply = c.Do(ctx, c.B().Eval().Script(returnScript.text).Numkeys(1).
				Key(back[i].key.Render(s.prefix, s.cluster)).Arg(strconv.FormatInt(back[i].units, 10)).Build())
		}
		if reply.Error() != nil {
			s.metrics.Load().StoreFailure("redis")
			continue
		}
		s.metrics.Load().Leased(back[i].units, true)
		// Units are free again: a mark saying the key is full must not outlive them.
		s.over.Del(s.digest(&state.Op{Key: back[i].key}))
	}
}
