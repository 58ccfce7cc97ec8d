package policy_test

import (
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy"
)

// TestCacheContract: what the verdict cache promises its callers, with sizes typed by hand.
func TestCacheContract(t *testing.T) {
	t.Run("small_sizes_are_raised_to_64KiB", func(t *testing.T) {
		c, err := policy.NewCache(1)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		k := policy.CacheKey("big")
		c.Set(k, "v", 60_000, time.Hour) // fits in 64 KiB, not in 1 byte
		c.Wait()
		if _, ok := c.Get(k); !ok {
			t.Fatal("a 60 kB entry does not fit a cache asked for 1 byte (raised to 64 KiB)")
		}
	})
	t.Run("large_sizes_are_kept", func(t *testing.T) {
		c, err := policy.NewCache(1 << 20)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		k := policy.CacheKey("bigger")
		c.Set(k, "v", 200_000, time.Hour) // more than 64 KiB, less than 1 MiB
		c.Wait()
		if _, ok := c.Get(k); !ok {
			t.Fatal("a 200 kB entry does not fit a 1 MiB cache")
		}
	})
	t.Run("cost_includes_64_bytes_of_overhead", func(t *testing.T) {
		c, err := policy.NewCache(1 << 20)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Set(policy.CacheKey("a"), "v", 100, time.Hour)
		c.Wait()
		if got := c.Stats().Cost; got != 164 {
			t.Fatalf("cost %d, want 164", got)
		}
	})
	t.Run("zero_or_negative_ttl_is_not_cached", func(t *testing.T) {
		c, err := policy.NewCache(1 << 20)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for _, ttl := range []time.Duration{0, -time.Second} {
			k := policy.CacheKey("ttl", ttl.String())
			c.Set(k, "v", 1, ttl)
			c.Wait()
			if _, ok := c.Get(k); ok {
				t.Errorf("ttl %v: cached (ristretto keeps a zero TTL forever)", ttl)
			}
		}
	})
	t.Run("stats_count_hits_and_misses", func(t *testing.T) {
		c, err := policy.NewCache(1 << 20)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		k := policy.CacheKey("s")
		c.Set(k, "v", 1, time.Hour)
		c.Wait()
		c.Get(k)
		c.Get(policy.CacheKey("absent"))
		if s := c.Stats(); s.Hits != 1 || s.Misses != 1 {
			t.Fatalf("stats %+v, want 1 hit and 1 miss", s)
		}
	})
	t.Run("nil_cache_is_a_no_op", func(t *testing.T) {
		var c *policy.Cache
		c.Set(policy.CacheKey("x"), "v", 1, time.Hour)
		c.Wait()
		if _, ok := c.Get(policy.CacheKey("x")); ok {
			t.Error("a nil cache returned a value")
		}
		if s := c.Stats(); s != (policy.CacheStats{}) {
			t.Errorf("nil cache stats %+v", s)
		}
		c.Close()
	})
	t.Run("a_hit_does_not_allocate", func(t *testing.T) {
		c, err := policy.NewCache(1 << 20)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		k := policy.CacheKey("hot")
		c.Set(k, "v", 1, time.Hour)
		c.Wait()
		if n := testing.AllocsPerRun(100, func() { c.Get(k) }); n != 0 {
			t.Fatalf("a hit costs %.0f allocations, want 0", n)
		}
	})
	t.Run("a_key_sharing_all_but_its_last_byte_misses", func(t *testing.T) {
		// The cache indexes entries by a part of the key: a key made to share that
		// part (and more) with a cached one must not be answered with its value.
		c, err := policy.NewCache(1 << 20)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		k := policy.CacheKey("victim")
		c.Set(k, "v", 1, time.Hour)
		c.Wait()
		forged := k
		forged[len(forged)-1] ^= 1
		if v, ok := c.Get(forged); ok {
			t.Fatalf("the forged key got %v", v)
		}
		if v, ok := c.Get(k); !ok || v != "v" {
			t.Fatalf("the cached key got %v %v", v, ok)
		}
	})
	t.Run("keys_do_not_collide_across_part_boundaries", func(t *testing.T) {
		if policy.CacheKey("ab", "c") == policy.CacheKey("a", "bc") || policy.CacheKey("a") == policy.CacheKey("a", "") {
			t.Fatal("part lists collide")
		}
	})
}

// TestDialectNames: every dialect's configuration spelling, and out-of-range values.
func TestDialectNames(t *testing.T) {
	for d, want := range map[policy.Dialect]string{
		policy.ProtectMyAPI: "protectmyapi", policy.Protekt: "protekt", policy.License: "license",
		policy.Generic: "generic", policy.Dialect(4): "dialect(4)", policy.Dialect(255): "dialect(255)",
	} {
		if got := d.String(); got != want {
			t.Errorf("Dialect(%d).String() = %q, want %q", uint8(d), got, want)
		}
	}
	// The first value past the last dialect renders as protectmyapi, never panics.
	r := policy.Render(policy.Dialect(4), policy.Forbidden, policy.RenderOptions{Message: "m"})
	if r.Status != 403 || string(r.Body) != `{"success":false,"error":{"code":"FORBIDDEN","message":"m"}}` {
		t.Fatalf("dialect(4): %d %s", r.Status, r.Body)
	}
}
