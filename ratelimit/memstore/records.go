package memstore

// Records (state.Records): small values with a time to live, kept apart from counters
// in each shard's recs map, found by the key's own digest.

import (
	"bytes"
	"context"
	"fmt"
	"strings"
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

// rec is one record: its value and its expiry (unix ns; expired from exp on).
type rec struct {
	val []byte
	exp int64
}

func (r rec) live(ns int64) bool { return ns < r.exp }

func recHash(key string) uint64 { return state.Mix(xxhash.Sum64String(key) ^ 0x7265636f7264) }

// recShard is the shard of a record key.
func (s *Store) recShard(key string) *memShard { return s.shard(recHash(key)) }

// Create implements [state.Records].
func (s *Store) Create(ctx context.Context, now time.Time, key string, val []byte, ttl time.Duration) ([]byte, bool, error) {
	if err := state.CheckRecord(key, val, ttl); err != nil {
		return nil, false, err
	}
	ns := now.UnixNano()
	s.roomForRecord(ns)
	sh := s.recShard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if r, ok := sh.recs[key]; ok && r.live(ns) {
		return bytes.Clone(r.val), false, nil
	}
	if err := s.putRecord(sh, key, val, ns+int64(ttl)); err != nil {
		return nil, false, err
	}
	return nil, true, nil
}

// Get implements [state.Records].
func (s *Store) Get(_ context.Context, now time.Time, key string) ([]byte, bool, error) {
	if err := state.CheckRecordKey(key); err != nil {
		return nil, false, err
	}
	sh := s.recShard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	r, ok := sh.recs[key]
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
		s.roomForRecord(ns)
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
	defer sh.mu.Unlock()
	r, ok := sh.recs[key]
	if !ok {
		return nil, false, nil
	}
	s.delRecord(sh, key)
	if !r.live(now.UnixNano()) {
		return nil, false, nil
	}
	return bytes.Clone(r.val), true, nil // a flush may still be reading r.val
}

// putRecord stores a copy of val under key until exp; the shard is locked. A new key
// takes one of the store's record slots, or is refused with ErrRecordsFull.
func (s *Store) putRecord(sh *memShard, key string, val []byte, exp int64) error {
	v := make([]byte, len(val)) // never nil: an empty value is a record too
	copy(v, val)
	if _, ok := sh.recs[key]; ok {
		sh.recs[key] = rec{val: v, exp: exp}
		return nil
	}
	if s.nrec.Add(1) > int64(s.maxRecords) {
		s.nrec.Add(-1)
		return ErrRecordsFull
	}
	sh.recs[strings.Clone(key)] = rec{val: v, exp: exp}
	return nil
}

// delRecord deletes key's record; the shard is locked.
func (s *Store) delRecord(sh *memShard, key string) {
	delete(sh.recs, key)
	s.nrec.Add(-1)
}

// roomForRecord drops every shard's expired records when the store holds its maximum,
// at most once per fullRescan of ns, so that a full store of expired records takes new
// ones before the sweep runs. No shard is locked.
func (s *Store) roomForRecord(ns int64) {
	if s.nrec.Load() < int64(s.maxRecords) {
		return
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
