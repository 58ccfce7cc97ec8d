package redisstore_test

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/ratelimit"
	"github.com/gatehouse/gatehouse/ratelimit/internal/redistest"
	"github.com/gatehouse/gatehouse/ratelimit/redisstore"
)

// stallLoad drives a hot counter from three stores on one redis-server (three replicas),
// four callers each, and stalls Redis with CLIENT PAUSE once pauseAfter requests were
// admitted. Each caller runs until Redis has resumed and it has made after more calls.
// It returns the requests the stores admitted and the longest any call took, measured
// by the call itself.
type stallLoad struct {
	r          *redistest.Proc
	stores     []*redisstore.Store
	op         ratelimit.Op
	pauseMs    int
	pauseMode  string
	pauseAfter int64
	after      int
}

func (l *stallLoad) run(t *testing.T) (admitted int64, longest time.Duration) {
	t.Helper()
	var (
		n       atomic.Int64
		resumed atomic.Bool
		paused  = make(chan struct{})
		mu      sync.Mutex
		wg      sync.WaitGroup
	)
	var once sync.Once
	pause := func() {
		once.Do(func() {
			if err := l.r.Do("CLIENT", "PAUSE", strconv.Itoa(l.pauseMs), l.pauseMode); err != nil {
				t.Error(err)
			}
			close(paused)
			go func() { // returns once Redis takes writes again
				defer resumed.Store(true)
				if _, err := l.r.Query("INCR", "resume-probe"); err != nil {
					t.Error(err)
				}
			}()
		})
	}
	for _, st := range l.stores {
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				out := make([]ratelimit.Outcome, 1)
				var worst time.Duration
				for left := l.after; left > 0; {
					start := time.Now()
					err := st.Apply(context.Background(), t0, []ratelimit.Op{l.op}, out)
					worst = max(worst, time.Since(start))
					if err == nil && out[0].Allowed && n.Add(1) >= l.pauseAfter {
						pause()
					}
					if resumed.Load() {
						left--
					}
					select {
					case <-paused: // pace the calls that fail fast while the stall lasts
						time.Sleep(time.Millisecond)
					default:
					}
				}
				mu.Lock()
				longest = max(longest, worst)
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	return n.Load(), longest
}

func TestStallCostsNothing(t *testing.T) {
	limit := int64(1000)
	op := ratelimit.Op{Key: ratelimit.NewKey("stall", "", 1, "d"), Kind: ratelimit.KindCounter, Limit: limit, Cost: 1,
		Expire: t0.Add(time.Hour).UnixNano()}

	// What Redis counts once the stores are closed (their leases returned) must be what
	// they admitted: units of calls that timed out go back once Redis answers again, and
	// none goes back twice.
	t.Run("Redis counts what was admitted after a stall", func(t *testing.T) {
		r := redistest.Start(t)
		var stores []*redisstore.Store
		for range 3 {
			stores = append(stores, openTestRedis(t, ratelimit.RedisConfig{Addrs: []string{r.Addr()}, Timeout: 50 * time.Millisecond}, nil))
		}
		l := &stallLoad{r: r, stores: stores, op: op, pauseMs: 1500, pauseMode: "WRITE", pauseAfter: 300, after: 120}
		admitted, _ := l.run(t)
		for _, st := range stores {
			st.Close()
		}
		key := op.Key.Render(stores[0].Prefix(), false)
		deadline := time.Now().Add(10 * time.Second)
		c := redisCount(t, r, key)
		for c != admitted && time.Now().Before(deadline) { // reconciliation runs in the background
			time.Sleep(20 * time.Millisecond)
			c = redisCount(t, r, key)
		}
		if c != admitted {
			t.Fatalf("Redis counts %d, the stores admitted %d", c, admitted)
		}
		if c > limit {
			t.Fatalf("Redis counts %d, above the limit %d", c, limit)
		}
	})

	// A call that waited for the stall would take ≥ 2 s; a bounded one returns within its
	// timeout plus a slack (generous here: -race on a loaded machine).
	t.Run("no call waits for a stalled Redis", func(t *testing.T) {
		r := redistest.Start(t)
		const timeout, slack = 50 * time.Millisecond, 250 * time.Millisecond
		var stores []*redisstore.Store
		for range 3 {
			stores = append(stores, openTestRedis(t, ratelimit.RedisConfig{Addrs: []string{r.Addr()}, Timeout: timeout, DialTimeout: 2 * time.Second}, nil))
		}
		l := &stallLoad{r: r, stores: stores, op: op, pauseMs: 3000, pauseMode: "ALL", pauseAfter: 100, after: 20}
		_, longest := l.run(t)
		t.Logf("longest call: %v", longest)
		if longest > timeout+slack {
			t.Fatalf("a call took %v with a store timeout of %v", longest, timeout)
		}
	})
}

// More calls than the client can queue on its connections (1,024 a connection) meet a
// stall: those past the queue must not wait for a free place, which frees only when
// Redis answers or the connection is given up.
func TestStallFullQueue(t *testing.T) {
	r := redistest.Start(t)
	const timeout, slack = 50 * time.Millisecond, 250 * time.Millisecond
	st := openTestRedis(t, ratelimit.RedisConfig{Addrs: []string{r.Addr()}, Timeout: timeout, PipelineMultiplex: 0,
		Breaker: ratelimit.BreakerConfig{Window: time.Hour}}, nil)
	if err := r.Do("CLIENT", "PAUSE", "2000", "ALL"); err != nil {
		t.Fatal(err)
	}
	var (
		wg      sync.WaitGroup
		tookMu  sync.Mutex
		all     []time.Duration
	)
	for g := range 256 { // 256 callers of 12 calls each: 3,072 calls in the stall
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 12 {
				// A deadline of its own (before the store's shared one): one round trip each.
				ctx, cancel := context.WithTimeout(context.Background(), timeout-10*time.Millisecond)
				op := ratelimit.Op{Key: ratelimit.NewKey("q"+strconv.Itoa(g*100+i), "", 1, "d"), Kind: ratelimit.KindCounter,
					Limit: 10, Cost: 1, Expire: t0.Add(time.Hour).UnixNano()}
				start := time.Now()
				_ = st.Apply(ctx, t0, []ratelimit.Op{op}, make([]ratelimit.Outcome, 1))
				took := time.Since(start)
				cancel()
				tookMu.Lock()
				all = append(all, took)
				tookMu.Unlock()
			}
		}()
	}
	wg.Wait()
	slices.Sort(all)
	t.Logf("p50 %v p99 %v p999 %v max %v", all[len(all)/2], all[len(all)*99/100], all[len(all)*999/1000], all[len(all)-1])
	if d := all[len(all)-1]; d > timeout+slack {
		t.Fatalf("a call took %v with a store timeout of %v", d, timeout)
	}
}
