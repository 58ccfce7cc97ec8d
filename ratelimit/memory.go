package ratelimit

import (
	"context"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"
)

const (
	defaultMaxEntries    = 2_000_000
	defaultShards        = 256
	defaultFlushInterval = 10 * time.Second
	sweepInterval        = 10 * time.Second
)

// memoryStore keeps counters in sharded maps indexed by the keys' 64-bit hashes: a check
// builds no string and allocates nothing. Counters flagged Persist (quotas, credits) and
// bindings are written to a file periodically and on Close, and read back at open.
type memoryStore struct {
	shards     []memShard
	mask       uint64
	maxPer     int
	clock      Clock
	file       string
	flushEvery time.Duration
	done       chan struct{}
	wg         sync.WaitGroup
	closeOnce  sync.Once
	fileMu     sync.Mutex // one writer of file at a time
}

var _ Store = (*memoryStore)(nil)

type memShard struct {
	mu    sync.Mutex
	m     map[uint64]entry
	binds map[uint64]map[uint64]struct{}
	_     [40]byte // keep neighbouring shards' locks off one cache line
}

// entry is one counter: a count or a TAT, its expiry (unix ns, 0 never), and whether it
// is persisted.
type entry struct {
	val     int64
	exp     int64
	persist bool
}

func openMemory(cfg MemoryConfig, clock Clock) (*memoryStore, error) {
	s := newMemory(cfg, clock)
	if err := s.load(); err != nil {
		return nil, err
	}
	s.wg.Add(1)
	go s.background()
	return s, nil
}

// newMemory returns a store with no file and no background work (the fallback of fail
// mode local uses it; openMemory adds both).
func newMemory(cfg MemoryConfig, clock Clock) *memoryStore {
	n := cfg.Shards
	if n <= 0 {
		n = defaultShards
	}
	maxEntries := cfg.MaxEntries
	if maxEntries <= 0 {
		maxEntries = defaultMaxEntries
	}
	flush := cfg.FlushInterval
	if flush <= 0 {
		flush = defaultFlushInterval
	}
	s := &memoryStore{
		shards:     make([]memShard, n),
		mask:       uint64(n - 1),
		maxPer:     max(maxEntries/n, 16),
		clock:      orSystem(clock),
		file:       cfg.File,
		flushEvery: flush,
		done:       make(chan struct{}),
	}
	for i := range s.shards {
		s.shards[i].m = make(map[uint64]entry)
		s.shards[i].binds = make(map[uint64]map[uint64]struct{})
	}
	return s
}

func (s *memoryStore) shard(h uint64) *memShard { return &s.shards[h&s.mask] }

// Apply implements [Store]. Ops' shards are locked in ascending order, so batches never
// deadlock; ops on the same key within one batch see each other's effect.
func (s *memoryStore) Apply(_ context.Context, now time.Time, ops []Op, out []Outcome) error {
	ns := now.UnixNano()
	var idxBuf [16]int
	locked := idxBuf[:0]
	for i := range ops {
		locked = insertSorted(locked, int(ops[i].Key.hash&s.mask))
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
func (s *memoryStore) apply(ns int64, ops []Op, out []Outcome) {
	var baseBuf [16]int64
	bases := baseBuf[:0]
	if len(ops) > len(baseBuf) {
		bases = make([]int64, 0, len(ops))
	}
	commit := true
	for i := range ops {
		op := &ops[i]
		cur, exists, exp := s.current(ops, out, bases, i, ns)
		next, base, ok := evalOp(op, cur, exists, ns)
		out[i] = Outcome{Allowed: ok, Value: next, Expire: exp}
		bases = append(bases, base)
		if !ok && !op.Shadow && (op.Kind == KindCounter || op.Kind == KindGCRA) {
			commit = false
		}
	}
	for i := range ops {
		op := &ops[i]
		if (!commit && op.Cost >= 0) || !out[i].Allowed || op.Kind == KindPeek { // a refund is kept
			out[i].Value = bases[i]
			continue
		}
		exp := op.Expire
		if op.Kind == KindGCRA {
			exp = out[i].Value // after its TAT a bucket is full again: the entry can go
		}
		s.put(s.shard(op.Key.hash), op.Key.hash, entry{val: out[i].Value, exp: exp, persist: op.Persist}, ns)
	}
}

// current returns the value op i starts from: an earlier op on the same key in this
// batch, or the stored entry unless expired.
func (s *memoryStore) current(ops []Op, out []Outcome, bases []int64, i int, ns int64) (int64, bool, int64) {
	h := ops[i].Key.hash
	for j := i - 1; j >= 0; j-- {
		if ops[j].Key.hash == h && ops[j].Kind != KindPeek {
			if out[j].Allowed {
				return out[j].Value, true, 0
			}
			return bases[j], true, 0
		}
	}
	e, ok := s.shard(h).m[h]
	if !ok || (e.exp != 0 && e.exp <= ns) {
		return 0, false, 0
	}
	return e.val, true, e.exp
}

// evalOp applies op's algorithm to the current value: next is the value to commit if
// admitted, base the value before (what a denied request leaves in place).
func evalOp(op *Op, cur int64, exists bool, ns int64) (next, base int64, ok bool) {
	switch op.Kind {
	case KindCounter:
		if op.Cost < 0 {
			return refundCounter(cur, op.Cost), cur, true
		}
		next, ok = counterStep(cur, op.Cost, op.Limit)
		return next, cur, ok
	case KindGCRA:
		if !exists {
			cur = 0
		}
		if op.Cost < 0 {
			return refundGCRA(cur, ns, op.Cost, op.Interval, op.Limit), max(cur, ns), true
		}
		return gcraStep(cur, ns, op.Cost, op.Interval, op.Limit)
	case KindSet:
		return op.Limit, cur, true
	default: // KindPeek
		return cur, cur, exists
	}
}

// put stores e, evicting when the shard is full; the shard is locked.
func (s *memoryStore) put(sh *memShard, h uint64, e entry, ns int64) {
	if _, ok := sh.m[h]; !ok && len(sh.m) >= s.maxPer {
		sh.evict(ns, s.maxPer)
	}
	sh.m[h] = e
}

// evict makes room, down to 7/8 of the bound: expired entries first; if that frees too
// little, arbitrary entries that are not persisted (map order is random); then, as a last
// resort, persisted counters that expire (quotas, long windows). Credits (persisted,
// never expiring) are never evicted: losing one would restore a spent grant or lose a
// top-up. A shard that holds nothing else grows past the bound.
func (sh *memShard) evict(ns int64, maxPer int) {
	for k, e := range sh.m {
		if e.exp != 0 && e.exp <= ns {
			delete(sh.m, k)
		}
	}
	target := maxPer - maxPer/8
	for pass := 0; pass < 2 && len(sh.m) > target; pass++ {
		for k, e := range sh.m {
			if len(sh.m) <= target {
				break
			}
			if !e.persist || (pass == 1 && e.exp != 0) {
				delete(sh.m, k)
			}
		}
	}
}

// Adjust implements [Store].
func (s *memoryStore) Adjust(_ context.Context, key Key, delta int64) (int64, error) {
	sh := s.shard(key.hash)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.m[key.hash]
	e.val += delta
	e.exp, e.persist = 0, true
	sh.m[key.hash] = e
	return e.val, nil
}

func bindHash(key string) uint64 { return mix(xxhash.Sum64String(key) ^ 0x62696e64) }

// Bind implements [Store].
func (s *memoryStore) Bind(_ context.Context, key, member string, maxMembers int) (bool, int, error) {
	h, mh := bindHash(key), xxhash.Sum64String(member)
	sh := s.shard(h)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	set := sh.binds[h]
	if _, ok := set[mh]; ok {
		return true, len(set), nil
	}
	if len(set) >= maxMembers {
		return false, len(set), nil
	}
	if set == nil {
		set = make(map[uint64]struct{}, 1)
		sh.binds[h] = set
	}
	set[mh] = struct{}{}
	return true, len(set), nil
}

// ResetBindings implements [Store].
func (s *memoryStore) ResetBindings(_ context.Context, key string) error {
	h := bindHash(key)
	sh := s.shard(h)
	sh.mu.Lock()
	delete(sh.binds, h)
	sh.mu.Unlock()
	return nil
}

// background sweeps expired entries and flushes the file until Close.
func (s *memoryStore) background() {
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

func (s *memoryStore) sweep(ns int64) {
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for k, e := range sh.m {
			if e.exp != 0 && e.exp <= ns {
				delete(sh.m, k)
			}
		}
		sh.mu.Unlock()
	}
}

// Close implements [Store]: it stops the background work and writes the file.
func (s *memoryStore) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.done)
		s.wg.Wait()
		err = s.flush()
	})
	return err
}

// Len reports the number of counters (tests and metrics).
func (s *memoryStore) Len() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}
