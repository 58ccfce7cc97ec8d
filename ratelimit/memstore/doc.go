// Package memstore is the limiter's in-process counter store: sharded maps of counters
// with a bounded size, persisted to a file (see the ratelimit package documentation,
// "Stores"). It implements state.Store, state.Credits, state.Bindings and state.Pinger.
package memstore
