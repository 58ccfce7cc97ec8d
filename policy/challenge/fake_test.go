package challenge_test

import (
	"bytes"
	"context"
	"sync"
	"time"

	"github.com/gatehouse/gatehouse/ratelimit/state"
)

// mapRecords is a hand-written state.Records in process memory, for the tests of this
// package only: a record is gone at exactly its expiry. keys records every key used,
// so that tests can check that nothing is stored in clear.
type mapRecords struct {
	mu   sync.Mutex
	m    map[string]rec
	keys []string
	err  error
}

type rec struct {
	val []byte
	exp time.Time
}

var _ state.Records = (*mapRecords)(nil)

func newMapRecords() *mapRecords { return &mapRecords{m: map[string]rec{}} }

func (r *mapRecords) live(now time.Time, key string) (rec, bool) {
	r.keys = append(r.keys, key)
	v, ok := r.m[key]
	if ok && !now.Before(v.exp) {
		delete(r.m, key)
		return rec{}, false
	}
	return v, ok
}

func (r *mapRecords) Create(_ context.Context, now time.Time, key string, val []byte, ttl time.Duration) ([]byte, bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return nil, false, r.err
	}
	if v, ok := r.live(now, key); ok {
		return v.val, false, nil
	}
	r.m[key] = rec{bytes.Clone(val), now.Add(ttl)}
	return nil, true, nil
}

func (r *mapRecords) Get(_ context.Context, now time.Time, key string) ([]byte, bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return nil, false, r.err
	}
	v, ok := r.live(now, key)
	return v.val, ok, nil
}

func (r *mapRecords) Swap(_ context.Context, now time.Time, key string, old, val []byte, ttl time.Duration) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return false, r.err
	}
	v, ok := r.live(now, key)
	if ok != (old != nil) || (ok && !bytes.Equal(v.val, old)) {
		return false, nil
	}
	if val == nil {
		delete(r.m, key)
	} else {
		r.m[key] = rec{bytes.Clone(val), now.Add(ttl)}
	}
	return true, nil
}

func (r *mapRecords) Take(_ context.Context, now time.Time, key string) ([]byte, bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return nil, false, r.err
	}
	v, ok := r.live(now, key)
	delete(r.m, key)
	return v.val, ok, nil
}
