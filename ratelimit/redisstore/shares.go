package redisstore

// Shares (redis.shares): each of a few replicas admits from its own small share of every
// inline token bucket, with no round trip; Redis counts the rest of the bucket.

import (
	"cmp"
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"math"
	"math/bits"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse/gatehouse/ratelimit/state"
	"github.com/redis/rueidis"
)

// shareRenewScript extends slot KEYS[1] by ARGV[2] ms if this replica (ARGV[1]) still
// holds it; shareReleaseScript deletes it then. Both reply 1 when it was held.
var (
	shareRenewScript   = newLuaScript(shareRenewScriptText)
	shareReleaseScript = newLuaScript(shareReleaseScriptText)
)

var (
	//go:embed lua/sharerenew.lua
	shareRenewScriptText string
	//go:embed lua/sharerelease.lua
	shareReleaseScriptText string
)

// shareKeys bounds the buckets a replica tracks in its shares; past it, a new bucket
// counts in Redis only. A bucket is tracked only while its share is not full.
const shareKeys = 1 << 20

// How a token bucket is split (shares.split): every slot's share, and Redis's part.
//
// A bucket of burst b and rate r (one unit per interval) becomes, with n slots and a
// fraction f, a share of s = max(1, ⌊b×f/n⌋) units at rate r×f/n per slot, and in Redis
// a bucket of b − n×s units at rate r×(1−f); f counts in millionths. Each rate is
// rounded down (its interval up: Redis's to a whole µs), so the parts never add up to
// more than the bucket: in any span d, each share
// admits at most s + d×r×f/n (a GCRA of its own, which starts empty a TTL after its
// slot is claimed) and Redis at most b − n×s + d×r×(1−f); together at most b + d×r.
type shareParams struct {
	burst, interval           int64 // one slot's share: units, ns per unit
	redisBurst, redisInterval int64 // Redis's part; the interval in whole µs, as Redis counts
}

// shares is this replica's slot and its shares of the buckets it has seen.
type shares struct {
	slots  int64
	ppm    int64 // the fraction of the rate set aside for the slots, in millionths
	ttl    time.Duration
	owner  string // this replica's name in the slot keys
	prefix string
	start  time.Time    // origin of valid (a monotonic reading)
	valid  atomic.Int64 // the slot may be used while time.Since(start) is below this; 0: no slot
	claim  atomic.Int64 // Apply-clock ns, a TTL after the slot was claimed: every share starts empty then
	slot   int          // the slot held, -1: none (under keepMu)
	keepMu sync.Mutex   // keep and release, one at a time (tests renew from their own goroutine)
	n      atomic.Int64
	tabs   [leaseShards]shareTab

	testAbandon bool // tests: release leaves the key in Redis, as a crash would
}

type shareTab struct {
	mu    sync.Mutex
	m     map[uint64]int64 // bucket → the share's TAT, ns (absent: as at the claim)
	units uint64           // units taken, for the metric (those given back still count)
	_     [40]byte
}

// units counts the units the shares admitted (gatehouse_store_share_units_total).
func (sh *shares) units() uint64 {
	var n uint64
	for i := range sh.tabs {
		t := &sh.tabs[i]
		t.mu.Lock()
		n += t.units
		t.mu.Unlock()
	}
	return n
}

func newShares(cfg state.SharesConfig, prefix string) *shares {
	if cfg.Slots <= 0 {
		return nil
	}
	var id [16]byte
	_, _ = rand.Read(id[:])
	sh := &shares{
		slots: int64(cfg.Slots), ppm: int64(math.Round(cmp.Or(cfg.Fraction, state.DefaultShareFraction) * 1e6)),
		ttl: cfg.TTL, owner: hex.EncodeToString(id[:]), prefix: prefix, start: time.Now(), slot: -1,
	}
	if sh.ttl == 0 {
		sh.ttl = state.DefaultShareTTL
	}
	for i := range sh.tabs {
		sh.tabs[i].m = make(map[uint64]int64)
	}
	return sh
}

// split reports how op's bucket is shared; ok false when it is not (not an enforcing
// token bucket that counts all-or-nothing, or a burst too small to spare the shares).
// It depends only on the limit, never on the request: every replica splits a bucket alike.
func (sh *shares) split(op *state.Op) (p shareParams, ok bool) {
	if sh == nil || op.Kind != state.KindGCRA || op.Shadow || op.Always || op.Exact || op.Interval <= 0 {
		return p, false
	}
	if op.Limit > math.MaxInt64/1_000_000 {
		return p, false
	}
	s := max(1, op.Limit*sh.ppm/1_000_000/sh.slots)
	// Redis's part must take the throttle path (gcraLeasable), the only one that offers
	// the share a request: else the share would only take from the bucket.
	if 4*sh.slots*s > op.Limit || op.Limit-sh.slots*s < 2*gcraLeaseShare {
		return p, false
	}
	var ok1, ok2 bool
	p.burst = s
	p.interval, ok1 = ceilDiv(uint64(op.Interval), uint64(sh.slots)*1e6, uint64(sh.ppm))
	p.redisBurst = op.Limit - sh.slots*s
	p.redisInterval, ok2 = ceilDiv(uint64(op.Interval), 1e6, uint64(1e6-sh.ppm))
	p.redisInterval = (p.redisInterval + 999) / 1000 * 1000
	// A share's TAT runs up to a share ahead of now (or of the claim) and a step adds
	// at most a share more: keep both well inside int64, as compile does for a bucket.
	if !ok1 || !ok2 || p.redisInterval <= 0 || p.burst > math.MaxInt64/4/p.interval {
		return shareParams{}, false
	}
	return p, true
}

// ceilDiv is ⌈a×b/d⌉; ok false past int64.
func ceilDiv(a, b, d uint64) (int64, bool) {
	hi, lo := bits.Mul64(a, b)
	if hi >= d {
		return 0, false
	}
	q, r := bits.Div64(hi, lo, d)
	if r != 0 {
		q++
	}
	return int64(q), q > 0 && q <= math.MaxInt64/2
}

// holding reports whether the slot may be used now.
func (sh *shares) holding() bool { return int64(time.Since(sh.start)) < sh.valid.Load() }

// tat is the share's TAT of bucket id under the lock, and whether the table tracks the
// bucket: never before the claim's, at which every share started empty.
func (sh *shares) tat(t *shareTab, id uint64, p shareParams) (int64, bool) {
	cur, tracked := t.m[id]
	return max(cur, sh.claim.Load()+p.burst*p.interval), tracked
}

// take admits cost units from this replica's share of bucket id, if it holds a slot
// and the share has them. It returns the share's TAT after the call (when ok) or as it
// is, and whether the slot is held.
func (sh *shares) take(id uint64, p shareParams, cost, ns int64) (tat int64, held, ok bool) {
	t := &sh.tabs[id%leaseShards]
	t.mu.Lock()
	defer t.mu.Unlock()
	if !sh.holding() {
		return 0, false, false
	}
	tat, tracked := sh.tat(t, id, p)
	next, _, fits := state.GCRAStep(tat, ns, cost, p.interval, p.burst)
	if !fits {
		return tat, true, false
	}
	if !tracked {
		if sh.n.Load() >= shareKeys { // counted in Redis only: the share is not this bucket's
			return 0, false, false
		}
		sh.n.Add(1)
	}
	t.m[id] = next
	t.units += uint64(cost)
	return next, true, true
}

// giveBack returns the units of a request another limit refused after the share
// admitted it.
func (sh *shares) giveBack(id uint64, p shareParams, cost, ns int64) {
	t := &sh.tabs[id%leaseShards]
	t.mu.Lock()
	defer t.mu.Unlock()
	if tat, tracked := sh.tat(t, id, p); tracked {
		t.m[id] = max(state.RefundGCRA(tat, ns, -cost, p.interval, p.burst), sh.claim.Load()+p.burst*p.interval)
	}
}

// peek returns the share's TAT of bucket id and whether the slot is held.
func (sh *shares) peek(id uint64, p shareParams) (int64, bool) {
	t := &sh.tabs[id%leaseShards]
	t.mu.Lock()
	defer t.mu.Unlock()
	if !sh.holding() {
		return 0, false
	}
	tat, _ := sh.tat(t, id, p)
	return tat, true
}

// sweep forgets the shares that are full again at ns: absent, they read as full (once
// the claim's start has passed, which their TAT already has).
func (sh *shares) sweep(ns int64) {
	for i := range sh.tabs {
		t := &sh.tabs[i]
		t.mu.Lock()
		for id, tat := range t.m {
			if tat <= ns {
				delete(t.m, id)
				sh.n.Add(-1)
			}
		}
		t.mu.Unlock()
	}
}

// outcome turns op's outcome as Redis counts it (Redis's part of the bucket, p) into
// one of the whole bucket, as the engine reads it: the units left are Redis's and this
// replica's share's (other replicas' shares unknown, not counted); a
// refusal waits until either part has the request's units. local: the share admitted
// the request (Redis was not asked: its part is taken as full); tat: the share's TAT
// (held false: this replica has no slot).
func (p shareParams) outcome(op *state.Op, o state.Outcome, ns, tat int64, held, local bool) state.Outcome {
	if o.Unknown && !local {
		return o
	}
	mine := int64(0)
	if held {
		mine = min(max((ns+p.burst*p.interval-tat)/p.interval, 0), p.burst)
	}
	if local || o.Allowed {
		theirs := p.redisBurst
		if !local {
			theirs = min(max((ns+p.redisBurst*p.redisInterval-o.Value)/p.redisInterval, 0), p.redisBurst)
		}
		left := min(mine+theirs, op.Limit)
		return state.Outcome{Allowed: true, Value: ns + (op.Limit-left)*op.Interval}
	}
	wait := max(o.Value+(min(op.Cost, p.redisBurst)-p.redisBurst)*p.redisInterval-ns, 0)
	if held && op.Cost <= p.burst {
		wait = min(wait, max(tat+(op.Cost-p.burst)*p.interval-ns, 0))
	}
	return state.Outcome{Value: ns + wait + (op.Limit-min(op.Cost, op.Limit))*op.Interval}
}

// applyShared is Apply when this replica shares buckets: Redis counts the shared
// buckets' Redis part, and the inline throttle's request is first offered to this
// replica's share. The shared ops' Limit and Interval are Redis's part's during the
// call, and restored before it returns (a copy of ops would cost an allocation per call).
func (s *Store) applyShared(ctx context.Context, ops []state.Op, out []state.Outcome, ns int64) error {
	var pbuf [4]shareParams
	params, shared := pbuf[:0], false
	for i := range ops {
		p, ok := s.shares.split(&ops[i])
		params, shared = append(params, p), shared || ok
	}
	if !shared {
		return s.apply(ctx, ops, out, ns, -1)
	}
	var obuf [4][2]int64
	orig := obuf[:0]
	for i, p := range params {
		orig = append(orig, [2]int64{ops[i].Limit, ops[i].Interval})
		if p.burst > 0 {
			ops[i].Limit, ops[i].Interval = p.redisBurst, p.redisInterval
		}
	}
	// g: the inline throttle, offered to the share first; its share's TAT is known.
	g, local, tat, held, gid := s.throttlePath(ops), -1, int64(0), false, uint64(0)
	if g >= 0 && params[g].burst > 0 {
		var ok bool
		gid = s.leaseID(&ops[g])
		if tat, held, ok = s.shares.take(gid, params[g], ops[g].Cost, ns); ok {
			local = g
		}
	} else {
		g = -1
	}
	err := s.apply(ctx, ops, out, ns, local)
	for i := range ops {
		ops[i].Limit, ops[i].Interval = orig[i][0], orig[i][1]
	}
	if local >= 0 && (err != nil || !allAllowed(out[:len(ops)])) {
		s.shares.giveBack(gid, params[local], ops[local].Cost, ns)
		tat, held = s.shares.peek(gid, params[local])
		local = -1
	}
	for i, p := range params {
		if p.burst == 0 {
			continue
		}
		t, h := tat, held
		if i != g && ops[i].Cost == 0 { // a peek: what a request would find
			t, h = s.shares.peek(s.leaseID(&ops[i]), p)
		} else if i != g { // counted in Redis only: the share was not offered the request
			h = false
		}
		out[i] = p.outcome(&ops[i], out[i], ns, t, h, i == local)
	}
	return err
}

func allAllowed(out []state.Outcome) bool {
	for i := range out {
		if !out[i].Allowed {
			return false
		}
	}
	return true
}

// keepShares claims a slot and keeps it, every TTL/3, until the store closes (the
// caller added the goroutine to s.wg).
func (s *Store) keepShares() {
	s.shares.keep(s)
	s.every(s.shares.ttl/3, func() bool { s.shares.keep(s); return false })
}

// keep renews the slot held, or claims a free one. A slot is used only until its key
// could have expired (counted from before the command was sent, less a tenth of the
// TTL); a renewal that fails leaves the slot to run out, one that finds the key gone or
// another replica's gives it up at once.
func (sh *shares) keep(s *Store) {
	sh.keepMu.Lock()
	defer sh.keepMu.Unlock()
	if sh.slot >= 0 {
		sent := time.Since(sh.start)
		renewed, err := sh.run(s, shareRenewScript, sh.slot)
		switch {
		case err != nil: // the slot runs out by itself; the next tick tries again
			return
		case renewed:
			sh.valid.Store(int64(sent + sh.ttl - sh.ttl/10))
			s.metrics.Load().ShareSlot(sh.slot) // also for metrics set after the claim
			return
		}
		sh.valid.Store(0)
		sh.slot = -1
		s.metrics.Load().ShareSlot(-1)
	}
	for k := range int(sh.slots) {
		sent := time.Since(sh.start)
		var got bool
		err := s.call(context.Background(), "SET", func(r redisCall) error {
			err := r.do(r.c.B().Set().Key(sh.key(k)).Value(sh.owner).Nx().PxMilliseconds(sh.ttl.Milliseconds()).Build()).Error()
			if rueidis.IsRedisNil(err) {
				return nil // held by another replica
			}
			got = err == nil
			return err
		})
		if err != nil {
			return
		}
		if got {
			// After the reply: the key was free when Redis ran the SET, so whoever held
			// the slot stopped using it before now, or, the key lost early in Redis (a
			// FLUSHALL, a failover that dropped its last renewal, an eviction), stops
			// within a TTL: its use is bounded by a renewal it sent before the SET ran.
			// The shares start empty then.
			sh.claim.Store(s.clock().UnixNano() + int64(sh.ttl))
			sh.slot = k
			sh.valid.Store(int64(sent + sh.ttl - sh.ttl/10))
			s.metrics.Load().ShareSlot(k)
			return
		}
	}
}

// release gives the slot up (the store closes): first here, then in Redis.
func (sh *shares) release(s *Store) {
	sh.keepMu.Lock()
	defer sh.keepMu.Unlock()
	sh.valid.Store(0)
	if sh.slot >= 0 && !sh.testAbandon {
		_, _ = sh.run(s, shareReleaseScript, sh.slot)
		sh.slot = -1
		s.metrics.Load().ShareSlot(-1)
	}
}

// run runs a slot script on slot k with this replica's name; it reports whether the
// slot was still this replica's.
func (sh *shares) run(s *Store, script luaScript, k int) (bool, error) {
	var res int64
	err := s.call(context.Background(), "EVALSHA", func(r redisCall) error {
		args := []string{sh.owner, strconv.FormatInt(sh.ttl.Milliseconds(), 10)}
		reply := r.do(r.c.B().Evalsha().Sha1(script.sha).Numkeys(1).Key(sh.key(k)).Arg(args...).Build())
		if rerr, ok := rueidis.IsRedisErr(reply.Error()); ok && rerr.IsNoScript() {
			reply = r.do(r.c.B().Eval().Script(script.text).Numkeys(1).Key(sh.key(k)).Arg(args...).Build())
		}
		var err error
		res, err = reply.AsInt64()
		return err
	})
	return res == 1, err
}

func (sh *shares) key(k int) string {
	return sh.prefix + "share:" + strconv.FormatInt(sh.slots, 10) + ":" + strconv.Itoa(k)
}
