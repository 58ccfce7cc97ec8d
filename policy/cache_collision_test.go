package policy_test

import (
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy"
)

// TestCacheSharedIndexNeverAnswersAnotherKey: the cache indexes entries by the first 8
// bytes of their key. Two keys made to share those bytes (all but the last byte, here)
// are each answered with their own value or a miss, never with the other's, whichever
// of them was cached last.
func TestCacheSharedIndexNeverAnswersAnotherKey(t *testing.T) {
	victim := policy.CacheKey("victim")
	forged := victim
	forged[8] ^= 0xff // the word after the index: same slot
	for _, order := range [][2]policy.Hash{{victim, forged}, {forged, victim}} {
		c, err := policy.NewCache(1 << 20)
		if err != nil {
			t.Fatal(err)
		}
		vals := map[policy.Hash]string{victim: "victim's", forged: "forged's"}
		for _, k := range order {
			c.Set(k, vals[k], 1, time.Hour)
			c.Wait()
		}
		for _, k := range order {
			if v, ok := c.Get(k); ok && v != vals[k] {
				t.Errorf("key %x... answered with %v, want %v or a miss", k[8:9], v, vals[k])
			}
		}
		if v, ok := c.Get(order[1]); !ok || v != vals[order[1]] {
			t.Errorf("the key cached last got %v %v, want %v", v, ok, vals[order[1]])
		}
		c.Close()
	}
}
