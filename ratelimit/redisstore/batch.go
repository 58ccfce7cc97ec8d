package redisstore

import (
	"context"
	"runtime"
	"sync"

	"github.com/redis/rueidis"
)

// maxBatch bounds the commands of one shared round trip; a call that finds the open batch
// full sends its own.
const maxBatch = 256

// batcher lets concurrent store calls share Redis round trips. Each round trip costs both
// processes system calls and wake-ups that dwarf the commands themselves (a loopback write
// alone costs more CPU than Redis spends on an INCRBY), and Go's scheduler runs a
// just-woken client writer before the other requests of the same burst have queued their
// commands, so the client's own pipelining shares few writes.
//
// The first call to arrive opens a batch and yields the processor, so that requests
// already runnable (typically the rest of the burst that one read from Envoy's connection
// delivered) add their commands, and yields again while they keep coming; then it sends
// the whole batch in one DoMulti and hands each call its replies. Nothing waits on a
// timer: with no other request runnable, the yield returns at once; otherwise the opener
// waits for the requests ahead of it in the run queue, which is how they join.
type batcher struct {
	mu   sync.Mutex
	open *cmdBatch
}

type cmdBatch struct {
	ctx  context.Context // the opener's: calls with another context do not join
	cmds rueidis.Commands
	f    *flight
}

// do sends cmds, in a batch shared with concurrent calls, under ctx, which must be the
// store's shared deadline context: a call joins the open batch only if that batch runs
// under the same context, so no call waits past its own deadline. A call that cannot join
// (another context, a full batch) sends alone. Each call waits for its replies until ctx
// ends, whatever the others do (see flight).
func (b *batcher) do(s *Store, ctx context.Context, c rueidis.Client, cmds rueidis.Commands) ([]rueidis.RedisResult, late) {
	b.mu.Lock()
	if bt := b.open; bt != nil {
		if bt.ctx != ctx || len(bt.cmds)+len(cmds) > maxBatch {
			b.mu.Unlock()
			f := newFlight()
			s.launch(f, c, cmds)
			return f.wait(ctx, 0, len(cmds))
		}
		off := len(bt.cmds)
		bt.cmds = append(bt.cmds, cmds...)
		b.mu.Unlock()
		return bt.f.wait(ctx, off, len(cmds))
	}
	bt := &cmdBatch{ctx: ctx, cmds: append(make(rueidis.Commands, 0, 16), cmds...), f: newFlight()}
	b.open = bt
	b.mu.Unlock()

	for n := len(cmds); ; { // let the requests already runnable join, while they keep coming
		runtime.Gosched()
		b.mu.Lock()
		m := len(bt.cmds)
		if m == n || m >= maxBatch {
			b.open = nil
			b.mu.Unlock()
			break
		}
		b.mu.Unlock()
		n = m
	}
	s.launch(bt.f, c, bt.cmds)
	return bt.f.wait(ctx, 0, len(cmds))
}
