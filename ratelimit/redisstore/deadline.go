package redisstore

import (
	"context"
	"sync/atomic"
	"time"
)

// deadlines hands out the contexts that bound store calls: done between timeout and
// timeout+slack after the call starts. Calls that start within one slack of each other
// share one context, so a store call costs no timer of its own: a context.WithTimeout per
// call, under the cancelable context of a gRPC call, costs more CPU than the rest of the
// Redis client's work for a request.
type deadlines struct {
	timeout, slack time.Duration
	cur            atomic.Pointer[sharedDeadline]
	// now is the wall clock (contexts expire on it); tests set it to decide sharing.
	now func() time.Time
}

type sharedDeadline struct {
	ctx    context.Context
	cancel context.CancelFunc // never called early: calls may still use ctx; it expires by itself
	at     int64              // unix ns
}

func newDeadlines(timeout time.Duration) *deadlines {
	return &deadlines{timeout: timeout, slack: max(timeout/5, 100*time.Microsecond), now: time.Now}
}

// bound returns the context for a store call made on behalf of ctx, its cancel func, and
// whether it is a shared one. The shared context carries no values of ctx and ignores its
// cancellation (the call is bounded anyway); when ctx's own deadline comes first, the
// call gets a context of its own.
func (d *deadlines) bound(ctx context.Context) (context.Context, context.CancelFunc, bool) {
	now := d.now()
	c := d.cur.Load()
	if c == nil || c.at-now.UnixNano() < int64(d.timeout) {
		at := now.Add(d.timeout + d.slack)
		nctx, cancel := context.WithDeadline(context.Background(), at)
		n := &sharedDeadline{ctx: nctx, cancel: cancel, at: at.UnixNano()}
		if d.cur.CompareAndSwap(c, n) {
			c = n
		} else if c = d.cur.Load(); c == nil || c.at-now.UnixNano() < int64(d.timeout) {
			c = n // lost to an equally fresh one, or it was swapped again: use ours
		} else {
			cancel()
		}
	}
	if dl, ok := ctx.Deadline(); ok && dl.UnixNano() < c.at {
		own, cancel := context.WithTimeout(ctx, d.timeout)
		return own, cancel, false
	}
	return c.ctx, noCancel, true
}

func noCancel() {}
