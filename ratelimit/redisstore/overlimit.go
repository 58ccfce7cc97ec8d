package redisstore

// The over-limit cache: keys known to be over their limit answer without a round trip.

import (
	"github.com/gatehouse/gatehouse/ratelimit/state"
	"time"

	"github.com/cespare/xxhash/v2"
)

// overMark says the key with identity id (and hash tag tag) is over its limit until
// `until` (unix ns) with stored value `value`. Marks are found by digest: the identity
// keeps a key whose digest collides with a marked one from being refused in its place.
type overMark struct {
	until, value int64
	id, tag      string
}

// marks reports whether m is op's mark.
func (m *overMark) marks(op *state.Op) bool { return op.Key.Is(m.id) && op.Key.Tag == m.tag }

// stillOver reports whether stored value v leaves op, as configured now, out of units.
func stillOver(op *state.Op, v, ns int64) bool {
	_, over := state.OverUntil(op, v, ns)
	return over
}

// rememberOver puts an enforcing op that is out of units in the over-limit cache until it
// has units again; with native counting, a counter for at most nativeOverFor, since any
// count read of it (by INCRBY or by the script) may include units being taken back.
func (s *Store) rememberOver(op *state.Op, o state.Outcome, ns int64) {
	if o.Allowed || op.Shadow {
		return
	}
	if until, over := state.OverUntil(op, o.Value, ns); over {
		if s.native && op.Kind == state.KindCounter {
			until = min(until, ns+int64(nativeOverFor))
		}
		s.over.SetWithTTL(s.digest(op), overMark{until: until, value: o.Value, id: op.Key.Identity(), tag: op.Key.Tag}, 1, time.Duration(until-ns))
	}
}

// nativeOverFor bounds how long a refusal seen by native counting marks a key as over its
// limit: the count it saw may include units of concurrent refused requests that are
// being taken back, so it only proves the key full for a moment. A hot key still costs
// at most one round trip per replica per nativeOverFor.
const nativeOverFor = time.Second

// digest identifies op's key in this replica's caches. In cluster mode the hash tag is
// part of the Redis key (a limit not keyed on the tag's entity is counted per tag), so it
// is folded in.
func (s *Store) digest(op *state.Op) uint64 {
	if s.cluster && op.Key.Tag != "" {
		return state.Mix(op.Key.Hash() ^ xxhash.Sum64String(op.Key.Tag))
	}
	return op.Key.Hash()
}

func hasRefund(ops []state.Op) bool {
	for i := range ops {
		if ops[i].Cost < 0 {
			return true
		}
	}
	return false
}

// forgetOver ends the over-limit marks of the refunded ops' keys. A mark may still sit in
// the cache's buffer (applied after the Del, it would refuse the key): flush it first.
func (s *Store) forgetOver(ops []state.Op) {
	s.over.Wait()
	for i := range ops {
		if ops[i].Cost < 0 {
			s.over.Del(s.digest(&ops[i]))
		}
	}
}

// knownOver answers from the over-limit cache when an enforcing op is known to be over:
// that op is denied with its remembered value, the others are reported Unknown. Ops that
// count on their own (Op.Always) let the cache answer only when each of them is known
// over: past its limit, one more unit changes no verdict of its window. ops[local]
// (≥ 0) was admitted by this replica's share: no mark refuses it.
func (s *Store) knownOver(ops []state.Op, out []state.Outcome, ns int64, local int) bool {
	hit := false
	for i := range ops {
		op := &ops[i]
		if !markable(op) {
			continue
		}
		if i == local {
			out[i] = state.Outcome{Allowed: true, Unknown: true}
			continue
		}
		// A mark answers only while its value is still over this op's limit: a reload
		// (or an RLS override) may have raised the limit since.
		if m, ok := s.over.Get(s.digest(op)); ok && m.until > ns && m.marks(op) && stillOver(op, m.value, ns) &&
			(s.leases == nil || !s.leases.covers(s.leaseID(op), op) && !s.gcra.covers(s.leaseID(op), op, ns)) {
			out[i] = state.Outcome{Value: m.value}
			hit = true
		} else if op.Always {
			return false // it counts on its own: Redis must see it
		} else {
			out[i] = state.Outcome{Allowed: true, Unknown: true}
		}
	}
	if !hit {
		return false
	}
	for i := range ops {
		if ops[i].Always && ops[i].Cost > 0 && !markable(&ops[i]) {
			return false
		}
	}
	for i := range ops {
		if !markable(&ops[i]) {
			out[i] = state.Outcome{Allowed: true, Unknown: true}
		}
	}
	return true
}

// markable reports whether an over-limit mark may answer for op: an enforcing counter or
// token bucket that counts (a check without counting, cost 0, asks the store like any).
func markable(op *state.Op) bool {
	return !op.Shadow && op.Cost > 0 && (op.Kind == state.KindCounter || op.Kind == state.KindGCRA)
}
