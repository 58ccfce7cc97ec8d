package ratelimit

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/ratelimit/memstore"
)

// TestEvictionInBatchDoesNotLendAnIdentity: within one batch, room made for a new key
// frees the identity slots of expired entries, and a new key whose digest collides with
// one of them may take its slot and its freed identity. A later op of the same batch that
// had found the expired entry must not take that slot for its own: the two keys would
// share a counter. Eviction order is random, so the scenario runs many times; expected
// counts are typed by hand.
func TestEvictionInBatchDoesNotLendAnIdentity(t *testing.T) {
	ctx := context.Background()
	t1 := t0.Add(2 * time.Second)
	far := t0.Add(time.Hour).UnixNano()
	for round := range 32 {
		s := memstore.New(MemoryConfig{Shards: 1, MaxEntries: 16}, nil)
		out := make([]Outcome, 3)
		apply := func(at time.Time, ops ...Op) {
			t.Helper()
			if err := s.Apply(ctx, at, ops, out[:len(ops)]); err != nil {
				t.Fatal(err)
			}
		}
		counter := func(k Key, cost, exp int64) Op {
			return Op{Key: k, Kind: KindCounter, Limit: 10, Cost: cost, Expire: exp}
		}
		for i := range 13 { // state eviction must keep
			k := NewKey("lock/fail", "", 0, "keep-"+strconv.Itoa(i))
			apply(t0, Op{Key: k, Kind: KindCounter, Limit: 10, Cost: 1, Expire: far, Exact: true})
		}
		a := NewKey("app/a/window#w1", "a", 0, "a-device")
		b := collide(a, NewKey("app/a/window#w1", "a", 0, "b-device"))
		c := NewKey("app/a/window#w1", "a", 0, "c-device")
		soon := t0.Add(time.Second).UnixNano()
		apply(t0, counter(a, 1, soon), counter(NewKey("app/a/window#w1", "a", 0, "y-device"), 1, soon),
			counter(NewKey("app/a/window#w1", "a", 0, "z-device"), 1, soon))

		// At t1 the entries of a, y and z have expired; c's room drops the three, and
		// there is room for c, b and a after it, so nothing live is shed.
		apply(t1, counter(c, 1, far), counter(b, 1, far), counter(a, 2, far))
		for _, tc := range []struct {
			k    Key
			want int64
		}{{c, 1}, {b, 1}, {a, 2}} {
			apply(t1, Op{Key: tc.k, Kind: KindPeek})
			if out[0].Value != tc.want {
				t.Fatalf("round %d: key %s holds %d, want %d", round, tc.k.Part(0), out[0].Value, tc.want)
			}
		}
	}
}
