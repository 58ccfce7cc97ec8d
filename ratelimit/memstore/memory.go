package memstore

import (
	"context"
	"log/slog"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/gatehouse/gatehouse/ratelimit/state"
)

const (
	defaultMaxEntries    = 2_000_000
	defaultShards        = 256
	defaultFlushInterval = 10 * time.Second
	sweepInterval        = 10 * time.Second
)

// Store keeps counters in sharded maps indexed by the keys' 64-bit digests. The
// digest only finds a counter: each entry keeps its key's identity, compared on every
// lookup, and a key whose digest is taken by another key lives in the shard's overflow
// map, indexed by identity. So distinct keys never share a counter, and a check on an
// existing counter builds no string and allocates nothing. Counters flagged Persist
// (quotas, credits), bindings and records (records.go) are written to a file
// periodically and on Close, and read back at open.
type Store struct {
	shards     []memShard
	mask       uint64
	maxPer     int
	maxEntries int
	clock      state.Clock
	metrics    atomic.Pointer[state.Metrics]
	log        *slog.Logger
	shedLog    shedLog
	file       string
	flushEvery time.Duration
	done       chan struct{}
	wg         sync.WaitGroup
	closeOnce  sync.Once
	fileMu     sync.Mutex // one writer of file at a time

	// Records (records.go): their bound, how many are held (expired ones not yet swept
	// included), and until when (unix ns) a store found full is not swept again for room.
	maxRecords   int
	nrec         atomic.Int64
	recFullUntil atomic.Int64
	recNS        sync.Map // namespace → *atomic.Int64: records held (nsShare)
}

var (
	_ state.Store    = (*Store)(nil)
	_ state.Credits  = (*Store)(nil)
	_ state.Bindings = (*Store)(nil)
	_ state.Pinger   = (*Store)(nil)
)

type memShard struct {
	// What every check reads comes first, in one cache line (64 bytes); the shard is
	// padded to two lines so that neighbouring shards' locks never share one.
	mu   sync.Mutex
	m    map[uint64]entry // by digest
	over map[string]entry // by identity: keys whose digest another key holds in m
	// ids holds the identities of m's entries (entry.id indexes it; 0 is none), kept
	// apart so that entries stay small and free of pointers; free lists unused indexes.
	ids []string
	// fullUntil (unix ns): the last eviction found nothing to shed; until then new keys
	// are not tracked without scanning the shard again.
	fullUntil int64
	shed      int64 // entries shed and not yet counted in metrics
	free      []uint32
	binds     map[string]map[string]struct{}
	// legacyBinds are bindings read from a version 1 file: key and member digests.
	legacyBinds map[uint64]map[uint64]struct{}
	recs        map[string]rec // records (state.Records), by key
	// evicted: room evicted during the current Apply, so identity indexes found before
	// it may have been freed and handed to other keys.
	evicted bool
	_       [15]byte
}

// entry is one counter: a count or a TAT, its expiry (unix ns, 0 never), whether it is
// persisted, and (in m) the index of its key's identity in the shard's ids: 0 for a
// counter read from a version 1 file, which named counters by digest only (the first key
// with that digest adopts it).
type entry struct {
	val     int64
	exp     int64
	id      uint32
	persist bool
	keep    bool // live state that eviction must not shed (see keeps)
}

// newID stores identity id and returns its index.
func (sh *memShard) newID(id string) uint32 {
	if n := len(sh.free); n > 0 {
		i := sh.free[n-1]
		sh.free = sh.free[:n-1]
		sh.ids[i] = id
		return i
	}
	sh.ids = append(sh.ids, id)
	return uint32(len(sh.ids) - 1)
}

// del deletes m's entry e of digest h and frees its identity.
func (sh *memShard) del(h uint64, e entry) {
	delete(sh.m, h)
	if e.id != 0 {
		sh.ids[e.id] = ""
		sh.free = append(sh.free, e.id)
	}
}

// Open opens the memory store cfg describes: it reads the file back, if any, and starts
// the sweeps and flushes that clock drives (nil: the system clock).
func Open(cfg state.MemoryConfig, clock state.Clock) (*Store, error) {
	s := New(cfg, clock)
	if err := s.load(); err != nil {
		return nil, err
	}
	s.wg.Add(1)
	go s.background()
	return s, nil
}

// New returns a store with no file and no background work (the fallback of fail
// mode local uses it; Open adds both).
func New(cfg state.MemoryConfig, clock state.Clock) *Store {
	n := cfg.Shards
	if n <= 0 {
		n = defaultShards
	}
	maxEntries := cfg.MaxEntries
	if maxEntries <= 0 {
		maxEntries = defaultMaxEntries
	}
	maxRecords := cfg.MaxRecords
	if maxRecords <= 0 {
		maxRecords = defaultMaxRecords
	}
	flush := cfg.FlushInterval
	if flush <= 0 {
		flush = defaultFlushInterval
	}
	s := &Store{
		shards:     make([]memShard, n),
		mask:       uint64(n - 1),
		maxPer:     max(maxEntries/n, 16),
		maxEntries: maxEntries,
		maxRecords: maxRecords,
		clock:      state.OrSystem(clock),
		log:        slog.Default(),
		file:       cfg.File,
		flushEvery: flush,
		done:       make(chan struct{}),
	}
	for i := range s.shards {
		s.shards[i].m = make(map[uint64]entry)
		s.shards[i].over = make(map[string]entry)
		s.shards[i].ids = []string{""}
		s.shards[i].binds = make(map[string]map[string]struct{})
		s.shards[i].legacyBinds = make(map[uint64]map[uint64]struct{})
		s.shards[i].recs = make(map[string]rec)
	}
	return s
}

func (s *Store) shard(h uint64) *memShard { return &s.shards[h&s.mask] }

// Apply implements [Store]. Ops' shards are locked in ascending order, so batches never
// deadlock; ops on the same key within one batch see each other's effect.
func (s *Store) Apply(_ context.Context, now time.Time, ops []state.Op, out []state.Outcome) error {
	ns := now.UnixNano()
	var idxBuf [16]int
	locked := idxBuf[:0]
	for i := range ops {
		locked = insertSorted(locked, int(ops[i].Key.Hash()&s.mask))
	}
	for _, si := range locked {
		s.shards[si].mu.Lock()
	}
	s.apply(ns, ops, out)
	for _, si := range locked {
		s.shards[si].mu.Unlock()
	}
	return nil
}

func insertSorted(xs []int, v int) []int {
	i := 0
	for i < len(xs) && xs[i] < v {
		i++
	}
	if i < len(xs) && xs[i] == v {
		return xs
	}
	xs = append(xs, 0)
	copy(xs[i+1:], xs[i:])
	xs[i] = v
	return xs
}

// apply runs with the shards of ops locked: first every op is evaluated, then, if no
// enforcing op denies, the admitting ones are written.
func (s *Store) apply(ns int64, ops []state.Op, out []state.Outcome) {
	var baseBuf [16]int64
	var foundBuf [16]uint32 // identity index of the entry each op found, so put needs no compare
	bases, found := baseBuf[:0], foundBuf[:0]
	if len(ops) > len(baseBuf) {
		bases, found = make([]int64, 0, len(ops)), make([]uint32, 0, len(ops))
	}
	commit := true
	for i := range ops {
		op := &ops[i]
		cur, exists, exp, id := s.current(ops, out, bases, i, ns)
		next, base, ok := evalOp(op, cur, exists, ns)
		out[i] = state.Outcome{Allowed: ok, Value: next, Expire: exp}
		bases, found = append(bases, base), append(found, id)
		if forced(op) {
			bases[i] = next // counted whatever the outcome: later ops on the key see it
		}
		if !ok && !op.Shadow && !op.Always && (op.Kind == state.KindCounter || op.Kind == state.KindGCRA) {
			commit = false
		}
	}
	for i := range ops {
		op := &ops[i]
		write := out[i].Allowed && (commit || op.Cost < 0 || op.Always) || forced(op) // a refund is kept
		if !write || op.Kind == state.KindPeek {
			out[i].Value = bases[i]
			continue
		}
		exp := op.Expire
		if op.Kind == state.KindGCRA {
			exp = out[i].Value // after its TAT a bucket is full again: the entry can go
		}
		e := entry{val: out[i].Value, exp: exp, persist: op.Persist, keep: keeps(op, out[i].Value, ns)}
		sh := s.shard(op.Key.Hash())
		if !sh.put(&op.Key, e, ns, s.maxPer, found[i]) {
			s.untracked(ns)
		}
		if sh.evicted { // later ops compare identities in full
			sh.evicted = false
			clear(found[i+1:])
		}
		if sh.shed > 0 {
			s.metrics.Load().MemoryShed(sh.shed)
			sh.shed = 0
		}
	}
}

var _ state.Instrumented = (*Store)(nil)

// Instrument makes the store report shed and untracked keys to m.
func (s *Store) Instrument(m *state.Metrics) { s.metrics.Store(m) }

// shedLogEvery is the least time between two logs of new keys not tracked.
const shedLogEvery = time.Minute

// shedLog limits the log of keys not tracked to one line per shedLogEvery.
type shedLog struct {
	last atomic.Int64 // unix ns of the last line; 0: none yet
	n    atomic.Int64 // keys not tracked since
}

// untracked counts a new key the store could not track (full of state it keeps) and
// logs it at most once per shedLogEvery of the store's clock (ns: the call's time).
func (s *Store) untracked(ns int64) {
	s.metrics.Load().MemoryUntracked()
	n := s.shedLog.n.Add(1)
	last := s.shedLog.last.Load()
	if last != 0 && ns-last < int64(shedLogEvery) || !s.shedLog.last.CompareAndSwap(last, ns) {
		return
	}
	s.shedLog.n.Add(-n)
	s.log.Warn("ratelimit: memory store full of counters it must keep; new keys are not tracked",
		slog.Int("max_entries", s.maxEntries), slog.Int64("keys_not_tracked", n))
}

// forced reports whether op's units are counted even when it refuses (Op.Always).
func forced(op *state.Op) bool { return op.Always && op.Kind == state.KindCounter && op.Cost > 0 }

// keeps says whether an entry holds state that eviction must never shed: a key over its
// limit (the next request would be refused), a persisted quota or credit, a lockout or
// its failure count. Losing any other live counter (under its limit) only gives its key
// a fresh start, as if it were new.
func keeps(op *state.Op, v, ns int64) bool {
	switch {
	case op.Persist || op.Exact || op.Kind == state.KindSet:
		return true
	case op.Kind == state.KindGCRA:
		_, _, ok := state.GCRAStep(v, ns, 1, op.Interval, op.Limit)
		return !ok
	default:
		return v >= op.Limit
	}
}

// current returns the value op i starts from: an earlier op on the same key in this
// batch, or the stored entry unless expired.
// id is the identity index of the stored entry found in its digest's slot (0 otherwise).
func (s *Store) current(ops []state.Op, out []state.Outcome, bases []int64, i int, ns int64) (v int64, exists bool, exp int64, id uint32) {
	k := &ops[i].Key
	for j := i - 1; j >= 0; j-- {
		if ops[j].Kind != state.KindPeek && state.SameKey(&ops[j].Key, k) {
			if out[j].Allowed {
				return out[j].Value, true, 0, 0
			}
			return bases[j], true, 0, 0
		}
	}
	sh := s.shard(k.Hash())
	e, ok := sh.m[k.Hash()]
	if ok && (e.id == 0 || k.Is(sh.ids[e.id])) { // the common case, inline
		id = e.id
	} else if e, ok, _ = sh.find(k); !ok {
		return 0, false, 0, 0
	}
	if e.exp != 0 && e.exp <= ns {
		return 0, false, 0, id
	}
	return e.val, true, e.exp, id
}

// evalOp applies op's algorithm to the current value: next is the value to commit if
// admitted, base the value before (what a denied request leaves in place).
func evalOp(op *state.Op, cur int64, exists bool, ns int64) (next, base int64, ok bool) {
	switch op.Kind {
	case state.KindCounter:
		if op.Cost < 0 {
			return state.RefundCounter(cur, op.Cost), cur, true
		}
		next, ok = state.CounterStep(cur, op.Cost, op.Limit)
		return next, cur, ok
	case state.KindGCRA:
		if !exists {
			cur = 0
		}
		if op.Cost < 0 {
			return state.RefundGCRA(cur, ns, op.Cost, op.Interval, op.Limit), max(cur, ns), true
		}
		return state.GCRAStep(cur, ns, op.Cost, op.Interval, op.Limit)
	case state.KindSet:
		return op.Limit, cur, true
	default: // state.KindPeek
		return cur, cur, exists
	}
}

// find returns k's entry; the shard is locked. Only when the shard holds keys in its
// overflow map and k's digest slot holds another key does it build k's identity (on the
// stack for keys of up to 96 bytes).
func (sh *memShard) find(k *state.Key) (e entry, ok, primary bool) {
	e, ok = sh.m[k.Hash()]
	if ok && (e.id == 0 || k.Is(sh.ids[e.id])) {
		return e, true, true
	}
	if len(sh.over) == 0 {
		return entry{}, false, false
	}
	var buf [96]byte
	e, ok = sh.over[string(k.AppendIdentity(buf[:0]))]
	return e, ok, false
}

// put stores e as k's counter; the shard is locked. A new key takes its digest's slot
// when free, else goes to the overflow map; when the shard is full and nothing can be
// shed, a new key is not stored and put reports false.
//
// found, when not 0, is the identity index of the entry the caller found in k's digest
// slot under the same lock: still there, it is k's without a compare.
func (sh *memShard) put(k *state.Key, e entry, ns int64, maxPer int, found uint32) bool {
	old, ok := sh.m[k.Hash()]
	if ok && ((found != 0 && old.id == found) || old.id == 0 || k.Is(sh.ids[old.id])) {
		e.id = old.id
		if e.id == 0 {
			e.id = sh.newID(k.Identity()) // a version 1 counter is adopted by its key
		}
		sh.m[k.Hash()] = e
		return true
	}
	if ok || len(sh.over) > 0 {
		var buf [96]byte
		id := k.AppendIdentity(buf[:0])
		if _, in := sh.over[string(id)]; in || ok {
			if !in && !sh.room(ns, maxPer) {
				return false
			}
			e.id = 0
			sh.over[string(id)] = e
			return true
		}
	}
	if !sh.room(ns, maxPer) {
		return false
	}
	e.id = sh.newID(k.Identity())
	sh.m[k.Hash()] = e
	return true
}

// room makes room for one more entry if the shard is full; false: nothing could be shed.
func (sh *memShard) room(ns int64, maxPer int) bool {
	if sh.len() < maxPer {
		return true
	}
	if ns < sh.fullUntil {
		return false
	}
	sh.shed += int64(sh.evict(ns, maxPer))
	sh.evicted = true
	if sh.len() < maxPer {
		return true
	}
	sh.fullUntil = ns + int64(fullRescan)
	return false
}

// fullRescan is how long a shard found full of state it must keep is not scanned again:
// a flood of new keys then costs a map lookup each, not a scan of the shard.
const fullRescan = time.Second

func (sh *memShard) len() int { return len(sh.m) + len(sh.over) }

// evict makes room, down to 7/8 of the bound: expired entries first (a full bucket, a
// past window: state equal to a fresh key's); then live counters under their limit
// (random order), whose loss gives their keys a fresh start. Entries that keep (see
// keeps) are never shed: a flood of new keys cannot lift a refusal, restart a quota or
// credits, or end a lockout. Their metrics count what is shed.
func (sh *memShard) evict(ns int64, maxPer int) (shed int) {
	sh.dropExpired(ns)
	target := maxPer - maxPer/8
	for k, e := range sh.m {
		if sh.len() <= target {
			return shed
		}
		if !e.keep {
			sh.del(k, e)
			shed++
		}
	}
	for k, e := range sh.over {
		if sh.len() <= target {
			break
		}
		if !e.keep {
			delete(sh.over, k)
			shed++
		}
	}
	return shed
}

// dropExpired deletes the shard's expired entries; the shard is locked.
func (sh *memShard) dropExpired(ns int64) {
	for k, e := range sh.m {
		if e.exp != 0 && e.exp <= ns {
			sh.del(k, e)
		}
	}
	for k, e := range sh.over {
		if e.exp != 0 && e.exp <= ns {
			delete(sh.over, k)
		}
	}
}

// Adjust implements [Store].
func (s *Store) Adjust(_ context.Context, key state.Key, delta int64) (int64, error) {
	sh := s.shard(key.Hash())
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e, _, _ := sh.find(&key)
	e.val += delta
	e.exp, e.persist, e.keep = 0, true, true
	sh.put(&key, e, 0, math.MaxInt, 0) // a top-up is always stored
	return e.val, nil
}

func bindHash(key string) uint64 { return state.Mix(xxhash.Sum64String(key) ^ 0x62696e64) }

// bindShard is the shard of a binding key.
func (s *Store) bindShard(key string) *memShard { return s.shard(bindHash(key)) }

// Bind implements [Store]. Keys and members are compared in full; members bound before
// a version 2 file (known by digest only) still count and still match.
func (s *Store) Bind(_ context.Context, key, member string, maxMembers int) (bool, int, error) {
	sh := s.bindShard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	set := sh.binds[key]
	old := sh.legacyBinds[bindHash(key)]
	n := len(set) + len(old)
	if _, ok := set[member]; ok {
		return true, n, nil
	}
	if _, ok := old[xxhash.Sum64String(member)]; ok {
		return true, n, nil
	}
	if n >= maxMembers {
		return false, n, nil
	}
	if set == nil {
		set = make(map[string]struct{}, 1)
		sh.binds[strings.Clone(key)] = set
	}
	set[strings.Clone(member)] = struct{}{}
	return true, n + 1, nil
}

// ResetBindings implements [Store].
func (s *Store) ResetBindings(_ context.Context, key string) error {
	sh := s.bindShard(key)
	sh.mu.Lock()
	delete(sh.binds, key)
	delete(sh.legacyBinds, bindHash(key))
	sh.mu.Unlock()
	return nil
}

// background sweeps expired entries and flushes the file until Close.
func (s *Store) background() {
	defer s.wg.Done()
	sweep := time.NewTicker(sweepInterval)
	defer sweep.Stop()
	flush := time.NewTicker(s.flushEvery)
	defer flush.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-sweep.C:
			s.sweep(s.clock().UnixNano())
		case <-flush.C:
			_ = s.flush() // a failed periodic write is retried next tick; Close reports
		}
	}
}

func (s *Store) sweep(ns int64) {
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		sh.dropExpired(ns)
		sh.dropExpiredRecords(s, ns)
		sh.mu.Unlock()
	}
}

// Close implements [Store]: it stops the background work and writes the file.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.done)
		s.wg.Wait()
		err = s.flush()
	})
	return err
}

// Len reports the number of counters (tests and metrics).
func (s *Store) Len() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += sh.len()
		sh.mu.Unlock()
	}
	return n
}

// Ping implements [state.Pinger]: the memory store is always ready.
func (s *Store) Ping(context.Context) error { return nil }

// SetLog replaces the logger the store reports shedding to (default: slog.Default()).
// Call it before the store serves.
func (s *Store) SetLog(l *slog.Logger) { s.log = l }
