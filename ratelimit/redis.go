package ratelimit

import (
	"cmp"
	"context"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
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

// defaultRedisTimeout bounds a store call when the file sets no redis.timeout. It is
// not the round trip (about 0.1ms idle) but its tail under saturation: when Gatehouse,
// Redis and the load share two cores at 64 calls in flight, a call waits for the run
// queue, the pipeline's flush and Redis's event loop, and about 2 in 10,000 waited past
// 5ms (117 of about 600,000 RLS calls failed). A call cut short is worse than slow:
// Envoy gets an error (or the fail mode answers), and when Redis had already run the
// command the request is counted without being admitted (936 of 1000 admitted while
// Redis counted 1000). At 100ms no call failed in those runs. It costs nothing when
// Redis is healthy, and a dead Redis is noticed by refused connections and the circuit
// breaker, not by this timeout; a hung one costs at most this per call until the
// breaker opens. Envoy's own deadline still bounds every call: the RLS filter's 20ms
// default, ext_authz's 200ms. Retries stay off: a retried INCRBY or script could count
// twice, and a budget that covers the tail needs none.
const defaultRedisTimeout = 100 * time.Millisecond

// maxRedisTimeout bounds redis.timeout: past it a hung Redis would hold calls for
// longer than any proxy waits for an answer.
const maxRedisTimeout = 10 * time.Second

const (
	defaultDialTimeout   = time.Second
	defaultBreakerFails  = 5
	defaultBreakerCool   = 250 * time.Millisecond
	defaultBreakerWindow = 50 * time.Millisecond
	defaultOverCacheKeys = 100_000
	reconnectEvery       = 250 * time.Millisecond
)

// redisStore keeps counters in Redis (single, sentinel or cluster) for several replicas.
// Every Apply is at most one round trip however many limits apply (plain INCRBYs when
// they are all counters, else one Lua script), plus one to take back a refused request's
// units (or leased units past the limit); it is bounded by the caller's deadline and the
// store timeout, and guarded by a circuit breaker. Requests on busy counters are admitted
// from units this replica leased (lease.go), with no round trip; keys known to be over
// their limit are remembered locally until their reset, so a hot abusive key costs no
// round trip either.
type redisStore struct {
	opt       rueidis.ClientOption
	client    atomic.Pointer[clientBox]
	conn      connWarden
	prefix    string
	cluster   bool
	native    bool // counters by INCRBY instead of the script
	timeout   time.Duration
	deadlines *deadlines
	br        breaker
	clock     Clock
	local     *memoryStore
	over      *ristretto.Cache[uint64, overMark]
	expiring  *expirySeen // counter keys whose expiry this replica set
	leases    *leases     // units leased of busy counters (counters: native); nil: none
	batch     batcher
	done      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	metrics   atomic.Pointer[Metrics]
	spanAttrs []attribute.KeyValue // db.system.name, server.address and server.port of store spans

	// testBeforeTakeBack, when set (tests only), runs between the counting round trip
	// and the take-back, with the keys counted.
	testBeforeTakeBack func(keys []string)
}

var _ Store = (*redisStore)(nil)
var _ instrumented = (*redisStore)(nil)

type clientBox struct{ c rueidis.Client }

// overMark says the key with identity id (and hash tag tag) is over its limit until
// `until` (unix ns) with stored value `value`. Marks are found by digest: the identity
// keeps a key whose digest collides with a marked one from being refused in its place.
type overMark struct {
	until, value int64
	id, tag      string
}

// marks reports whether m is op's mark.
func (m *overMark) marks(op *Op) bool { return op.Key.is(m.id) && op.Key.Tag == m.tag }

func openRedis(_ context.Context, cfg RedisConfig, clock Clock) (*redisStore, error) {
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
	s := &redisStore{
		opt:      opt,
		prefix:   cfg.KeyPrefix,
		cluster:  cfg.Mode == "cluster",
		native:   cfg.Counters != "script",
		timeout:  cfg.Timeout,
		clock:    clock,
		local:    newMemory(MemoryConfig{}, clock),
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
		s.timeout = defaultRedisTimeout
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

func redisOptions(cfg RedisConfig) (rueidis.ClientOption, error) {
	var password string
	switch {
	case cfg.PasswordFile != "":
		var err error
		if password, err = readPassword(cfg.PasswordFile); err != nil {
			return rueidis.ClientOption{}, err
		}
	case cfg.PasswordEnv != "":
		password = os.Getenv(cfg.PasswordEnv)
	}
	tlsCfg, err := redisTLS(cfg.TLS)
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

func readPassword(file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("redis.password_file: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// CheckFiles reads the files the store reads when it opens (the password file, the TLS
// CA and key pair) and returns a problem for each one it could not use, so that a
// configuration check refuses what opening the store would. It dials nothing, and its
// messages name files, never their content.
func (c RedisConfig) CheckFiles() []error {
	var errs []error
	if c.PasswordFile != "" {
		if _, err := readPassword(c.PasswordFile); err != nil {
			errs = append(errs, err)
		}
	}
	ca, pair := c.TLS, c.TLS
	ca.CertFile, ca.KeyFile, pair.CAFile = "", "", ""
	for _, t := range []TLSConfig{ca, pair} {
		if _, err := redisTLS(t); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

func redisTLS(t TLSConfig) (*tls.Config, error) {
	if !t.Enabled {
		return nil, nil
	}
	c := &tls.Config{ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify, MinVersion: tls.VersionTLS12} //nolint:gosec // operator's choice
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("redis.tls.ca_file: %w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("redis.tls.ca_file: no certificate found")
		}
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("redis.tls: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// connect makes the client and warms it (every connection dialled, the scripts loaded)
// before any store call can use it.
func (s *redisStore) connect() error {
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

func (s *redisStore) reconnect() {
	s.every(reconnectEvery, func() bool { return s.connect() == nil })
}

// every runs f every d until f reports done or the store closes, then marks the
// goroutine done in s.wg (the caller added it).
func (s *redisStore) every(d time.Duration, f func() (done bool)) {
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
func (s *redisStore) Local() Store { return s.local }

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
func (s *redisStore) call(ctx context.Context, op string, run func(redisCall) error) error {
	box := s.client.Load()
	if box == nil {
		return fmt.Errorf("%w: not connected", ErrUnavailable)
	}
	start := s.clock()
	ok, probe := s.br.allow(start)
	if !ok {
		s.metrics.Load().storeCall("redis", 0, ErrUnavailable, true)
		return fmt.Errorf("%w: circuit breaker open", ErrUnavailable)
	}
	if !s.conn.up.Load() { // reconnecting in the background: a failure, as a refused dial would be
		s.br.done(start, probe, true)
		s.metrics.Load().storeCall("redis", 0, errDialInCall, s.br.isOpen())
		return fmt.Errorf("%w: %w", ErrUnavailable, errDialInCall)
	}
	if err := ctx.Err(); err != nil {
		s.br.release(probe)
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
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
	s.metrics.Load().storeCall("redis", end.Sub(start), err, s.br.isOpen())
	if err != nil {
		if span != nil {
			span.SetStatus(otelcodes.Error, "store call failed")
			span.SetAttributes(semconv.ErrorTypeKey.String(storeErrorType(err)))
			span.End()
		}
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
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
func (s *redisStore) instrument(m *Metrics) { s.metrics.Store(m) }

// Apply implements [Store].
func (s *redisStore) Apply(ctx context.Context, now time.Time, ops []Op, out []Outcome) error {
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
	var givenBuf [4]lent
	var given []lent
	if s.leases != nil {
		ops, given = s.giveUpLeases(ops, givenBuf[:0])
	}
	keys, args := s.encode(ops, ns)
	script := &applyScript
	if len(ops) == 1 && ops[0].Kind == KindGCRA {
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
		return fmt.Errorf("%w: script returned %d values for %d ops", ErrUnavailable, len(res), len(ops))
	}
	for i := range ops {
		op := &ops[i]
		o := Outcome{Allowed: res[1+3*i] == 1, Value: res[2+3*i]}
		if op.Kind == KindGCRA {
			o.Value *= 1000 // µs in Redis
		}
		if pttl := res[3+3*i]; pttl > 0 {
			o.Expire = ns + pttl*int64(time.Millisecond)
		}
		if op.Kind == KindCounter && s.leases != nil { // Redis's count includes units leased here
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
func (s *redisStore) giveUpLeases(ops []Op, given []lent) ([]Op, []lent) {
	copied, any := false, false
	for i := range ops {
		var n lent
		if ops[i].Kind == KindCounter {
			n = s.leases.surrender(s.leaseID(&ops[i]), &ops[i])
		}
		given = append(given, n)
		if n.units == 0 {
			continue
		}
		any = true
		if ops[i].Cost < 0 {
			if !copied {
				ops, copied = append([]Op(nil), ops...), true
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
func stillOver(op *Op, v, ns int64) bool {
	_, over := overUntil(op, v, ns)
	return over
}

// rememberOver puts an enforcing op that is out of units in the over-limit cache until it
// has units again; with native counting, a counter for at most nativeOverFor, since any
// count read of it (by INCRBY or by the script) may include units being taken back.
func (s *redisStore) rememberOver(op *Op, o Outcome, ns int64) {
	if o.Allowed || op.Shadow {
		return
	}
	if until, over := overUntil(op, o.Value, ns); over {
		if s.native && op.Kind == KindCounter {
			until = min(until, ns+int64(nativeOverFor))
		}
		s.over.SetWithTTL(s.digest(op), overMark{until: until, value: o.Value, id: op.Key.identity(), tag: op.Key.Tag}, 1, time.Duration(until-ns))
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
func (s *redisStore) digest(op *Op) uint64 {
	if s.cluster && op.Key.Tag != "" {
		return mix(op.Key.hash ^ xxhash.Sum64String(op.Key.Tag))
	}
	return op.Key.hash
}

func hasRefund(ops []Op) bool {
	for i := range ops {
		if ops[i].Cost < 0 {
			return true
		}
	}
	return false
}

// forgetOver ends the over-limit marks of the refunded ops' keys. A mark may still sit in
// the cache's buffer (applied after the Del, it would refuse the key): flush it first.
func (s *redisStore) forgetOver(ops []Op) {
	s.over.Wait()
	for i := range ops {
		if ops[i].Cost < 0 {
			s.over.Del(s.digest(&ops[i]))
		}
	}
}

func allCounters(ops []Op) bool {
	for i := range ops {
		if ops[i].Kind != KindCounter {
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
func (s *redisStore) applyCounters(ctx context.Context, ops []Op, out []Outcome, ns int64) error {
	// Leases first: a request they fully cover costs no round trip.
	var planBuf [4]planned
	plans := planBuf[:0]
	all := s.leases != nil
	for i := range ops {
		var p planned
		if s.leases != nil {
			p.id = s.leaseID(&ops[i])
			p.leaseUse, p.local = s.leases.plan(p.id, &ops[i], &out[i])
		}
		plans = append(plans, p)
		all = all && p.local
	}
	if all {
		return nil
	}
	settled := false
	err := s.call(ctx, "INCRBY", func(r redisCall) error {
		c := r.c
		type sent struct {
			incr, pexpire int   // reply indexes; -1: not sent
			n             int64 // units added
			v             int64 // the count Redis replied
			own           int64 // units leased here and unused that v includes
		}
		var keyBuf [4]string
		var atBuf [4]sent
		keys, at := keyBuf[:0], atBuf[:0]
		cmds := make(rueidis.Commands, 0, 2*len(ops))
		for i := range ops {
			op, p := &ops[i], &plans[i]
			keys = append(keys, "")
			at = append(at, sent{incr: -1, pexpire: -1})
			if p.local {
				continue
			}
			keys[i] = op.Key.Render(s.prefix, s.cluster)
			at[i].incr = len(cmds)
			if op.Cost == 0 { // a check without counting: GET creates no key
				cmds = append(cmds, c.B().Get().Key(keys[i]).Build())
				continue
			}
			at[i].n = op.Cost - p.pooled + p.extra
			cmds = append(cmds, c.B().Incrby().Key(keys[i]).Increment(at[i].n).Build())
			if op.Expire > 0 && !s.expiring.has(s.digest(op)) {
				at[i].pexpire = len(cmds)
				cmds = append(cmds, c.B().Pexpire().Key(keys[i]).Milliseconds(ttlMillis(op.Expire, ns)).Build())
			}
		}
		resps := r.send(cmds)
		commit := true
		var firstErr error
		for i := range ops {
			op, p := &ops[i], &plans[i]
			if p.local {
				continue
			}
			v, err := resps[at[i].incr].AsInt64()
			if op.Cost == 0 && rueidis.IsRedisNil(err) {
				v, err = 0, nil // nothing counted yet
			}
			if err != nil {
				firstErr = cmp.Or(firstErr, err)
				out[i] = Outcome{Unknown: true}
				continue
			}
			at[i].v = v
			// Units leased here and unused are not admitted: the count leaves them out
			// (those still held, should the sweeper have given some back meanwhile).
			if p.held > 0 {
				at[i].own = s.leases.stillHeld(p.id, op, p.leaseUse)
			}
			// The request's own units are the first of those added; the lease's follow.
			count := v - p.extra - at[i].own
			out[i] = Outcome{Allowed: count <= op.Limit, Value: count}
			if !out[i].Allowed && !op.Shadow && !op.Always {
				commit = false
			}
			if x := at[i].pexpire; x >= 0 && resps[x].Error() == nil {
				s.expiring.add(s.digest(op))
			}
		}
		commit = commit && firstErr == nil
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
			// The key needs its expiry again when it was created anew though this
			// replica set it before (Redis lost it: a failover, a flush), and after a
			// take-back, which recreates a key that expired since the INCRBY. PEXPIRE to
			// the window's end is idempotent.
			recreated := at[i].n > 0 && at[i].pexpire < 0 && at[i].v == at[i].n
			undo := int64(0)
			// An Always op is counted on its own: its units stay even when refused.
			keep := commit || op.Always
			if at[i].n > 0 && (!keep || !o.Allowed && !op.Always) { // a check added nothing
				undo = at[i].n
			} else if p.extra > 0 { // leased units past the limit go back
				undo = max(min(p.extra, at[i].v-op.Limit), 0)
			}
			switch {
			case p.on:
				o.Value = s.leases.finish(p.id, op, p.leaseUse, at[i].v, keep, p.extra-undo, at[i].own)
				if keep {
					s.metrics.Load().leased(p.extra-undo, false)
				}
			default:
				o.Value -= undo
				if s.leases != nil { // counts from a lease of this counter include this one
					s.leases.saw(p.id, op, at[i].v-undo)
				}
			}
			if undo > 0 {
				follow = append(follow, c.B().Decrby().Key(keys[i]).Decrement(undo).Build())
			}
			if op.Expire > 0 && (recreated || undo > 0) {
				follow = append(follow, c.B().Pexpire().Key(keys[i]).Milliseconds(ttlMillis(op.Expire, ns)).Build())
			}
		}
		settled = true
		if len(follow) > 0 {
			if s.testBeforeTakeBack != nil {
				s.testBeforeTakeBack(keys)
			}
			fctx, cancel := r.followUp()
			for _, reply := range c.DoMulti(fctx, follow...) {
				if reply.Error() != nil {
					// Units not taken back stay counted until the window ends: more
					// refusals, never more admissions. Expiries may be missing: send
					// them again with the next counts.
					s.metrics.Load().storeFailure("redis")
					for i := range ops {
						s.expiring.forget(s.digest(&ops[i]))
					}
					break
				}
			}
			cancel()
		}
		if firstErr != nil {
			return firstErr
		}
		for i := range ops {
			s.rememberOver(&ops[i], out[i], ns)
		}
		return nil
	})
	if !settled { // the call never reached Redis: give back what the leases lent
		for i := range plans {
			if p := &plans[i]; p.on {
				s.leases.unplan(p.id, &ops[i], p.leaseUse, p.local, &out[i])
			}
		}
	}
	return err
}

// planned is what the leases decided for one op of a request.
type planned struct {
	leaseUse
	id    uint64
	local bool // the lease covered the op: no command for it
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
func (s *redisStore) knownOver(ops []Op, out []Outcome, ns int64) bool {
	hit := false
	for i := range ops {
		op := &ops[i]
		if !markable(op) {
			continue
		}
		// A mark answers only while its value is still over this op's limit: a reload
		// (or an RLS override) may have raised the limit since.
		if m, ok := s.over.Get(s.digest(op)); ok && m.until > ns && m.marks(op) && stillOver(op, m.value, ns) &&
			(s.leases == nil || !s.leases.covers(s.leaseID(op), op)) {
			out[i] = Outcome{Value: m.value}
			hit = true
		} else if op.Always {
			return false // it counts on its own: Redis must see it
		} else {
			out[i] = Outcome{Allowed: true, Unknown: true}
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
			out[i] = Outcome{Allowed: true, Unknown: true}
		}
	}
	return true
}

// markable reports whether an over-limit mark may answer for op: an enforcing counter or
// token bucket that counts (a check without counting, cost 0, asks the store like any).
func markable(op *Op) bool {
	return !op.Shadow && op.Cost > 0 && (op.Kind == KindCounter || op.Kind == KindGCRA)
}

// encode renders keys and the script's arguments: now (µs), then per op kind, limit,
// cost, interval (µs), ttl (ms) and flags (1: shadow, 2: always).
func (s *redisStore) encode(ops []Op, ns int64) ([]string, []string) {
	keys := make([]string, len(ops))
	args := make([]string, 1, 1+6*len(ops))
	args[0] = strconv.FormatInt(ns/1000, 10)
	for i := range ops {
		op := &ops[i]
		keys[i] = op.Key.Render(s.prefix, s.cluster)
		var iv, ttl int64
		if op.Kind == KindGCRA {
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
func (s *redisStore) Adjust(ctx context.Context, key Key, delta int64) (int64, error) {
	var v int64
	err := s.call(ctx, "INCRBY", func(r redisCall) error {
		var err error
		v, err = r.c.Do(r.ctx, r.c.B().Incrby().Key(key.Render(s.prefix, s.cluster)).Increment(delta).Build()).AsInt64()
		return err
	})
	if err == nil {
		s.forgetOver([]Op{{Key: key, Cost: -1}}) // a top-up ends the mark as a refund does
	}
	return v, err
}

func (s *redisStore) bindKey(key string) string {
	if s.cluster {
		return s.prefix + "bind:{" + keyEscaper.Replace(key) + "}"
	}
	return s.prefix + "bind:" + keyEscaper.Replace(key)
}

// Bind implements [Store].
func (s *redisStore) Bind(ctx context.Context, key, member string, maxMembers int) (bool, int, error) {
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
		return false, 0, fmt.Errorf("%w: bind script returned %d values", ErrUnavailable, len(res))
	}
	return res[0] == 1, int(res[1]), nil
}

// ResetBindings implements [Store].
func (s *redisStore) ResetBindings(ctx context.Context, key string) error {
	return s.call(ctx, "DEL", func(r redisCall) error {
		return r.c.Do(r.ctx, r.c.B().Del().Key(s.bindKey(key)).Build()).Error()
	})
}

// Ping checks that Redis answers (for readiness probes).
func (s *redisStore) Ping(ctx context.Context) error {
	return s.call(ctx, "PING", func(r redisCall) error {
		return r.c.Do(r.ctx, r.c.B().Ping().Build()).Error()
	})
}

// Close implements [Store].
func (s *redisStore) Close() error {
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

// luaScript is a script sent by EVALSHA (EVAL when Redis does not know it).
type luaScript struct{ text, sha string }

func newLuaScript(text string) luaScript {
	sum := sha1.Sum([]byte(text)) //nolint:gosec // names a Lua script for EVALSHA, as Redis does
	return luaScript{text: text, sha: hex.EncodeToString(sum[:])}
}

// applyScript evaluates every op against one consistent state and commits the admitting
// ones only if no enforcing op denies. It mirrors memoryStore.apply; values of GCRA ops
// are in µs (Lua numbers are doubles). Arguments (encode): now, then per op kind, limit,
// cost, interval, ttl, flags (1: shadow, 2: always; Op.Always). Reply: commit, then per op admitted, value, pttl.
var applyScript = newLuaScript(applyScriptText)

const applyScriptText = `
local now = tonumber(ARGV[1])
local n = #KEYS
local pend, nexts, bases, oks, pttls, alw = {}, {}, {}, {}, {}, {}
local commit = 1
for i = 1, n do
  local b = 2 + (i - 1) * 6
  local kind = tonumber(ARGV[b])
  local limit = tonumber(ARGV[b + 1])
  local cost = tonumber(ARGV[b + 2])
  local iv = tonumber(ARGV[b + 3])
  local flags = tonumber(ARGV[b + 5])
  local shadow = flags % 2 == 1
  local always = flags >= 2
  local k = KEYS[i]
  local cur = pend[k]
  local exists = cur ~= nil
  local pttl = 0
  if cur == nil then
    local v = redis.call('GET', k)
    if v then
      cur = tonumber(v)
      exists = true
      if kind == 3 then pttl = redis.call('PTTL', k) end
    else
      cur = 0
    end
  end
  local nxt, base, ok = cur, cur, exists
  if kind == 1 then
    nxt = cur + cost
    ok = nxt <= limit
    if cost < 0 then nxt, ok = math.max(nxt, 0), true end
  elseif kind == 2 then
    base = math.max(cur, now)
    nxt = base + cost * iv
    ok = (nxt - now) <= limit * iv
    if cost < 0 then nxt, ok = math.max(base + math.max(cost, -limit) * iv, now), true end
  elseif kind == 4 then
    nxt = limit
    ok = true
  end
  local forced = always and kind == 1 and cost > 0
  if forced then base = nxt end
  if kind ~= 3 then
    if ok then pend[k] = nxt else pend[k] = base end
  end
  nexts[i], bases[i], oks[i], pttls[i], alw[i] = nxt, base, ok, pttl, always
  if (not ok) and (not shadow) and (not always) and (kind == 1 or kind == 2) then commit = 0 end
end
local res = {commit}
for i = 1, n do
  local b = 2 + (i - 1) * 6
  local kind = tonumber(ARGV[b])
  local ttl = tonumber(ARGV[b + 4])
  local v = bases[i]
  local cost = tonumber(ARGV[b + 2])
  local forced = alw[i] and kind == 1 and cost > 0
  if forced or ((commit == 1 or cost < 0 or alw[i]) and oks[i] and kind ~= 3) then
    v = nexts[i]
    local s = string.format('%.0f', v)
    if kind == 2 then
      redis.call('SET', KEYS[i], s, 'PX', math.max(1, math.ceil((v - now) / 1000)))
    elseif ttl > 0 then
      redis.call('SET', KEYS[i], s, 'PX', ttl)
    else
      redis.call('SET', KEYS[i], s)
    end
  end
  res[#res + 1] = oks[i] and 1 or 0
  res[#res + 1] = v
  res[#res + 1] = pttls[i]
end
return res
`

// gcraScript is applyScript for a single GCRA op, with the same arguments and reply: a
// request with one token bucket (the usual inline device throttle) costs Redis about
// half of what the general script does.
var gcraScript = newLuaScript(`
local now = tonumber(ARGV[1])
local burst, cost, iv = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local base = now
local cur = redis.call('GET', KEYS[1])
if cur then base = math.max(tonumber(cur), now) end
local nxt = base + cost * iv
if cost < 0 then nxt = math.max(base + math.max(cost, -burst) * iv, now) end
if cost < 0 or nxt - now <= burst * iv then
  redis.call('SET', KEYS[1], string.format('%.0f', nxt), 'PX', math.max(1, math.ceil((nxt - now) / 1000)))
  return {1, 1, nxt, 0}
end
if ARGV[7] % 2 == 1 then return {1, 0, base, 0} end
return {0, 0, base, 0}
`)

// bindScript: bind ARGV[1] to set KEYS[1] if it has fewer than ARGV[2] members or already
// holds it; returns {bound, count}.
var bindScript = rueidis.NewLuaScript(`
local c = redis.call('SCARD', KEYS[1])
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return {1, c} end
if c < tonumber(ARGV[2]) then
  redis.call('SADD', KEYS[1], ARGV[1])
  return {1, c + 1}
end
return {0, c}
`)
