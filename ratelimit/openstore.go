package ratelimit

import (
	"context"
	"errors"
	"fmt"

	"github.com/gatehouse/gatehouse/ratelimit/memstore"
	"github.com/gatehouse/gatehouse/ratelimit/redisstore"
)

// OpenStore opens the store cfg describes. It is called once at start; a Redis store
// that cannot connect yet still opens (and keeps connecting), so that the fail modes
// apply until Redis answers. clock drives expiry sweeps, flushes and the circuit
// breaker (pass [SystemClock]). The store also implements [Credits], [Bindings],
// [Records] (idempotency entries, one-time marks and session state, shared by replicas)
// and [Pinger].
func OpenStore(ctx context.Context, cfg StoreConfig, clock Clock) (Store, error) {
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	switch cfg.Type {
	case "", "memory":
		return memstore.Open(cfg.Memory, clock)
	case "redis":
		return redisstore.Open(ctx, cfg.Redis, clock)
	}
	return nil, fmt.Errorf("store.type: unknown %q", cfg.Type)
}

// Ping checks that s can be reached (readiness probes): a Redis store sends PING through
// its circuit breaker; the memory store is always ready, as is a store that is no
// [Pinger].
func Ping(ctx context.Context, s Store) error {
	if p, ok := s.(Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}
