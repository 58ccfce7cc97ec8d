package policy

import (
	"crypto/sha256"
	"encoding/binary"
	"time"

	"github.com/dgraph-io/ristretto/v2"
)

// Cache holds verified credentials (user JWTs, attestation tokens) so that a hot token
// costs one signature verification per lifetime. Keys are SHA-256 digests of the
// credential and everything its verdict depends on (provider, app, config version): a raw
// credential is never stored. One Cache is shared by every config snapshot.
type Cache struct {
	c *ristretto.Cache[uint64, *cacheItem]
}

type cacheItem struct {
	key Hash
	val any
}

// CacheStats are the cache's counters since start.
type CacheStats struct {
	Hits, Misses, Evictions uint64
	Cost                    uint64 // bytes currently held, as estimated by the cost function
}

// NewCache returns a cache bounded by maxBytes of estimated entry size.
func NewCache(maxBytes int64) (*Cache, error) {
	if maxBytes < 1<<16 {
		maxBytes = 1 << 16
	}
	c, err := ristretto.NewCache(&ristretto.Config[uint64, *cacheItem]{
		// About 10 counters per expected entry; entries average a few hundred bytes.
		NumCounters: max(maxBytes/25, 1<<12),
		MaxCost:     maxBytes,
		BufferItems: 64,
		Metrics:     true,
		// The key is a digest's first word (see index): it is its own hash. No conflict
		// hash: cacheItem.key, the whole digest, tells keys with the same word apart.
		KeyToHash:          func(k uint64) (uint64, uint64) { return k, 0 },
		IgnoreInternalCost: true,
	})
	if err != nil {
		return nil, err
	}
	return &Cache{c: c}, nil
}

// CacheKey derives a cache key from its parts, separated so that no two part lists
// collide.
func CacheKey(parts ...string) Hash {
	var buf [2048]byte // typical keys (RS256 tokens included) fit: no allocation
	b := buf[:0]
	for _, p := range parts {
		b = binary.LittleEndian.AppendUint64(b, uint64(len(p)))
		b = append(b, p...)
	}
	return sha256.Sum256(b)
}

// Get returns the value cached under k.
func (c *Cache) Get(k Hash) (any, bool) {
	if c == nil {
		return nil, false
	}
	it, ok := c.c.Get(index(k))
	if !ok || it.key != k {
		return nil, false
	}
	return it.val, true
}

// Set caches v under k for ttl; cost is the entry's approximate size in bytes.
func (c *Cache) Set(k Hash, v any, cost int64, ttl time.Duration) {
	if c == nil || ttl <= 0 {
		return
	}
	c.c.SetWithTTL(index(k), &cacheItem{key: k, val: v}, cost+64, ttl)
}

// index is the word of k the cache indexes entries by. k is a uniformly random digest,
// so any word of it will do; a word, unlike the digest as a string, costs no
// allocation per lookup. Two keys with the same word (a chance of 2^-64, or the work of
// a birthday search among one client's own credentials) share a slot: each evicts the
// other and neither is answered with the other's value.
func index(k Hash) uint64 { return binary.LittleEndian.Uint64(k[:8]) }

// Wait blocks until buffered writes are applied (tests).
func (c *Cache) Wait() {
	if c != nil {
		c.c.Wait()
	}
}

// Stats returns the cache's counters.
func (c *Cache) Stats() CacheStats {
	if c == nil {
		return CacheStats{}
	}
	m := c.c.Metrics
	return CacheStats{Hits: m.Hits(), Misses: m.Misses(), Evictions: m.KeysEvicted(), Cost: m.CostAdded() - m.CostEvicted()}
}

// Close stops the cache's goroutines.
func (c *Cache) Close() {
	if c != nil {
		c.c.Close()
	}
}
