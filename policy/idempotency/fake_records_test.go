package idempotency_test

import (
	"bytes"
	"context"
	"sync"
	"time"
)

// mapRecords is a minimal state.Records for tests until a store's records are available.
type mapRecords struct {
	mu sync.Mutex
	m  map[string]rec
}

type rec struct {
	val []byte
	exp time.Time
}

func newMapRecords() *mapRecords { return &mapRecords{m: map[string]rec{}} }

func (r *mapRecords) get(now time.Time, key string) ([]byte, bool) {
	v, ok := r.m[key]
	if !ok || !now.Before(v.exp) {
		return nil, false
	}
	return v.val, true
}

func (r *mapRecords) Create(_ context.Context, now time.Time, key string, val []byte, ttl time.Duration) ([]byte, bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if v, ok := r.get(now, key); ok {
		return v, false, nil
	}
	r.m[key] = rec{bytes.Clone(val), now.Add(ttl)}
	return nil, true, nil
}

func (r *mapRecords) Get(_ context.Context, now time.Time, key string) ([]byte, bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v, ok := r.get(now, key)
	return v, ok, nil
}

func (r *mapRecords) Swap(_ context.Context, now time.Time, key string, old, val []byte, ttl time.Duration) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v, ok := r.get(now, key)
	if (old == nil) == ok || (old != nil && !bytes.Equal(v, old)) {
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
	v, ok := r.get(now, key)
	delete(r.m, key)
	return v, ok, nil
}
