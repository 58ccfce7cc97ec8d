package redisstore

// Counters: a request whose ops are all counters, counted by INCRBY (counters: native).

import (
	"cmp"
	"context"
	"math"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gatehouse/gatehouse/ratelimit/state"
	"github.com/redis/rueidis"
)

func allCounters(ops []state.Op) bool {
	for i := range ops {
		if ops[i].Kind != state.KindCounter {
			return false
		}
	}
	return true
}

// applyCounters counts a request whose ops are all counters with plain commands, which
// cost Redis a fraction of a script: one INCRBY per op, in one round trip. INCRBY hands
// every request its own total, so exactly the first requests up to the limit are
// admitted, as with the script.
//
// A key's expiry (PEXPIRE until its window's end, the same end whoever sends it) rides
// in the same round trip the first time this replica counts that key in its window;
// keys carry their window in their name, so a key whose expiry is missing is never read
// again (should Redis lose a key, the request that creates it anew sets it again). A
// second round trip follows only when a request is not admitted, or its lease went past
// the limit: it takes back (DECRBY) the units it added (every op when an enforcing op
// refused, else the refusing shadow ops; else the leased units past the limit), so a
// refused request consumes nothing once Apply returns; meanwhile, a concurrent request
// on the same key may see those units and be refused too. Ops the replica's leases cover
// (lease.go) send nothing; a request they all cover makes no round trip.
//
// It runs in three phases: plan (the leases, planCounters), commands (counterCommands,
// sent in one round trip; readCounters decides), settle (settleCounters: leases,
// take-backs, expiries).
func (s *Store) applyCounters(ctx context.Context, ops []state.Op, out []state.Outcome, ns int64) error {
	var planBuf [4]planned
	plans, set, all := s.planCounters(ops, out, planBuf[:0])
	if all { // the leases covered every op: no round trip
		return nil
	}
	settled := false
	err := s.call(ctx, "INCRBY", func(r redisCall) error {
		resps, lt := r.send(s.counterCommands(r.c, ops, plans, ns))
		if lt.gaveUp() {
			s.giveBackCounters(lt, r.c, ops, plans, ns)
		}
		s.leases.lock(set)
		commit, err := s.readCounters(ops, out, plans, resps)
		follow := s.settleCounters(r.c, ops, out, plans, commit && err == nil, ns)
		s.leases.unlock(set)
		settled = true
		s.takeBack(r, ops, plans, follow)
		if err != nil {
			return err
		}
		for i := range ops {
			s.rememberOver(&ops[i], out[i], ns)
		}
		return nil
	})
	if !settled { // the call never reached Redis: give back what the leases lent
		s.leases.lock(set)
		for i := range plans {
			if p := &plans[i]; p.on {
				s.leases.unplan(p.id, &ops[i], p.leaseUse, p.local, &out[i])
			}
		}
		s.leases.unlock(set)
	}
	return err
}

// planned is what the leases decided for one op of a request, and what was sent for it.
type planned struct {
	leaseUse
	id     uint64
	local  bool   // the lease covered the op: no command for it
	key    string // the op's Redis key (rendered only when sent)
	incr   int    // index of the INCRBY (GET for a check) reply; -1: none sent
	expire int    // index of the PEXPIRE reply; -1: none sent
	n      int64  // units added
	v      int64  // the count Redis replied
	own    int64  // units leased here and unused that v includes
	// shift: units that earlier ops of the request on the same key added and that this
	// op's count must not include (see sameKeyBefore).
	shift    int64
	overflow bool // Redis refused the INCRBY: the count would pass the top of int64
}

// overflowed reports whether err is Redis refusing an INCRBY past the top of int64: a
// counter that keeps refused units (Op.Always) can get there. That is a refusal, not a
// failure of the store, which a fail-open configuration would admit and which would count
// toward opening the breaker for every counter.
func overflowed(err error) bool {
	rerr, ok := rueidis.IsRedisErr(err)
	return ok && strings.Contains(rerr.Error(), "would overflow")
}

// planCounters plans every op with the leases, each lease shard of the request locked
// once, and returns the plans, that set of shards, and whether the leases covered all.
func (s *Store) planCounters(ops []state.Op, out []state.Outcome, plans []planned) ([]planned, uint64, bool) {
	var set uint64
	for i := range ops {
		p := planned{incr: -1, expire: -1}
		if s.leases != nil {
			p.id = s.leaseID(&ops[i])
			set |= shardBit(p.id)
		}
		plans = append(plans, p)
	}
	if s.leases == nil {
		return plans, 0, false
	}
	all := true
	s.leases.lock(set)
	for i := range plans {
		p := &plans[i]
		p.leaseUse, p.local = s.leases.plan(p.id, &ops[i], &out[i], !sharesCounter(plans, i))
		all = all && p.local
	}
	s.leases.unlock(set)
	return plans, set, all
}

// sharesCounter reports whether another op of the request may count plans[i]'s counter
// (the same lease id).
func sharesCounter(plans []planned, i int) bool {
	for j := range plans {
		if j != i && plans[j].id == plans[i].id {
			return true
		}
	}
	return false
}

// counterCommands returns the commands of the ops the leases did not cover: an INCRBY
// of the units the request and its lease ask for (a GET for a check without counting),
// and the key's expiry the first time this replica counts it.
func (s *Store) counterCommands(c rueidis.Client, ops []state.Op, plans []planned, ns int64) rueidis.Commands {
	cmds := make(rueidis.Commands, 0, 2*len(ops))
	for i := range ops {
		op, p := &ops[i], &plans[i]
		if p.local {
			continue
		}
		p.key = op.Key.Render(s.prefix, s.cluster)
		p.incr = len(cmds)
		if op.Cost == 0 { // GET creates no key
			cmds = append(cmds, c.B().Get().Key(p.key).Build())
			continue
		}
		p.n = op.Cost - p.pooled + p.extra
		cmds = append(cmds, c.B().Incrby().Key(p.key).Increment(p.n).Build())
		if op.Expire > 0 && !s.expiring.has(s.digest(op)) {
			p.expire = len(cmds)
			cmds = append(cmds, c.B().Pexpire().Key(p.key).Milliseconds(ttlMillis(op.Expire, ns)).Build())
		}
	}
	return cmds
}

// readCounters reads the replies into out and reports whether the request is admitted
// (no enforcing op that counts all or nothing refused), and the first error.
func (s *Store) readCounters(ops []state.Op, out []state.Outcome, plans []planned, resps []rueidis.RedisResult) (commit bool, firstErr error) {
	commit = true
	for i := range ops {
		op, p := &ops[i], &plans[i]
		if p.local {
			continue
		}
		v, err := resps[p.incr].AsInt64()
		if op.Cost == 0 && rueidis.IsRedisNil(err) {
			v, err = 0, nil // nothing counted yet
		}
		if err != nil && overflowed(err) { // Redis added nothing; the count is past any limit
			p.n, p.overflow = 0, true
			out[i] = state.Outcome{Value: math.MaxInt64}
			commit = commit && (op.Shadow || op.Always)
			continue
		}
		if err != nil {
			firstErr = cmp.Or(firstErr, err)
			out[i] = state.Outcome{Unknown: true}
			continue
		}
		p.v = v
		// Units leased here and unused are not admitted: the count leaves them out
		// (those still held, should the sweeper have given some back meanwhile).
		if p.held > 0 {
			p.own = s.leases.stillHeld(p.id, op, p.leaseUse)
		}
		// The request's own units are the first of those added; the lease's follow.
		p.shift = sameKeyBefore(ops, out, plans, i)
		count := v - p.extra - p.own - p.shift
		out[i] = state.Outcome{Allowed: count <= op.Limit, Value: count}
		if !out[i].Allowed && !op.Shadow && !op.Always {
			commit = false
		}
		if p.expire >= 0 && resps[p.expire].Error() == nil {
			s.expiring.add(s.digest(op))
		}
	}
	return commit, firstErr
}

// sameKeyBefore returns the units that the ops before op i of the request on its key
// added and that op i's count leaves out, so that it counts as if they had run one after
// the other, as the memory store and the script count: every unit asked for a lease
// (never admitted), and a refused op's own units (taken back unless it counts on its own).
func sameKeyBefore(ops []state.Op, out []state.Outcome, plans []planned, i int) int64 {
	var n int64
	for j := range i {
		q := &plans[j]
		if q.incr < 0 || q.n <= 0 || q.key != plans[i].key || out[j].Unknown {
			continue
		}
		n += q.extra
		if !out[j].Allowed && !ops[j].Always {
			n += q.n - q.extra
		}
	}
	return n
}

// settleCounters settles every op once the request's fate is known (commit): the
// leases learn what Redis counted, and it returns the follow-up commands that take back
// the units a refused request added (and leased units past the limit) and set expiries
// again where needed.
func (s *Store) settleCounters(c rueidis.Client, ops []state.Op, out []state.Outcome, plans []planned, commit bool, ns int64) rueidis.Commands {
	var follow rueidis.Commands
	for i := range ops {
		op, p, o := &ops[i], &plans[i], &out[i]
		switch {
		case p.local:
			if !commit && !op.Always {
				s.leases.unplan(p.id, op, p.leaseUse, true, o)
			}
			continue
		case o.Unknown || p.overflow:
			if p.on {
				s.leases.unplan(p.id, op, p.leaseUse, false, o)
			}
			continue
		}
		keep := commit || op.Always // an Always op is counted on its own: its units stay even when refused
		undo := takeBackUnits(op, p, o, keep)
		switch {
		case p.on:
			o.Value = s.leases.finish(p.id, op, p.leaseUse, p.v, keep, p.extra-undo, p.own) - p.shift
			if keep {
				s.metrics.Load().Leased(p.extra-undo, false)
			}
		default:
			o.Value -= undo
			if s.leases != nil { // counts from a lease of this counter include this one
				s.leases.saw(p.id, op, p.v-undo)
			}
		}
		if undo > 0 {
			follow = append(follow, c.B().Decrby().Key(p.key).Decrement(undo).Build())
		}
		// The key needs its expiry again when it was created anew though this replica
		// set it before (Redis lost it: a failover, a flush), and after a take-back,
		// which recreates a key that expired since the INCRBY. PEXPIRE to the window's
		// end is idempotent.
		recreated := p.n > 0 && p.expire < 0 && p.v == p.n
		if op.Expire > 0 && (recreated || undo > 0) {
			follow = append(follow, c.B().Pexpire().Key(p.key).Milliseconds(ttlMillis(op.Expire, ns)).Build())
		}
	}
	return follow
}

// takeBackUnits returns how many of the units an op added go back: all of them when the
// request is not kept or the op refused it (a check added nothing), else the leased
// units that went past the limit.
func takeBackUnits(op *state.Op, p *planned, o *state.Outcome, keep bool) int64 {
	if p.n > 0 && (!keep || !o.Allowed && !op.Always) {
		return p.n
	}
	if p.extra > 0 {
		return max(min(p.extra, p.v-op.Limit), 0)
	}
	return 0
}

// takeBack sends the follow-up commands in a second round trip. Units not taken back
// stay counted until the window ends: more refusals, never more admissions; expiries may
// be missing, so they are sent again with the next counts.
func (s *Store) takeBack(r redisCall, ops []state.Op, plans []planned, follow rueidis.Commands) {
	if len(follow) == 0 {
		return
	}
	if s.testBeforeTakeBack != nil {
		keys := make([]string, 0, len(plans))
		for i := range plans {
			keys = append(keys, plans[i].key)
		}
		s.testBeforeTakeBack(keys)
	}
	// Within what is left of the call's time; past it, the take-back still runs, as soon
	// as Redis takes it.
	f := newFlight()
	s.launch(f, r.c, follow)
	resps, lt := f.wait(r.ctx, 0, len(follow))
	check := func(_ rueidis.Client, resps []rueidis.RedisResult) {
		for _, reply := range resps {
			if reply.Error() != nil {
				s.metrics.Load().StoreFailure("redis")
				for i := range ops {
					s.expiring.forget(s.digest(&ops[i]))
				}
				return
			}
		}
	}
	if lt.gaveUp() {
		lt.then(r.c, check)
		return
	}
	check(r.c, resps)
}

// expirySeen remembers the keys whose expiry this replica set, in a direct-mapped table
// of key digests: a lookup is one atomic load. A digest includes the key's window, so a
// new window is a new entry; a collision only evicts an entry, whose expiry is then sent
// once more (harmless: the same window end).
type expirySeen [1 << 16]atomic.Uint64

func (e *expirySeen) has(h uint64) bool { return e[h&uint64(len(e)-1)].Load() == h }

func (e *expirySeen) add(h uint64) { e[h&uint64(len(e)-1)].Store(h) }

func (e *expirySeen) forget(h uint64) { e[h&uint64(len(e)-1)].CompareAndSwap(h, 0) }

// ttlMillis is the time from ns to expire, rounded up to whole milliseconds (at least 1).
func ttlMillis(expire, ns int64) int64 {
	return max((expire-ns+int64(time.Millisecond)-1)/int64(time.Millisecond), 1)
}
