package redisstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"github.com/gatehouse/gatehouse/ratelimit/memstore"
	"github.com/gatehouse/gatehouse/ratelimit/state"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/dgraph-io/ristretto/v2"
	"github.com/redis/rueidis"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"
)

const (
	defaultDialTimeout   = time.Second
	defaultBreakerFails  = 5
	defaultBreakerCool   = 250 * time.Millisecond
	defaultBreakerWindow = 50 * time.Millisecond
	defaultOverCacheKeys = 100_000
	reconnectEvery       = 250 * time.Millisecond
)

// Store keeps counters in Redis (single, sentinel or cluster) for several replicas.
// Every Apply is at most one round trip however many limits apply (plain INCRBYs when
// they are all counters, else one Lua script), plus one to take back a refused request's
// units (or leased units past the limit); it is bounded by the caller's deadline and the
// store timeout, and guarded by a circuit breaker. Requests on busy counters are admitted
// from units this replica leased (lease.go), with no round trip; keys known to be over
// their limit are remembered locally until their reset, so a hot abusive key costs no
// round trip either.
type Store struct {
	opt       rueidis.ClientOption
	client    atomic.Pointer[clientBox]
	conn      connWarden
	prefix    string
	cluster   bool
	native    bool // counters by INCRBY instead of the script
	timeout   time.Duration
	deadlines *deadlines
	br        breaker
	clock     state.Clock
	local     *memstore.Store
	over      *ristretto.Cache[uint64, overMark]
	expiring  *expirySeen // counter keys whose expiry this replica set
	leases    *leases     // units leased of busy counters (counters: native); nil: none
	gcra      *gcraLeases // units leased of busy token buckets (gcralease.go); nil when leases is
	batch     batcher
	done      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	metrics   atomic.Pointer[state.Metrics]
	spanAttrs []attribute.KeyValue // db.system.name, server.address and server.port of store spans

	// testBeforeTakeBack, when set (tests only), runs between the counting round trip
	// and the take-back, with the keys counted.
	testBeforeTakeBack func(keys []string)
}

var (
	_ state.Store         = (*Store)(nil)
	_ state.Credits       = (*Store)(nil)
	_ state.Bindings      = (*Store)(nil)
	_ state.Pinger        = (*Store)(nil)
	_ state.Instrumented  = (*Store)(nil)
	_ state.LocalFallback = (*Store)(nil)
)

type clientBox struct{ c rueidis.Client }

// overMark says the key with identity id (and hash tag tag) is over its limit until
// `until` (unix ns) with stored value `value`. Marks are found by digest: the identity
// keeps a key whose digest collides with a marked one from being refused in its place.
type overMark struct {
	until, value int64
	id, tag      string
}

// marks reports whether m is op's mark.
func (m *overMark) marks(op *state.Op) bool { return op.Key.Is(m.id) && op.Key.Tag == m.tag }

// Open opens a Redis store on cfg. A store that cannot connect yet still opens (and keeps
// connecting), so that the fail modes apply until Redis answers. clock (nil: the system
// clock) drives lease sweeps and the circuit breaker.
func Open(_ context.Context, cfg state.RedisConfig, clock state.Clock) (*Store, error) {
	clock = state.OrSystem(clock)
	opt, err := redisOptions(cfg)
	if err != nil {
		return nil, err
	}
	keys := cfg.OverLimitCacheKeys
	if keys <= 0 {
		keys = defaultOverCacheKeys
	}
	// Costs count entries (1 each), so the internal per-entry cost must not be added:
	// it would shrink the caches to a few thousand keys.
	over, err := ristretto.NewCache(&ristretto.Config[uint64, overMark]{
		NumCounters: keys * 10, MaxCost: keys, BufferItems: 64, IgnoreInternalCost: true,
	})
	if err != nil {
		return nil, fmt.Errorf("ratelimit: over-limit cache: %w", err)
	}
	s := &Store{
		opt:      opt,
		prefix:   cfg.KeyPrefix,
		cluster:  cfg.Mode == "cluster",
		native:   cfg.Counters != "script",
		timeout:  cfg.Timeout,
		clock:    clock,
		local:    memstore.New(state.MemoryConfig{}, clock),
		over:     over,
		expiring: new(expirySeen),
		done:     make(chan struct{}),
		br:       breaker{failures: cfg.Breaker.Failures, window: cfg.Breaker.Window, cooldown: cfg.Breaker.Cooldown},
	}
	if s.prefix == "" {
		s.prefix = "gh:"
	}
	s.spanAttrs = storeSpanAttrs(cfg.Addrs)
	if s.timeout == 0 {
		s.timeout = state.DefaultRedisTimeout
	}
	s.deadlines = newDeadlines(s.timeout)
	if s.br.failures == 0 {
		s.br.failures = defaultBreakerFails
	}
	if s.br.window == 0 {
		s.br.window = defaultBreakerWindow
	}
	if s.br.cooldown == 0 {
		s.br.cooldown = defaultBreakerCool
	}
	if s.native && cfg.Lease.MaxUnits >= 0 {
		idle := cmp.Or(cfg.Lease.Idle, defaultLeaseIdle)
		s.leases = newLeases(cmp.Or(cfg.Lease.MaxUnits, defaultLeaseUnits), idle, s.timeout)
		s.gcra = newGCRALeases()
		s.wg.Add(1)
		go s.sweepLeases(idle)
	}
	// Connections per node: 2^pipeline_multiplex; the client picks up to 4 itself when
	// it is 0 (single and sentinel modes): warm as many as it could have.
	s.conn.init(s.opt.Dialer.Timeout, 1<<max(cfg.PipelineMultiplex, 2))
	s.opt.DialCtxFn = s.conn.dial
	if s.connect() != nil { // not reachable yet: keep trying; the fail modes apply meanwhile
		s.wg.Add(1)
		go s.reconnect()
	}
	s.wg.Add(1)
	go s.conn.rewarm(s)
	return s, nil
}

func redisOptions(cfg state.RedisConfig) (rueidis.ClientOption, error) {
	var password string
	switch {
	case cfg.PasswordFile != "":
		var err error
		if password, err = state.ReadPassword(cfg.PasswordFile); err != nil {
			return rueidis.ClientOption{}, err
		}
	case cfg.PasswordEnv != "":
		password = os.Getenv(cfg.PasswordEnv)
	}
	tlsCfg, err := cfg.TLS.Load()
	if err != nil {
		return rueidis.ClientOption{}, err
	}
	dial := cfg.DialTimeout
	if dial <= 0 {
		dial = defaultDialTimeout
	}
	opt := rueidis.ClientOption{
		InitAddress:      cfg.Addrs,
		Username:         cfg.Username,
		Password:         password,
		SelectDB:         cfg.DB,
		TLSConfig:        tlsCfg,
		Dialer:           net.Dialer{Timeout: dial},
		ConnWriteTimeout: max(dial, time.Second),
		DisableCache:     true,
		DisableRetry:     true, // a retried script could count twice
		// Always the pipelined path: on the client's synchronous path (used while calls
		// do not overlap) a call that times out closes its connection, and every call
		// then waits for a new one; pipelined, a late reply is read and dropped.
		AlwaysPipelining: true,
		// Gather the commands of concurrent calls (beyond what the batcher shares) into
		// fewer writes: system calls, not Redis, are most of a round trip's CPU.
		MaxFlushDelay:     flushDelay(cfg.FlushDelay),
		PipelineMultiplex: cfg.PipelineMultiplex,
	}
	switch cfg.Mode {
	case "sentinel":
		opt.Sentinel = rueidis.SentinelOption{MasterSet: cfg.MasterName, Username: cfg.Username,
			Password: password, TLSConfig: tlsCfg, Dialer: net.Dialer{Timeout: dial}}
	case "cluster":
	default:
		opt.ForceSingleClient = true
	}
	return opt, nil
}

// connect makes the client and warms it (every connection dialled, the scripts loaded)
// before any store call can use it.
func (s *Store) connect() error {
	c, err := rueidis.NewClient(s.opt)
	if err != nil {
		if c != nil {
			c.Close()
		}
		return err
	}
	if err := s.conn.warm(c, s.prefix); err != nil {
		c.Close()
		return err
	}
	s.client.Store(&clientBox{c: c})
	s.conn.up.Store(true)
	return nil
}

func (s *Store) reconnect() {
	s.every(reconnectEvery, func() bool { return s.connect() == nil })
}

// every runs f every d until f reports done or the store closes, then marks the
// goroutine done in s.wg (the caller added it).
func (s *Store) every(d time.Duration, f func() (done bool)) {
	defer s.wg.Done()
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
			if f() {
				return
			}
		}
	}
}

// Local implements localStore: per-replica memory counters for fail mode local.
func (s *Store) Local() state.Store { return s.local }

// redisCall is what one store call sees of Redis: the client, the context that bounds the
// call, and send, which shares a round trip with concurrent calls when it may.
type redisCall struct {
	ctx     context.Context // bounds the call
	caller  context.Context // the caller's own context
	c       rueidis.Client
	b       *batcher // nil unless the call may join a batch (ctx is the shared deadline)
	timeout time.Duration
}

// followUp returns a context for a second round trip of the call: a budget of its own
// (the store timeout), bounded by the caller's deadline but not ended by its cancellation
// (units taken back matter even when the caller has gone).
func (r redisCall) followUp() (context.Context, context.CancelFunc) {
	ctx := context.WithoutCancel(r.caller)
	if dl, ok := r.caller.Deadline(); ok && time.Until(dl) < r.timeout {
		return context.WithDeadline(ctx, dl)
	}
	return context.WithTimeout(ctx, r.timeout)
}

// send sends cmds and returns their replies in order.
func (r redisCall) send(cmds rueidis.Commands) []rueidis.RedisResult {
	switch {
	case r.b != nil:
		return r.b.do(r.ctx, r.c, cmds)
	case len(cmds) == 1:
		return []rueidis.RedisResult{r.c.Do(r.ctx, cmds[0])}
	}
	return r.c.DoMulti(r.ctx, cmds...)
}

// call runs one store call under the breaker and the timeout. op names the call's
// command for traces (db.operation.name).
func (s *Store) call(ctx context.Context, op string, run func(redisCall) error) error {
	box := s.client.Load()
	if box == nil {
		return fmt.Errorf("%w: not connected", state.ErrUnavailable)
	}
	start := s.clock()
	ok, probe := s.br.allow(start)
	if !ok {
		s.metrics.Load().StoreCall("redis", 0, state.ErrUnavailable, true)
		return fmt.Errorf("%w: circuit breaker open", state.ErrUnavailable)
	}
	if !s.conn.up.Load() { // reconnecting in the background: a failure, as a refused dial would be
		s.br.done(start, probe, true)
		s.metrics.Load().StoreCall("redis", 0, errDialInCall, s.br.isOpen())
		return fmt.Errorf("%w: %w", state.ErrUnavailable, errDialInCall)
	}
	if err := ctx.Err(); err != nil {
		s.br.release(probe)
		return fmt.Errorf("%w: %w", state.ErrUnavailable, err)
	}
	// A round-trip span only under a span that records: a root span per Redis call would
	// be noise, and building a span that records nothing costs the hot path.
	var span trace.Span
	if trace.SpanFromContext(ctx).IsRecording() {
		ctx, span = tracer.Start(ctx, "gatehouse.store", trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(s.spanAttrs...), trace.WithAttributes(semconv.DBOperationName(op)))
	}
	cctx, cancel, shared := s.deadlines.bound(ctx)
	var b *batcher
	if shared && !s.cluster { // in cluster mode a batch would span shards: one slow or missing shard would fail it all
		b = &s.batch
	}
	err := run(redisCall{ctx: cctx, caller: ctx, c: box.c, b: b, timeout: s.timeout})
	cancel()
	end := s.clock()
	// A call on its own context that failed because its caller went away says nothing
	// about Redis: it neither counts as a failure nor, as a success would, resets the
	// failure streak or closes the breaker. Nor does TRYAGAIN: Redis Cluster is up and
	// ran nothing, the call's keys being split between two masters by a slot migration.
	if !shared && err != nil && errors.Is(ctx.Err(), context.Canceled) || tryAgain(err) {
		s.br.release(probe)
	} else {
		s.br.done(end, probe, err != nil)
	}
	s.metrics.Load().StoreCall("redis", end.Sub(start), err, s.br.isOpen())
	if err != nil {
		if span != nil {
			span.SetStatus(otelcodes.Error, "store call failed")
			span.SetAttributes(semconv.ErrorTypeKey.String(storeErrorType(err)))
			span.End()
		}
		return fmt.Errorf("%w: %w", state.ErrUnavailable, err)
	}
	if span != nil {
		span.End()
	}
	return nil
}

// tryAgain reports whether err is Redis Cluster's TRYAGAIN: a script or multi-key command
// whose keys are split between two masters while their slot migrates, refused unrun.
func tryAgain(err error) bool {
	var rerr *rueidis.RedisError
	return errors.As(err, &rerr) && rerr.IsTryAgain()
}

// storeSpanAttrs are the attributes every store span carries: the system and the first
// configured address (with sentinel or cluster, the node that was asked first).
func storeSpanAttrs(addrs []string) []attribute.KeyValue {
	attrs := []attribute.KeyValue{semconv.DBSystemNameRedis}
	if len(addrs) == 0 {
		return attrs
	}
	host, port, err := net.SplitHostPort(addrs[0])
	if err != nil {
		return append(attrs, semconv.ServerAddress(addrs[0]))
	}
	attrs = append(attrs, semconv.ServerAddress(host))
	if n, err := strconv.Atoi(port); err == nil {
		attrs = append(attrs, semconv.ServerPort(n))
	}
	return attrs
}

// storeErrorType is the error.type of a failed round trip: a few fixed values, never the
// error's text (it could hold a key).
func storeErrorType(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	if _, ok := rueidis.IsRedisErr(err); ok {
		return "redis_error"
	}
	return "connection_error"
}

// tracer makes the store round-trip spans; a no-op unless tracing is set up.
var tracer = otel.Tracer("github.com/gatehouse/gatehouse/ratelimit")

// instrument implements instrumented.
func (s *Store) Instrument(m *state.Metrics) { s.metrics.Store(m) }

// Apply implements [Store].
func (s *Store) Apply(ctx context.Context, now time.Time, ops []state.Op, out []state.Outcome) error {
	ns := now.UnixNano()
	refund := hasRefund(ops)
	if refund {
		// A refund is applied whatever the marks say, by the script (which floors it at
		// zero), and ends the marks of its keys.
		defer s.forgetOver(ops)
	} else if s.knownOver(ops, out, ns) {
		return nil
	}
	if s.native && !refund && allCounters(ops) {
		return s.applyCounters(ctx, ops, out, ns)
	}
	if s.gcra != nil && !refund {
		if g := throttleShape(ops); g >= 0 {
			return s.applyThrottle(ctx, ops, out, g, ns)
		}
	}
	var givenBuf [4]lent
	var given []lent
	if s.leases != nil {
		ops, given = s.giveUpLeases(ops, givenBuf[:0])
	}
	keys, args := s.encode(ops, ns)
	script := &applyScript
	if len(ops) == 1 && ops[0].Kind == state.KindGCRA {
		script = &gcraScript // the common inline device throttle, at half Redis's CPU
	}
	var res []int64
	sent := false
	err := s.call(ctx, "EVALSHA", func(r redisCall) error {
		sent = true
		var cmds rueidis.Commands
		var returned []int // ops whose leases go back ahead of the script, in the same round trip
		for i, n := range given {
			if n.units > 0 && ops[i].Cost >= 0 {
				// EVAL, not EVALSHA: Redis may not know the script yet.
				cmds = append(cmds, r.c.B().Eval().Script(returnScript.text).Numkeys(1).Key(keys[i]).Arg(strconv.FormatInt(n.units, 10)).Build())
				returned = append(returned, i)
			}
		}
		cmds = append(cmds, r.c.B().Evalsha().Sha1(script.sha).Numkeys(int64(len(keys))).Key(keys...).Arg(args...).Build())
		resps := r.send(cmds)
		for j, i := range returned {
			// Refused by Redis: not given back, the sweeper will try again. After a
			// timeout they may be back already: they stay counted (never given twice).
			if _, refused := rueidis.IsRedisErr(resps[j].Error()); refused {
				s.leases.requeue(s.leaseID(&ops[i]), &ops[i], given[i].units)
			}
		}
		reply := resps[len(resps)-1]
		if rerr, ok := rueidis.IsRedisErr(reply.Error()); ok && rerr.IsNoScript() { // Redis restarted
			reply = r.c.Do(r.ctx, r.c.B().Eval().Script(script.text).Numkeys(int64(len(keys))).Key(keys...).Arg(args...).Build())
		}
		var err error
		res, err = reply.AsIntSlice()
		return err
	})
	if err != nil {
		if !sent { // the leases given up never left: they are still leased here
			for i, n := range given {
				if n.units > 0 {
					s.leases.restore(s.leaseID(&ops[i]), &ops[i], n)
				}
			}
		}
		return err
	}
	if len(res) != 1+3*len(ops) {
		return fmt.Errorf("%w: script returned %d values for %d ops", state.ErrUnavailable, len(res), len(ops))
	}
	for i := range ops {
		op := &ops[i]
		o := state.Outcome{Allowed: res[1+3*i] == 1, Value: res[2+3*i]}
		if op.Kind == state.KindGCRA {
			o.Value *= 1000 // µs in Redis
		}
		if pttl := res[3+3*i]; pttl > 0 {
			o.Expire = ns + pttl*int64(time.Millisecond)
		}
		if op.Kind == state.KindCounter && s.leases != nil { // Redis's count includes units leased here
			o.Value -= s.leases.observe(s.leaseID(op), op, o.Value, op.Cost < 0)
		}
		out[i] = o
		s.rememberOver(op, o, ns)
	}
	return nil
}

// giveUpLeases empties the leases of ops's counters before a script reads them, so that
// the script counts what was admitted, as the memory store does: a refund takes the
// units back with its own (in a copy of ops), and the other ops' units go back ahead of
// the script in the same round trip. given[i] is what op i gave up.
func (s *Store) giveUpLeases(ops []state.Op, given []lent) ([]state.Op, []lent) {
	copied, any := false, false
	for i := range ops {
		var n lent
		if ops[i].Kind == state.KindCounter {
			n = s.leases.surrender(s.leaseID(&ops[i]), &ops[i])
		}
		given = append(given, n)
		if n.units == 0 {
			continue
		}
		any = true
		if ops[i].Cost < 0 {
			if !copied {
				ops, copied = append([]state.Op(nil), ops...), true
			}
			ops[i].Cost -= n.units
		}
	}
	if !any {
		return ops, nil
	}
	return ops, given
}

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
		resps := r.send(s.counterCommands(r.c, ops, plans, ns))
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
		p.leaseUse, p.local = s.leases.plan(p.id, &ops[i], &out[i])
		all = all && p.local
	}
	s.leases.unlock(set)
	return plans, set, all
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
		count := v - p.extra - p.own
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
		case o.Unknown:
			if p.on {
				s.leases.unplan(p.id, op, p.leaseUse, false, o)
			}
			continue
		}
		keep := commit || op.Always // an Always op is counted on its own: its units stay even when refused
		undo := takeBackUnits(op, p, o, keep)
		switch {
		case p.on:
			o.Value = s.leases.finish(p.id, op, p.leaseUse, p.v, keep, p.extra-undo, p.own)
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
	fctx, cancel := r.followUp()
	defer cancel()
	for _, reply := range r.c.DoMulti(fctx, follow...) {
		if reply.Error() != nil {
			s.metrics.Load().StoreFailure("redis")
			for i := range ops {
				s.expiring.forget(s.digest(&ops[i]))
			}
			return
		}
	}
}

// expirySeen remembers the keys whose expiry this replica set, in a direct-mapped table
// of key digests: a lookup is one atomic load. A digest includes the key's window, so a
// new window is a new entry; a collision only evicts an entry, whose expiry is then sent
// once more (harmless: the same window end).
type expirySeen [1 << 16]atomic.Uint64

func (e *expirySeen) has(h uint64) bool { return e[h&uint64(len(e)-1)].Load() == h }
func (e *expirySeen) add(h uint64)      { e[h&uint64(len(e)-1)].Store(h) }
func (e *expirySeen) forget(h uint64)   { e[h&uint64(len(e)-1)].CompareAndSwap(h, 0) }

// ttlMillis is the time from ns to expire, rounded up to whole milliseconds (at least 1).
func ttlMillis(expire, ns int64) int64 {
	return max((expire-ns+int64(time.Millisecond)-1)/int64(time.Millisecond), 1)
}

// knownOver answers from the over-limit cache when an enforcing op is known to be over:
// that op is denied with its remembered value, the others are reported Unknown. Ops that
// count on their own (Op.Always) let the cache answer only when each of them is known
// over: past its limit, one more unit changes no verdict of its window.
func (s *Store) knownOver(ops []state.Op, out []state.Outcome, ns int64) bool {
	hit := false
	for i := range ops {
		op := &ops[i]
		if !markable(op) {
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

// encode renders keys and the script's arguments: now (µs), then per op kind, limit,
// cost, interval (µs), ttl (ms) and flags (1: shadow, 2: always).
func (s *Store) encode(ops []state.Op, ns int64) ([]string, []string) {
	keys := make([]string, len(ops))
	args := make([]string, 1, 1+6*len(ops))
	args[0] = strconv.FormatInt(ns/1000, 10)
	for i := range ops {
		op := &ops[i]
		keys[i] = op.Key.Render(s.prefix, s.cluster)
		var iv, ttl int64
		if op.Kind == state.KindGCRA {
			iv = max(op.Interval/1000, 1)
		}
		if op.Expire > 0 {
			ttl = ttlMillis(op.Expire, ns)
		}
		flags := 0 // 1: shadow, 2: always
		if op.Shadow {
			flags |= 1
		}
		if op.Always {
			flags |= 2
		}
		args = append(args, strconv.Itoa(int(op.Kind)), strconv.FormatInt(op.Limit, 10),
			strconv.FormatInt(op.Cost, 10), strconv.FormatInt(iv, 10), strconv.FormatInt(ttl, 10), strconv.Itoa(flags))
	}
	return keys, args
}

// flushDelay is the pipeline's write pause: 20µs unless configured (negative: none).
func flushDelay(d time.Duration) time.Duration {
	switch {
	case d < 0:
		return 0
	case d == 0:
		return 20 * time.Microsecond
	}
	return d
}

// Adjust implements [Store].
func (s *Store) Adjust(ctx context.Context, key state.Key, delta int64) (int64, error) {
	var v int64
	err := s.call(ctx, "INCRBY", func(r redisCall) error {
		var err error
		v, err = r.c.Do(r.ctx, r.c.B().Incrby().Key(key.Render(s.prefix, s.cluster)).Increment(delta).Build()).AsInt64()
		return err
	})
	if err == nil {
		s.forgetOver([]state.Op{{Key: key, Cost: -1}}) // a top-up ends the mark as a refund does
	}
	return v, err
}

func (s *Store) bindKey(key string) string {
	if s.cluster {
		return s.prefix + "bind:{" + state.KeyEscaper.Replace(key) + "}"
	}
	return s.prefix + "bind:" + state.KeyEscaper.Replace(key)
}

// Bind implements [Store].
func (s *Store) Bind(ctx context.Context, key, member string, maxMembers int) (bool, int, error) {
	var res []int64
	err := s.call(ctx, "EVALSHA", func(r redisCall) error {
		var err error
		res, err = bindScript.Exec(r.ctx, r.c, []string{s.bindKey(key)}, []string{member, strconv.Itoa(maxMembers)}).AsIntSlice()
		return err
	})
	if err != nil {
		return false, 0, err
	}
	if len(res) != 2 {
		return false, 0, fmt.Errorf("%w: bind script returned %d values", state.ErrUnavailable, len(res))
	}
	return res[0] == 1, int(res[1]), nil
}

// ResetBindings implements [Store].
func (s *Store) ResetBindings(ctx context.Context, key string) error {
	return s.call(ctx, "DEL", func(r redisCall) error {
		return r.c.Do(r.ctx, r.c.B().Del().Key(s.bindKey(key)).Build()).Error()
	})
}

// Ping checks that Redis answers (for readiness probes).
func (s *Store) Ping(ctx context.Context) error {
	return s.call(ctx, "PING", func(r redisCall) error {
		return r.c.Do(r.ctx, r.c.B().Ping().Build()).Error()
	})
}

// Close implements [Store].
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.done)
		s.wg.Wait()
		if s.leases != nil { // units leased and not used go back before the client closes
			s.returnLeases(s.leases.collect(true))
		}
		if box := s.client.Load(); box != nil {
			box.c.Close()
		}
		s.over.Close()
	})
	return nil
}
