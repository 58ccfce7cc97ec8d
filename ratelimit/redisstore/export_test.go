package redisstore

import (
	"context"

	"github.com/redis/rueidis"
)

// What the package's external tests (which drive the store through the engine) look at
// inside it.

const (
	DefaultLeaseUnits = defaultLeaseUnits
	NativeOverFor     = nativeOverFor
)

// Connected reports whether the store has a client.
func (s *Store) Connected() bool { return s.client.Load() != nil }

// Prefix is the store's key prefix.
func (s *Store) Prefix() string { return s.prefix }

// Client returns the store's client (nil: not connected).
func (s *Store) Client() rueidis.Client {
	if b := s.client.Load(); b != nil {
		return b.c
	}
	return nil
}

// Disconnect drops the client as if it never connected, and returns a func that puts
// it back.
func (s *Store) Disconnect() (restore func()) {
	box := s.client.Load()
	s.client.Store(nil)
	return func() { s.client.Store(box) }
}

// ForgetOverMarks waits for buffered over-limit marks and drops them all.
func (s *Store) ForgetOverMarks() {
	s.over.Wait()
	s.over.Clear()
}

// WaitOverMarks waits until buffered over-limit marks are in the cache.
func (s *Store) WaitOverMarks() { s.over.Wait() }

// Cluster reports whether the store runs in cluster mode.
func (s *Store) Cluster() bool { return s.cluster }

// BreakerOpen reports whether the circuit breaker is open.
func (s *Store) BreakerOpen() bool { return s.br.isOpen() }

// BreakerProbing reports whether the breaker has a probe out.
func (s *Store) BreakerProbing() bool {
	s.br.mu.Lock()
	defer s.br.mu.Unlock()
	return s.br.probing
}

// SetBeforeTakeBack sets the hook that runs between a native refusal's counting round
// trip and its take-back (nil: none).
func (s *Store) SetBeforeTakeBack(f func(keys []string)) { s.testBeforeTakeBack = f }

// HasBeforeTakeBack reports whether the hook is still set.
func (s *Store) HasBeforeTakeBack() bool { return s.testBeforeTakeBack != nil }

// CallReplying makes one store call (through the breaker, as every call) whose command
// Redis answers with the error msg.
func (s *Store) CallReplying(ctx context.Context, msg string) error {
	return s.call(ctx, "EVAL", func(r redisCall) error {
		return r.do(r.c.B().Eval().Script("return redis.error_reply(ARGV[1])").Numkeys(0).Arg(msg).Build()).Error()
	})
}

// HoldsShare reports whether the store holds a redis.shares slot it may use now.
func (s *Store) HoldsShare() bool { return s.shares != nil && s.shares.holding() }

// RenewShares runs one renewal (or claim) of the store's slot now.
func (s *Store) RenewShares() { s.shares.keep(s) }

// ShareKey is the Redis key of slot k.
func (s *Store) ShareKey(k int) string { return s.shares.key(k) }

// Abandon stops the store as a crashed replica would: no renewal from now on, and the
// slot is neither released nor given up here (its key runs out in Redis).
func (s *Store) Abandon() {
	s.shares.testAbandon = true
	s.Close()
}

// FillShareTable marks the table of shares full: new buckets are counted in Redis only.
func (s *Store) FillShareTable() { s.shares.n.Store(shareKeys) }
