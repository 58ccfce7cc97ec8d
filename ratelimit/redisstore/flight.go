package redisstore

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/gatehouse/gatehouse/ratelimit/state"
	"github.com/redis/rueidis"
)

// flight is one round trip that store calls wait for no longer than their own deadlines.
// The client is not trusted to return at a deadline: a command waits, whatever its
// context, for a free place in its connection's queue (freed only when Redis answers or
// the connection is given up, after the client's write timeout), and for a connection
// another goroutine is dialling. So the round trip runs in a goroutine of its own, under
// the store's lifetime, and a call that gives up leaves it running: when Redis answers
// at last, the replies go to what the call left to do with them (then), which gives back
// the units the call added and never admitted. Each round trip is sent once, so nothing
// is given back twice.
type flight struct {
	done   chan struct{}
	resps  []rueidis.RedisResult
	mu     sync.Mutex
	landed bool
	late   []lateWork
}

// lateWork is what a call that gave up left to do with its replies, resps[off:off+n].
type lateWork struct {
	off, n int
	then   func(c rueidis.Client, resps []rueidis.RedisResult)
}

func newFlight() *flight { return &flight{done: make(chan struct{})} }

// launch sends cmds as f's round trip.
func (s *Store) launch(f *flight, c rueidis.Client, cmds rueidis.Commands) {
	go func() {
		var resps []rueidis.RedisResult
		if len(cmds) == 1 {
			resps = []rueidis.RedisResult{c.Do(s.life, cmds[0])}
		} else {
			resps = c.DoMulti(s.life, cmds...)
		}
		f.mu.Lock()
		f.resps, f.landed = resps, true
		late := f.late
		f.late = nil
		f.mu.Unlock()
		close(f.done)
		for _, w := range late {
			w.then(c, resps[w.off:w.off+w.n])
		}
	}()
}

// wait returns replies off to off+n of f, or, when ctx ends first, errors and a handle
// to what is left of the call (late.then).
func (f *flight) wait(ctx context.Context, off, n int) ([]rueidis.RedisResult, late) {
	select {
	case <-f.done:
		return f.resps[off : off+n], late{}
	case <-ctx.Done():
	}
	f.mu.Lock()
	landed := f.landed
	f.mu.Unlock()
	if landed { // both at once: the replies are there
		<-f.done
		return f.resps[off : off+n], late{}
	}
	errs := make([]rueidis.RedisResult, n)
	for i := range errs {
		errs[i] = rueidis.NewErrorResult(ctx.Err())
	}
	return errs, late{f: f, off: off, n: n}
}

// late is a call's part of a flight it stopped waiting for (f nil: it did not).
type late struct {
	f      *flight
	off, n int
}

// gaveUp reports whether the call stopped waiting for its replies.
func (l late) gaveUp() bool { return l.f != nil }

// then has fn run with the call's replies once they come (at once, in a goroutine of its
// own, if they came meanwhile). A reply that never comes (the connection was given up)
// leaves fn unrun.
func (l late) then(c rueidis.Client, fn func(c rueidis.Client, resps []rueidis.RedisResult)) {
	f := l.f
	f.mu.Lock()
	if !f.landed {
		f.late = append(f.late, lateWork{off: l.off, n: l.n, then: fn})
		f.mu.Unlock()
		return
	}
	f.mu.Unlock()
	go fn(c, f.resps[l.off:l.off+l.n])
}

// giveBack is units to take off a counter that a call added and did not admit.
type giveBack struct {
	key   string
	units int64
	// ttl: the counter's time to live when the call gave up, at (0: it never expires)
	ttl int64
	at  time.Time
}

// giveBackLate takes back units that calls which gave up waiting added once Redis ran
// their commands: the return script, which keeps the key's expiry, never goes below zero
// and leaves a key that expired meanwhile missing. The late command itself may have made
// the key anew after it expired, without an expiry (a PEXPIRE rides only with a replica's
// first count of a window): the key's expiry is set again to its window's end, as the
// settling of a call does, or the key would stay for ever. Units it cannot give back
// stay counted until their window ends: more refusals, never more admissions.
func (s *Store) giveBackLate(c rueidis.Client, back []giveBack) {
	if len(back) == 0 {
		return
	}
	now := s.clock()
	cmds := make(rueidis.Commands, 0, 2*len(back))
	at := make([]int, len(back)) // index of each give-back's EVAL
	for i, b := range back {
		at[i] = len(cmds)
		// EVAL, not EVALSHA: Redis may have restarted meanwhile.
		cmds = append(cmds, c.B().Eval().Script(returnScript.text).Numkeys(1).Key(b.key).Arg(strconv.FormatInt(b.units, 10)).Build())
		if b.ttl > 0 { // on a missing key, a no-op
			cmds = append(cmds, c.B().Pexpire().Key(b.key).Milliseconds(max(b.ttl-now.Sub(b.at).Milliseconds(), 1)).Build())
		}
	}
	m := s.metrics.Load()
	resps := c.DoMulti(s.life, cmds...)
	for i, b := range back {
		if resps[at[i]].Error() != nil {
			m.StoreFailure("redis")
			m.LateUnits(b.units, false)
			continue
		}
		m.LateUnits(b.units, true)
	}
}

// pendingBack is units a call that gave up added to a counter with the command whose
// reply is reply (of the call's replies), should Redis run it.
type pendingBack struct {
	giveBack
	reply  int
	always bool // script: an Op.Always op, whose units the script keeps even when refused
}

// giveBackCounters has the units of the INCRBYs of plans given back once Redis runs them:
// the call reported no outcome, so none of them was admitted (the leases took back what
// they lent: settleCounters).
func (s *Store) giveBackCounters(lt late, c rueidis.Client, ops []state.Op, plans []planned, ns int64) {
	var items []pendingBack
	at := s.clock()
	for i := range plans {
		if p := &plans[i]; p.incr >= 0 && p.n > 0 {
			b := giveBack{key: p.key, units: p.n, at: at}
			if ops[i].Expire > 0 {
				b.ttl = ttlMillis(ops[i].Expire, ns)
			}
			items = append(items, pendingBack{giveBack: b, reply: p.incr})
		}
	}
	if len(items) == 0 {
		return
	}
	lt.then(c, func(c rueidis.Client, resps []rueidis.RedisResult) {
		var back []giveBack
		for _, it := range items {
			if _, err := resps[it.reply].AsInt64(); err == nil {
				back = append(back, it.giveBack)
			} else if _, ran := rueidis.IsRedisErr(err); !ran {
				s.metrics.Load().LateUnits(it.units, false) // no reply: maybe counted
			}
		}
		s.giveBackLate(c, back)
	})
}

// giveBackScript has the units the script (reply reply of the call's) committed to
// counters given back once Redis runs it. Token buckets keep the tokens of such a call
// (at most its cost each): see README, "When Redis stalls".
func (s *Store) giveBackScript(lt late, c rueidis.Client, ops []state.Op, keys []string, reply int) {
	var items []pendingBack
	for i := range ops {
		if op := &ops[i]; op.Kind == state.KindCounter && op.Cost > 0 {
			items = append(items, pendingBack{giveBack: giveBack{key: keys[i], units: op.Cost}, reply: i, always: op.Always})
		}
	}
	if len(items) == 0 {
		return
	}
	lt.then(c, func(c rueidis.Client, resps []rueidis.RedisResult) {
		res, err := resps[reply].AsIntSlice()
		if err != nil || len(res) < 1+3*len(ops) {
			if _, ran := rueidis.IsRedisErr(err); !ran && err != nil {
				for _, it := range items {
					s.metrics.Load().LateUnits(it.units, false)
				}
			}
			return
		}
		var back []giveBack
		for _, it := range items {
			if it.always || res[0] == 1 && res[1+3*it.reply] == 1 {
				back = append(back, it.giveBack)
			}
		}
		s.giveBackLate(c, back)
	})
}
