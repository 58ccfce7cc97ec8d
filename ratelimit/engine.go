package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/ratelimit/state"
)

// Engine is one compiled configuration of limits over a shared Store: it implements
// [policy.Limiter] and [policy.Lockout] for the ext_authz pipeline and answers the
// rate-limit service (ShouldRateLimit). An Engine is immutable and safe for concurrent
// use; a reload compiles a new one over the same store.
type Engine struct {
	store     Store
	apps      map[string]*appRules
	endpoints map[string][]*rule
	orgs      map[string][]*rule
	lockout   lockoutRules
	rls       *rlsRules
	metrics   *Metrics
}

var (
	_ policy.Limiter = (*Engine)(nil)
	_ policy.Lockout = (*Engine)(nil)
)

type appRules struct {
	rules []*rule
	fail  failMode
	org   string
}

// failMode is what happens when the store cannot be reached.
type failMode uint8

const (
	failClosed failMode = iota // return the error: the caller denies (RLS: gRPC UNAVAILABLE)
	failOpen                   // allow
	failLocal                  // count in this replica's memory
)

// String is the fail mode as config and metrics spell it.
func (f failMode) String() string { return [...]string{"closed", "open", "local"}[f] }

// batch is the scratch space of one check, pooled so that a check allocates nothing.
type batch struct {
	ops   []Op
	outs  []Outcome
	rules []*rule
}

var batchPool = sync.Pool{New: func() any {
	return &batch{ops: make([]Op, 0, 8), outs: make([]Outcome, 8), rules: make([]*rule, 0, 8)}
}}

func getBatch() *batch { return batchPool.Get().(*batch) }

func putBatch(b *batch) {
	clear(b.rules)
	b.ops, b.rules = b.ops[:0], b.rules[:0]
	batchPool.Put(b)
}

func (b *batch) add(op Op, r *rule) {
	*b.next(r) = op
}

// next appends an op for r and returns it to be filled in place.
func (b *batch) next(r *rule) *Op {
	b.ops = append(b.ops, Op{})
	b.rules = append(b.rules, r)
	if len(b.outs) < len(b.ops) {
		b.outs = append(b.outs, Outcome{})
	}
	return &b.ops[len(b.ops)-1]
}

// drop removes the last op (a limit that turned out not to apply).
func (b *batch) drop() {
	b.ops = b.ops[:len(b.ops)-1]
	b.rules = b.rules[:len(b.rules)-1]
}

// Limit implements [policy.Limiter]: every limit of the request's app, endpoint and
// organisation whose key components are known is counted in one store call. The result
// describes the limit that decided (on denial: the one with the longest wait) or the most
// constraining one (smallest remaining). An error means the store could not be reached
// and the app's fail mode is closed.
func (e *Engine) Limit(ctx context.Context, now time.Time, req policy.LimitRequest) (policy.LimitResult, error) {
	cost := max(req.Cost, 1)
	app := e.apps[req.App]
	org := req.Org
	fail := failClosed
	if app != nil {
		fail = app.fail
		if org == "" {
			org = app.org
		}
	}
	tag := org // one request's keys share one Redis Cluster slot: its organisation's, or its app's
	if tag == "" {
		tag = req.App
	}
	b := getBatch()
	defer putBatch(b)
	if app != nil {
		e.collect(b, app.rules, &req, org, tag, now, cost)
	}
	if req.Endpoint != "" {
		e.collect(b, e.endpoints[req.Endpoint], &req, org, tag, now, cost)
	}
	if org != "" {
		e.collect(b, e.orgs[org], &req, org, tag, now, cost)
	}
	if len(b.ops) == 0 {
		return policy.LimitResult{}, nil
	}
	if err := e.apply(ctx, now, b.ops, b.outs, fail); err != nil {
		if errors.Is(err, errFailOpen) {
			return policy.LimitResult{}, nil // no limit decided: no X-RateLimit headers
		}
		return policy.LimitResult{}, err
	}
	return e.summarize(b, now), nil
}

func (e *Engine) collect(b *batch, rules []*rule, req *policy.LimitRequest, org, tag string, now time.Time, cost int64) {
next:
	for _, r := range rules {
		op := b.next(r)
		k := &op.Key
		k.Reset(r.id, tag, r.idh)
		for _, c := range r.comps {
			v := value(req, org, c)
			if v == "" {
				b.drop() // a limit keyed on an unknown entity does not apply
				continue next
			}
			k.Add(v)
		}
		r.fill(op, now, cost)
	}
}

var errFailOpen = errors.New("ratelimit: store unavailable, failing open")

// apply runs ops on the store and, when the store fails, applies fail mode f.
func (e *Engine) apply(ctx context.Context, now time.Time, ops []Op, outs []Outcome, f failMode) error {
	err := e.store.Apply(ctx, now, ops, outs)
	if err == nil {
		return nil
	}
	e.metrics.StoreError(f.String())
	switch f {
	case failOpen:
		return errFailOpen
	case failLocal:
		if ls, ok := e.store.(state.LocalFallback); ok {
			return ls.Local().Apply(ctx, now, ops, outs)
		}
	}
	return err
}

// summarize picks the limit the client hears about (see tells).
func (e *Engine) summarize(b *batch, now time.Time) policy.LimitResult {
	var res policy.LimitResult
	var best Status
	var bestRule *rule
	denied, ns := false, now.UnixNano()
	for i := range b.ops {
		r, op, out := b.rules[i], &b.ops[i], b.outs[i]
		if r.shadow {
			if !out.Allowed {
				e.metrics.ShadowHit("inline", r.label)
			}
			continue
		}
		switch {
		case !out.Allowed:
			if st := r.status(op, out, now); bestRule == nil || tells(st, true, best, denied) {
				best, bestRule = st, r
			}
			denied = true
		case bestRule == nil:
			best, bestRule = r.status(op, out, now), r
		case tells(Status{Remaining: remaining(op, out, ns)}, false, best, denied): // the rest only on a win
			best, bestRule = r.status(op, out, now), r
		}
	}
	if bestRule == nil {
		return res
	}
	res = policy.LimitResult{Limit: best.Limit, Remaining: best.Remaining, Reset: best.Reset, Name: bestRule.name}
	if denied {
		res.Code = bestRule.code
		res.RetryAfter = best.RetryAfter
		e.metrics.OverLimitHit("inline", bestRule.label)
	}
	return res
}

// CreditsRef names a prepaid-credits limit: its scope (app, endpoint or org), the owner
// (the app, endpoint or organisation name) and the limit's name.
type CreditsRef struct {
	Scope string
	Owner string
	Name  string
}

// TopUp adds credits to the balance of the credits limit ref for the entity in req (the
// fields the limit is keyed on) and returns the new balance. Only a top-up restores
// credits. A negative amount withdraws.
func (e *Engine) TopUp(ctx context.Context, ref CreditsRef, req policy.LimitRequest, credits int64) (int64, error) {
	r, err := e.creditsRule(ref)
	if err != nil {
		return 0, err
	}
	k, err := creditsKey(r, ref, &req, e.apps[req.App])
	if err != nil {
		return 0, err
	}
	c, ok := e.store.(Credits)
	if !ok {
		return 0, errors.New("ratelimit: the store keeps no credits")
	}
	used, err := c.Adjust(ctx, k, -credits)
	if err != nil {
		return 0, err
	}
	return r.requests - used, nil
}

func (e *Engine) creditsRule(ref CreditsRef) (*rule, error) {
	var rules []*rule
	switch ref.Scope {
	case "app":
		if a := e.apps[ref.Owner]; a != nil {
			rules = a.rules
		}
	case "endpoint":
		rules = e.endpoints[ref.Owner]
	case "org":
		rules = e.orgs[ref.Owner]
	default:
		return nil, fmt.Errorf("ratelimit: credits scope must be app, endpoint or org, not %q", ref.Scope)
	}
	for _, r := range rules {
		if r.name == ref.Name && r.alg == algCredits {
			return r, nil
		}
	}
	return nil, fmt.Errorf("ratelimit: no credits limit %s/%s/%s", ref.Scope, ref.Owner, ref.Name)
}

func creditsKey(r *rule, ref CreditsRef, req *policy.LimitRequest, app *appRules) (Key, error) {
	org := req.Org
	if org == "" && app != nil {
		org = app.org
	}
	if ref.Scope == "org" && org == "" {
		org = ref.Owner
	}
	tag := org
	if tag == "" {
		tag = req.App
	}
	k := Key{ID: r.id, Tag: tag}
	var missing []string
	for _, c := range r.comps {
		v := value(req, org, c)
		if v == "" {
			missing = append(missing, componentName(c))
		}
		k.Add(v)
	}
	if len(missing) > 0 {
		return Key{}, fmt.Errorf("ratelimit: credits limit %s is keyed on %s: missing in request", r.name, strings.Join(missing, ", "))
	}
	k.Seal()
	return k, nil
}

func componentName(c component) string {
	for n, v := range componentNames {
		if v == c {
			return n
		}
	}
	return "?"
}

// lockoutRules is the compiled brute-force lockout.
type lockoutRules struct {
	max     int64
	window  time.Duration
	lockFor time.Duration
	kinds   []string
}

func (l *lockoutRules) tracks(key string) bool {
	if len(l.kinds) == 0 {
		return true
	}
	kind, _, ok := strings.Cut(key, ":")
	if !ok {
		return true
	}
	for _, k := range l.kinds {
		if k == kind {
			return true
		}
	}
	return false
}

// Locked implements [policy.Lockout].
func (e *Engine) Locked(ctx context.Context, now time.Time, keys ...string) (time.Time, bool, error) {
	l := &e.lockout
	if l.max == 0 {
		return time.Time{}, false, nil
	}
	b := getBatch()
	defer putBatch(b)
	for _, k := range keys {
		if l.tracks(k) {
			key := NewKey("lock/until", lockoutTag, 0, k)
			b.add(Op{Key: key, Kind: KindPeek}, nil)
		}
	}
	if len(b.ops) == 0 {
		return time.Time{}, false, nil
	}
	if err := e.store.Apply(ctx, now, b.ops, b.outs); err != nil {
		return time.Time{}, false, err
	}
	var until int64
	for i := range b.ops {
		if o := b.outs[i]; o.Allowed && o.Value > now.UnixNano() {
			until = max(until, o.Value)
		}
	}
	if until == 0 {
		return time.Time{}, false, nil
	}
	return time.Unix(0, until).UTC(), true, nil
}

// Fail implements [policy.Lockout]: it records one failure for each tracked key and
// locks every key that has had max failures within the last window (a sliding window,
// exact to the microsecond: the max-th failure less than window after the earliest of
// them locks; one at exactly window after it does not). Times are kept in microseconds,
// which Redis scripts hold exactly (their numbers are doubles).
//
// The store keeps, per key and wall-clock-aligned window of the configured length, the
// number of failures and the time of each (under its number). The failures of the
// current aligned window are all within the sliding window; of the previous one, only
// the most recent can be, and the time of the one that would be the max-th most recent
// overall decides. That is one round trip to count, one to record the time (and read
// that one), and one to lock: failures are rare, checks are not.
func (e *Engine) Fail(ctx context.Context, now time.Time, keys ...string) error {
	l := &e.lockout
	if l.max == 0 {
		return nil
	}
	b := getBatch()
	defer putBatch(b)
	w := lockWindow(now, l.window)
	for _, k := range keys {
		if l.tracks(k) {
			b.add(Op{Key: NewKey("lock/fail", lockoutTag, w.start, k), Kind: KindCounter, Limit: math.MaxInt64, Cost: 1, Expire: w.expire, Exact: true}, nil)
			b.add(Op{Key: NewKey("lock/fail", lockoutTag, w.prev, k), Kind: KindPeek}, nil)
		}
	}
	if len(b.ops) == 0 {
		return nil
	}
	if err := e.store.Apply(ctx, now, b.ops, b.outs); err != nil {
		return err
	}
	n := len(b.ops)
	lock := make([]bool, n/2)
	for i := 0; i < n; i += 2 {
		k := b.ops[i].Key.Part(0)
		cur, prev := b.outs[i].Value, int64(0)
		if b.outs[i+1].Allowed {
			prev = b.outs[i+1].Value
		}
		b.add(Op{Key: failureKey(w.start, k, cur), Kind: KindSet, Limit: now.UnixMicro(), Expire: w.expire}, nil)
		// The previous window's failure that would make this the max-th within the
		// window: number prev-(max-cur)+1 of it.
		j := prev - (l.max - cur) + 1
		lock[i/2] = cur >= l.max
		if !lock[i/2] && j >= 1 {
			b.add(Op{Key: failureKey(w.prev, k, j), Kind: KindPeek}, nil)
		} else {
			b.add(Op{Key: failureKey(w.prev, k, 0), Kind: KindPeek}, nil) // keeps ops paired; never stored
		}
	}
	if err := e.store.Apply(ctx, now, b.ops[n:], b.outs[n:]); err != nil {
		return err
	}
	return e.lock(ctx, now, b, n, lock)
}

// Reset forgets the failures of each tracked key (a successful login): it sets the
// counts of both aligned windows a sliding window reads to zero, in one round trip, so
// that the next failure is number one. A lock already set stays until it ends.
func (e *Engine) Reset(ctx context.Context, now time.Time, keys ...string) error {
	l := &e.lockout
	if l.max == 0 {
		return nil
	}
	b := getBatch()
	defer putBatch(b)
	w := lockWindow(now, l.window)
	for _, k := range keys {
		if l.tracks(k) {
			b.add(Op{Key: NewKey("lock/fail", lockoutTag, w.start, k), Kind: KindSet, Limit: 0, Expire: w.expire}, nil)
			b.add(Op{Key: NewKey("lock/fail", lockoutTag, w.prev, k), Kind: KindSet, Limit: 0, Expire: w.expire}, nil)
		}
	}
	if len(b.ops) == 0 {
		return nil
	}
	return e.store.Apply(ctx, now, b.ops, b.outs)
}

// lock sets the lock of every key whose failures reached the maximum: lock[i] is known
// already, else the peeked time of the deciding earlier failure (ops n+2i+1) decides.
func (e *Engine) lock(ctx context.Context, now time.Time, b *batch, n int, lock []bool) error {
	l := &e.lockout
	us, window := now.UnixMicro(), l.window.Microseconds()
	m := len(b.ops)
	until := now.Add(l.lockFor).UnixNano()
	for i := range lock {
		at := b.outs[n+2*i+1]
		if lock[i] || (at.Allowed && us-at.Value < window) {
			k := b.ops[2*i].Key.Part(0)
			b.add(Op{Key: NewKey("lock/until", lockoutTag, 0, k), Kind: KindSet, Limit: until, Expire: until}, nil)
		}
	}
	if len(b.ops) == m {
		return nil
	}
	return e.store.Apply(ctx, now, b.ops[m:], b.outs[m:])
}

// lockWindows are the aligned windows a failure at one instant reads and writes.
type lockWindows struct {
	start, prev int64 // unix ns: the current aligned window's start, and the previous one's
	expire      int64 // when this window's records are no longer needed: the end of the next window
}

func lockWindow(now time.Time, window time.Duration) lockWindows {
	start, end := state.WindowBounds(now.UnixNano(), window)
	return lockWindows{start: start, prev: start - int64(window), expire: end + int64(window)}
}

// failureKey names the time of failure number n of key in the aligned window starting
// at start.
func failureKey(start int64, key string, n int64) Key {
	return NewKey("lock/at", lockoutTag, start, key, strconv.FormatInt(n, 10))
}

// lockoutTag puts every lockout key in one Redis Cluster slot, so that one call can check
// an IP and a device together.
const lockoutTag = "lockout"
