package ratelimit

// The limit a client is told about. One request can meet several limits (inline: the
// app's, the endpoint's and the organisation's; the rate-limit service: one per
// descriptor); the X-RateLimit-* and Retry-After headers speak of one. Both surfaces pick
// it here, by tells, and render it by policy.LimitResult.Headers; the values told are
// the ones the surface reports for that limit (its Status).

// tells reports whether a limit in state a (denied or not) is the one to tell the client
// about rather than b, the one picked so far among the limits listed before it. Limits in
// shadow mode are never offered: they decide nothing, so they are not told.
//  1. A denial before any admission: the client must hear why it was refused.
//  2. Among denials, one that never resets by itself (prepaid credits: no Reset) first,
//     then the longest wait: retrying sooner would be refused again.
//  3. Among admissions, the smallest Remaining: the limit the client will meet first.
//  4. On a tie, the one listed first keeps it.
func tells(a Status, aDenied bool, b Status, bDenied bool) bool {
	if aDenied != bDenied {
		return aDenied
	}
	if !aDenied {
		return a.Remaining < b.Remaining
	}
	if a.Reset.IsZero() != b.Reset.IsZero() {
		return a.Reset.IsZero()
	}
	return a.RetryAfter > b.RetryAfter
}

// rlsDenial is st as the rate-limit service reports a refused descriptor: limit_remaining
// 0, as envoyproxy/ratelimit reports it. (Inline, a refused request hears what remains:
// a request of 50 units refused with 49 left learns that 49 would pass.)
func rlsDenial(st Status) Status {
	st.Remaining = 0
	return st
}
