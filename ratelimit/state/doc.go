// Package state is the seam between the limiter's engine (package ratelimit) and the
// stores that keep its counters (ratelimit/memstore, ratelimit/redisstore): the Store
// interface and the small interfaces beside it, the values that cross it (Op, Outcome,
// Key), the algorithms' step functions both stores share, the clock, the store
// configuration and the metrics hooks. It imports nothing of the limiter, so that every
// store can import it and the engine can import every store. Package ratelimit
// re-exports its names; most callers need only that one.
package state
