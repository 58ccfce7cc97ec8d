package memstore

// Records (state.Records): small values with a time to live, kept apart from counters
// in each shard's recs map, found by the key's own digest.

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/gatehouse/gatehouse/ratelimit/state"
)

// defaultMaxRecords bounds the records a store holds when MemoryConfig.MaxRecords is
// not set.
const defaultMaxRecords = 1_000_000

// ErrRecordsFull is returned (wrapping [state.ErrUnavailable]) by a call that would
// store a new record while the store holds its maximum of live records: records are
// never shed to make room, since a forgotten one-time mark could be replayed.
var ErrRecordsFull = fmt.Errorf("%w: memory store holds its maximum of records", state.ErrUnavailable)

var _ state.Records = (*Store)(nil)

// nsShare: no namespace of records (a key's text before its first ':', such as "nonce",
// "ch" or "sess") holds more than 1/nsShare of MaxRecords, so that a flood of one kind,
// such as the nonces or challenges any client of an app can ask for, never leaves the
// others (sessions, revocations, App Attest keys) without room. Keys without a ':'
// count against the total only.
const nsShare = 4

// nsCount returns the record count of key's namespace, nil for a key without one.
// Namespaces are the callers' constants, so the map stays small.
func (s *Store) nsCount(key string) *atomic.Int64 {
	ns, _, ok := strings.Cut(key, ":")
	if !ok {
		return nil
	}
	if c, ok := s.recNS.Load(ns); ok {
		return c.(*atomic.Int64)
	}
	c, _ := s.recNS.LoadOrStore(strings.Clone(ns), new(atomic.Int64))
	return c.(*atomic.Int64)
}

// rec is one record: its value and its expiry (unix ns; expired from exp on). A stored
// value is never written to: a change stores a new one, so that values are copied out
// of the store after its lock is released.
type rec struct {
	val []byte
	exp int64
}

func (r rec) live(ns int64) bool { return ns < r.exp }

func recHash(key string) uint64 { return state.Mix(xxhash.Sum64String(key) ^ 0x7265636f7264) }

// recShard is the shard of a record key.
func (s *Store) recShard(key string) *memShard { return s.shard(recHash(key)) }

// Create implements [state.Records].
func (s *Store) Create(_ context.Context, now time.Time, key string, val []byte, ttl time.Duration) ([]byte, bool, error) {
	if err := state.CheckRecord(key, val, ttl); err != nil {
		return nil, false, err
	}
	ns := now.UnixNano()
	s.roomForRecord(ns, key)
	v := ownCopy(val)
	sh := s.recShard(key)
	sh.mu.Lock()
	r, ok := sh.recs[key]
	if ok && r.live(ns) {
		sh.mu.Unlock()
		return bytes.Clone(r.val), false, nil
	}
	err := s.putRecord(sh, key, v, ns+int64(ttl))
	sh.mu.Unlock()
	return nil, err == nil, err
}

// ownCopy copies a value to store: never nil, since an empty value is a record too.
func ownCopy(val []byte) []byte {
	v := make([]byte, len(val))
	copy(v, val)
	return v
}

// Get implements [state.Records].
func (s *Store) Get(_ context.Context, now time.Time, key string) ([]byte, bool, error) {
	if err := state.CheckRecordKey(key); err != nil {
		return nil, false, err
	}
	sh := s.recShard(key)
	sh.mu.Lock()
	r, ok := sh.recs[key]
	sh.mu.Unlock()
	if !ok || !r.live(now.UnixNano()) {
		return nil, false, nil
	}
	return bytes.Clone(r.val), true, nil
}

// Swap implements [state.Records]. A nil val deletes, so its ttl is not looked at.
func (s *Store) Swap(_ context.Context, now time.Time, key string, old, val []byte, ttl time.Duration) (bool, error) {
	if err := state.CheckSwap(key, old, val, ttl); err != nil {
		return false, err
	}
	ns := now.UnixNano()
	if val != nil {
		s.roomForRecord(ns, key)
		val = ownCopy(val)
	}
	sh := s.recShard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	r, ok := sh.recs[key]
	ok = ok && r.live(ns)
	if old == nil && ok || old != nil && (!ok || !bytes.Equal(r.val, old)) {
		return false, nil
	}
	if val == nil {
		if ok {
			s.delRecord(sh, key)
		}
		return true, nil
	}
	if err := s.putRecord(sh, key, val, ns+int64(ttl)); err != nil {
		return false, err
	}
	return true, nil
}

// Take implements [state.Records].
func (s *Store) Take(_ context.Context, now time.Time, key string) ([]byte, bool, error) {
	if err := state.CheckRecordKey(key); err != nil {
		return nil, false, err
	}
	sh := s.recShard(key)
	sh.mu.Lock()
	r, ok := sh.recs[key]
	if ok {
		s.delRecord(sh, key)
	}
	sh.mu.Unlock()
	if !ok || !r.live(now.UnixNano()) {
		return nil, false, nil
	}
	return bytes.Clone(r.val), true, nil // a flush may still be reading r.val
}

// putRecord stores v (the store's own copy) under key until exp; the shard is locked.
// A new key takes one of the store's record slots, or is refused with ErrRecordsFull.
func (s *Store) putRecord(sh *memShard, key string, v []byte, exp int64) error {
	if _, ok := sh.recs[key]; ok {
		sh.recs[key] = rec{val: v, exp: exp}
		return nil
	}
	c := s.nsCount(key)
	if c != nil && c.Add(1) > int64(max(s.maxRecords/nsShare, 1)) {
		c.Add(-1)
		return ErrRecordsFull
	}
	if s.nrec.Add(1) > int64(s.maxRecords) {
		s.nrec.Add(-1)
		if c != nil {
			c.Add(-1)
		}
		return ErrRecordsFull
	}
	sh.recs[strings.Clone(key)] = rec{val: v, exp: exp}
	return nil
}

// delRecord deletes key's record; the shard is locked.
func (s *Store) delRecord(sh *memShard, key string) {
	delete(sh.recs, key)
	s.nrec.Add(-1)
	if c := s.nsCount(key); c != nil {
		c.Add(-1)
	}
}

// roomForRecord drops every shard's expired records when the store, or key's namespace,
// holds its maximum, at most once per fullRescan of ns, so that a full store or
// namespace of expired records takes new ones before the sweep runs. No shard is locked.
func (s *Store) roomForRecord(ns int64, key string) {
	if s.nrec.Load() < int64(s.maxRecords) {
		c := s.nsCount(key)
		if c == nil || c.Load() < int64(max(s.maxRecords/nsShare, 1)) {
			return
		}
	}
	until := s.recFullUntil.Load()
	if ns < until || !s.recFullUntil.CompareAndSwap(until, ns+int64(fullRescan)) {
		return
	}
	s.sweepRecords(ns)
}

// sweepRecords drops the expired records of every shard.
func (s *Store) sweepRecords(ns int64) {
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		sh.dropExpiredRecords(s, ns)
		sh.mu.Unlock()
	}
}

// dropExpiredRecords deletes the shard's expired records; the shard is locked.
func (sh *memShard) dropExpiredRecords(s *Store, ns int64) {
	for k, r := range sh.recs {
		if !r.live(ns) {
			s.delRecord(sh, k)
		}
	}
}

// Records reports the number of records held, expired ones not yet swept included.
func (s *Store) Records() int { return int(s.nrec.Load()) }
