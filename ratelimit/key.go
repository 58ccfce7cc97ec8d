package ratelimit

import (
	"strconv"
	"strings"

	"github.com/cespare/xxhash/v2"
)

// maxParts bounds the number of components of one counter key: the six entity kinds of
// the inline limits; a rate-limit-service descriptor passes one part per entry, and
// deeper descriptors fold their tail into the last part.
const maxParts = 6

// Key names one counter. Its identity is the limit's ID (scope, name and algorithm), the
// values of the key components and the window; Hash is a stable 64-bit digest of exactly
// that, so the memory store can index counters without building strings, and so a
// persisted file stays valid across restarts. Tag is the partition used as the Redis
// Cluster hash tag.
type Key struct {
	ID     string
	Tag    string
	Window int64
	parts  [maxParts]string
	n      uint8
	idh    uint64 // digest of ID when precomputed (compiled rules); 0: compute
	hash   uint64
	base   uint64 // hash without the window: the same counter in every window
}

// NewKey returns a key for id, partition tag and component values.
func NewKey(id, tag string, window int64, parts ...string) Key {
	k := Key{ID: id, Tag: tag, Window: window}
	for _, p := range parts {
		k.add(p)
	}
	k.seal()
	return k
}

func (k *Key) add(p string) {
	if int(k.n) == maxParts {
		k.parts[maxParts-1] += "\x00" + p
		return
	}
	k.parts[k.n] = p
	k.n++
}

// seal computes the hash; call after the last add.
func (k *Key) seal() {
	h := k.idh
	if h == 0 {
		h = idHash(k.ID)
	}
	for i := uint8(0); i < k.n; i++ {
		h = mix(h ^ xxhash.Sum64String(k.parts[i]) ^ uint64(i+1))
	}
	k.base = h
	k.hash = mix(h ^ uint64(k.Window))
}

// Hash returns the key's stable digest.
func (k *Key) Hash() uint64 { return k.hash }

// mix is the splitmix64 finaliser: it makes the combination order-sensitive and well spread.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

var keyEscaper = strings.NewReplacer("%", "%25", ":", "%3A", "{", "%7B", "}", "%7D")

// Render returns the key as a Redis key: prefix, optional {tag} (cluster mode), ID,
// escaped parts and window.
func (k *Key) Render(prefix string, cluster bool) string {
	var b strings.Builder
	b.Grow(len(prefix) + len(k.ID) + 48)
	b.WriteString(prefix)
	if cluster {
		b.WriteByte('{')
		b.WriteString(keyEscaper.Replace(k.Tag))
		b.WriteString("}:")
	}
	b.WriteString(keyEscaper.Replace(k.ID))
	for i := uint8(0); i < k.n; i++ {
		b.WriteByte(':')
		b.WriteString(keyEscaper.Replace(k.parts[i]))
	}
	if k.Window != 0 {
		b.WriteString(":w")
		b.WriteString(strconv.FormatInt(k.Window, 36))
	}
	return b.String()
}

func idHash(id string) uint64 { return mix(xxhash.Sum64String(id)) | 1 }
