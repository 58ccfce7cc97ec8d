package redisstore

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/ristretto/v2"
	"github.com/redis/rueidis"
	"go.opentelemetry.io/otel/attribute"

	"github.com/gatehouse/gatehouse/ratelimit/memstore"
	"github.com/gatehouse/gatehouse/ratelimit/state"
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
	shares    *shares     // this replica's shares of token buckets (shares.go); nil: none
	gcra      *gcraLeases // units leased of busy token buckets (gcralease.go); nil when leases is
	batch     batcher
	done      chan struct{}
	life      context.Context // round trips (flight.go) run under it: ended by Close
	stop      context.CancelFunc
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
	// Its Done channel also tells the dialer that a round trip is a store call's.
	s.life, s.stop = context.WithCancel(context.Background())
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
		s.shares = newShares(cfg.Shares, s.prefix)
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
	if s.shares != nil {
		s.wg.Add(1)
		go s.keepShares()
	}
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

// instrument implements instrumented.
func (s *Store) Instrument(m *state.Metrics) {
	s.metrics.Store(m)
	if s.shares != nil {
		m.ShareUnits(s.shares.units)
	}
}

// Apply implements [Store].
func (s *Store) Apply(ctx context.Context, now time.Time, ops []state.Op, out []state.Outcome) error {
	if s.shares != nil {
		return s.applyShared(ctx, ops, out, now.UnixNano())
	}
	return s.apply(ctx, ops, out, now.UnixNano(), -1)
}

// throttlePath returns the index of the token bucket when apply evaluates ops by
// applyThrottle (an inline device throttle beside counters), else -1.
func (s *Store) throttlePath(ops []state.Op) int {
	if s.gcra == nil || hasRefund(ops) || s.native && allCounters(ops) {
		return -1
	}
	return throttleShape(ops)
}

// apply counts ops in Redis. local ≥ 0: this replica's share admitted ops[local] (the
// token bucket of the throttle path) already; Redis does not count it.
func (s *Store) apply(ctx context.Context, ops []state.Op, out []state.Outcome, ns int64, local int) error {
	refund := hasRefund(ops)
	if refund {
		// A refund is applied whatever the marks say, by the script (which floors it at
		// zero), and ends the marks of its keys.
		defer s.forgetOver(ops)
	} else if s.knownOver(ops, out, ns, local) {
		return nil
	}
	if s.native && !refund && allCounters(ops) {
		return s.applyCounters(ctx, ops, out, ns)
	}
	if s.gcra != nil && !refund { // throttlePath, its other conditions checked above
		if g := throttleShape(ops); g >= 0 {
			return s.applyThrottle(ctx, ops, out, g, ns, g == local)
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
		resps, lt := r.send(cmds)
		if lt.gaveUp() {
			s.giveBackScript(lt, r.c, ops, keys, len(returned))
		}
		for j, i := range returned {
			// Refused by Redis: not given back, the sweeper will try again. After a
			// timeout they may be back already: they stay counted (never given twice).
			if _, refused := rueidis.IsRedisErr(resps[j].Error()); refused {
				s.leases.requeue(s.leaseID(&ops[i]), &ops[i], given[i].units)
			}
		}
		reply := resps[len(resps)-1]
		if rerr, ok := rueidis.IsRedisErr(reply.Error()); ok && rerr.IsNoScript() { // Redis restarted
			resps, lt := r.send(rueidis.Commands{r.c.B().Eval().Script(script.text).Numkeys(int64(len(keys))).Key(keys...).Arg(args...).Build()})
			if lt.gaveUp() {
				s.giveBackScript(lt, r.c, ops, keys, 0)
			}
			reply = resps[0]
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

// Ping checks that Redis answers (for readiness probes).
func (s *Store) Ping(ctx context.Context) error {
	return s.call(ctx, "PING", func(r redisCall) error {
		return r.do(r.c.B().Ping().Build()).Error()
	})
}

// Close implements [Store].
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.done)
		s.wg.Wait()
		if s.shares != nil {
			s.shares.release(s)
		}
		if s.leases != nil { // units leased and not used go back before the client closes
			s.returnLeases(s.leases.collect(true))
		}
		if box := s.client.Load(); box != nil {
			box.c.Close()
		}
		s.stop()
		s.over.Close()
	})
	return nil
}
