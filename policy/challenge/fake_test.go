package challenge_test

import (
	"context"
	"sync"
	"time"

	"github.com/gatehouse/gatehouse/ratelimit/memstore"
	"github.com/gatehouse/gatehouse/ratelimit/state"
)

// recorded is the real memory store's Records, with every key used written down (so
// that tests can check that nothing is stored in clear) and an error to answer instead
// when err is set (an unreachable store).
type recorded struct {
	state.Records
	mu   sync.Mutex
	keys []string
	err  error
}

func newRecords() *recorded {
	return &recorded{Records: memstore.New(state.MemoryConfig{}, nil)}
}

func (r *recorded) note(key string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.keys = append(r.keys, key)
	return r.err
}

func (r *recorded) Create(ctx context.Context, now time.Time, key string, val []byte, ttl time.Duration) ([]byte, bool, error) {
	if err := r.note(key); err != nil {
		return nil, false, err
	}
	return r.Records.Create(ctx, now, key, val, ttl)
}

func (r *recorded) Take(ctx context.Context, now time.Time, key string) ([]byte, bool, error) {
	if err := r.note(key); err != nil {
		return nil, false, err
	}
	return r.Records.Take(ctx, now, key)
}
