// Package redisstore is the limiter's Redis counter store (single, sentinel or cluster):
// native counters or Lua scripts, leases, an over-limit cache, shared round trips and a
// circuit breaker (see the ratelimit package documentation, "Stores"). It implements
// state.Store, state.Credits, state.Bindings, state.Pinger and state.LocalFallback.
package redisstore
