// Package ratelimit is Gatehouse's limiter: one engine behind the inline throttles of the
// ext_authz pipeline (step 8, [policy.Limiter] and [policy.Lockout]) and the
// envoy.service.ratelimit.v3 API (adapter in package ratelimit/rls).
//
// # Algorithms
//
// Algorithms are pure functions over the value a [Store] keeps per key, with the time
// passed in (the package never reads the wall clock; callers pass [SystemClock]):
//   - GCRA (a token bucket): `requests` per `per` sustained, bursts of `burst`;
//   - fixed windows of any length, aligned to the Unix epoch;
//   - calendar quotas: day, week (from Monday), month or year in an IANA time zone,
//     resetting at the real start of the next period (DST and leap years included);
//   - prepaid credits: a counter that never resets; only [Engine.TopUp] restores it.
//
// All limits that apply to a request are evaluated in one store call, atomically: if any
// enforcing limit denies, nothing is consumed anywhere.
//
// # Stores
//
// The memory store (default) keeps counters in sharded maps indexed by a stable 64-bit
// digest of the key's parts; each counter keeps its key, compared on every lookup, so two
// keys whose digests collide (by chance or by a client's design) never share a counter
// (the second one is kept apart, by its full key). A check on an existing counter
// allocates nothing. It is bounded (max_entries): when full it sheds expired entries,
// then counters under their limit, never a key over its limit, a quota, a credit or a
// lockout; with nothing to shed, new keys are not tracked. It persists quota, credit and
// long-window counters and bindings to a file, written atomically (temporary file +
// rename) every flush_interval (default 10s) and on Close, and read back at start. A crash therefore loses at most
// flush_interval of counting on those counters (the requests counted since the last
// flush); short windows and GCRA buckets are not persisted (they refill within their
// window anyway).
//
// The Redis store (single, sentinel or cluster) evaluates every request in one round trip
// however many limits apply: plain INCRBYs when every limit is a counter (the default
// counters: native; a refused request's units are taken back in a second round trip),
// else one Lua script (a lockout Fail takes two, three when it locks). Outside cluster
// mode, concurrent calls share round trips: the first to arrive yields once so that the
// requests already runnable add their commands, then sends them all. In cluster mode keys
// carry a hash tag so that one request's keys share a slot: the request's organisation,
// else its app (inline), the domain (RLS), "lockout" (the lockout). Limits not keyed on
// the app or organisation are therefore counted per organisation (or app) in cluster
// mode only. Each call is bounded by the caller's deadline and the store timeout (default
// 100ms, the tail of a saturated round trip; never spent dialling); a circuit breaker opens after consecutive failures that last at least its window,
// so that a dead Redis costs microseconds; keys known to be over their limit are
// remembered in a ristretto cache until their reset or a raised limit (at most a second
// for native counters), so they cost no round trip. GCRA state is kept with microsecond
// resolution.
//
// # Layering
//
// The engine and the stores meet in one small leaf package, ratelimit/state: the [Store]
// interface and the smaller ones beside it ([Credits], [Bindings], [Records], [Pinger]), the values
// that cross it ([Op], [Outcome], [Key]), the step functions of the algorithms (so that
// the memory store and Redis's leases compute exactly what the Lua scripts compute), the
// [Clock], the store configuration and the [Metrics] hooks. It imports nothing of the
// limiter. Each store is a package that imports only state: ratelimit/memstore and
// ratelimit/redisstore (which keeps a memstore for fail mode local). This package, the
// engine, imports state and, for [OpenStore] alone, both stores; the names of state are
// re-exported here as aliases, so callers see one package. Nothing imports the engine
// from below, so there is no cycle, and a new store is one more package beside the two
// that passes the shared suite in ratelimit/storetest.
//
// # Fail modes
//
// Inline, per app: closed (default; Limit returns the error and the pipeline applies its
// own fail mode), open (allow), local (count in this replica's memory). RLS: error
// (default; gRPC UNAVAILABLE so Envoy's failure_mode_deny decides), allow, local.
// A lockout whose store fails reports the error; the pipeline treats it as not locked.
package ratelimit
