package state

import (
	"encoding/binary"
	"strconv"
	"strings"

	"github.com/cespare/xxhash/v2"
)

// MaxParts bounds the number of components of one counter key: the six entity kinds of
// the inline limits; a rate-limit-service descriptor passes one part per entry, and
// deeper descriptors fold their tail into the last part (losslessly: see add).
const MaxParts = 6

// Key names one counter. Its identity is the limit's ID (scope, name and algorithm), the
// values of the key components and the window. Hash is a stable 64-bit digest of exactly
// that, used to find a counter quickly; it is not an identity: stores compare full keys
// (see [Key.identity]), so two keys whose digests collide never share a counter. Tag is
// the partition used as the Redis Cluster hash tag.
type Key struct {
	ID     string
	Tag    string
	Window int64
	parts  [MaxParts]string
	n      uint8
	folded bool   // the last part holds parts MaxParts… (length-prefixed)
	idh    uint64 // digest of ID when precomputed (compiled rules); 0: compute
	hash   uint64
	base   uint64 // hash without the window: the same counter in every window
}

// NewKey returns a key for id, partition tag and component values.
func NewKey(id, tag string, window int64, parts ...string) Key {
	k := Key{ID: id, Tag: tag, Window: window}
	for _, p := range parts {
		k.Add(p)
	}
	k.Seal()
	return k
}

// Reset empties k for a new key of id (digest idh, 0: compute) and tag, so that a pooled
// key can be refilled in place.
func (k *Key) Reset(id, tag string, idh uint64) {
	k.ID, k.Tag, k.Window, k.n, k.folded, k.idh = id, tag, 0, 0, false, idh
}

// Add appends part p. Past MaxParts, the last part becomes the concatenation of the parts
// from MaxParts on, each prefixed with its length: a self-delimiting encoding, so folding
// stays injective whatever bytes the parts hold (the folded flag tells a folded part from
// a single part that happens to look like one).
func (k *Key) Add(p string) {
	if int(k.n) < MaxParts {
		k.parts[k.n] = p
		k.n++
		return
	}
	last := &k.parts[MaxParts-1]
	if !k.folded {
		*last = LengthPrefixed(*last)
		k.folded = true
	}
	*last += LengthPrefixed(p)
}

// SetFolded sets the last part to folded, the parts from MaxParts on already folded
// (each length-prefixed, as add folds them); k holds MaxParts-1 parts.
func (k *Key) SetFolded(folded string) {
	k.parts[MaxParts-1] = folded
	k.n, k.folded = MaxParts, true
}

func LengthPrefixed(p string) string { return strconv.Itoa(len(p)) + ":" + p }

// Seal computes the hash; call after the last add.
func (k *Key) Seal() {
	h := k.idh
	if h == 0 {
		h = IDHash(k.ID)
	}
	for i := uint8(0); i < k.n; i++ {
		h = Mix(h ^ xxhash.Sum64String(k.parts[i]) ^ uint64(i+1))
	}
	if k.folded {
		h = Mix(h ^ 0x666f6c64)
	}
	k.base = h
	k.hash = Mix(h ^ uint64(k.Window))
}

// Hash returns the key's stable digest.
func (k *Key) Hash() uint64 { return k.hash }

// Part returns the i-th part (i < the number of parts added, and below MaxParts).
func (k *Key) Part(i int) string { return k.parts[i] }

// Base returns the digest of the key without its window: the same counter in every window.
func (k *Key) Base() uint64 { return k.base }

// Mix is the splitmix64 finaliser: it makes the combination order-sensitive and well spread.
func Mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

var KeyEscaper = strings.NewReplacer("%", "%25", ":", "%3A", "{", "%7B", "}", "%7D")

// Render returns the key as a Redis key: prefix, optional {tag} (cluster mode), ID,
// escaped parts and window.
func (k *Key) Render(prefix string, cluster bool) string {
	var b strings.Builder
	b.Grow(len(prefix) + len(k.ID) + 48)
	b.WriteString(prefix)
	if cluster {
		b.WriteByte('{')
		b.WriteString(KeyEscaper.Replace(k.Tag))
		b.WriteString("}:")
	}
	b.WriteString(KeyEscaper.Replace(k.ID))
	for i := uint8(0); i < k.n; i++ {
		b.WriteByte(':')
		if k.folded && i == MaxParts-1 {
			b.WriteString("%F") // never the start of an escaped part: a lone % is %25
		}
		b.WriteString(KeyEscaper.Replace(k.parts[i]))
	}
	if k.Window != 0 {
		b.WriteString(":w")
		b.WriteString(strconv.FormatInt(k.Window, 36))
	}
	return b.String()
}

func IDHash(id string) uint64 { return Mix(xxhash.Sum64String(id)) | 1 }

// The identity of a key, as the memory store keeps it beside a counter: the digest of
// the ID (IDs come from configuration, never from a client), the window, the number of
// parts with the folded flag, then each part prefixed with its length as a uvarint. It is
// injective over (ID digest, window, parts), so comparing identities compares keys.
const identityHead = 8 + 8 + 1

// Identity returns k's identity (one allocation: only when a counter is created).
func (k *Key) Identity() string {
	var buf [96]byte
	return string(k.AppendIdentity(buf[:0]))
}

func (k *Key) AppendIdentity(b []byte) []byte {
	b = binary.LittleEndian.AppendUint64(b, k.idDigest())
	b = binary.LittleEndian.AppendUint64(b, uint64(k.Window))
	b = append(b, k.Flags())
	for i := uint8(0); i < k.n; i++ {
		b = binary.AppendUvarint(b, uint64(len(k.parts[i])))
		b = append(b, k.parts[i]...)
	}
	return b
}

func (k *Key) idDigest() uint64 {
	if k.idh != 0 {
		return k.idh
	}
	return IDHash(k.ID)
}

func (k *Key) Flags() byte {
	f := k.n
	if k.folded {
		f |= 0x80
	}
	return f
}

// Is reports whether id is k's identity, without building k's.
func (k *Key) Is(id string) bool {
	if len(id) < identityHead || le64(id) != k.idDigest() || int64(le64(id[8:])) != k.Window || id[16] != k.Flags() {
		return false
	}
	if p := k.parts[0]; k.n == 1 && len(p) < 0x80 { // the common case: one short part
		return len(id) == identityHead+1+len(p) && int(id[identityHead]) == len(p) && id[identityHead+1:] == p
	}
	return k.isParts(id[identityHead:])
}

func (k *Key) isParts(rest string) bool {
	for i := uint8(0); i < k.n; i++ {
		n, w := uvarint(rest)
		if w <= 0 || uint64(len(rest)-w) < n || rest[w:w+int(n)] != k.parts[i] {
			return false
		}
		rest = rest[w+int(n):]
	}
	return rest == ""
}

// KeyOf decodes an identity back into its key (sealed; its ID is unknown, its ID
// digest is kept), for counters read from a file.
func KeyOf(id string) (Key, bool) {
	if len(id) < identityHead {
		return Key{}, false
	}
	k := Key{idh: le64(id), Window: int64(le64(id[8:]))}
	n, folded := id[16]&0x7f, id[16]&0x80 != 0
	if n > MaxParts || folded && n != MaxParts {
		return Key{}, false
	}
	rest := id[identityHead:]
	for i := uint8(0); i < n; i++ {
		l, w := uvarint(rest)
		if w <= 0 || uint64(len(rest)-w) < l {
			return Key{}, false
		}
		k.parts[i] = rest[w : w+int(l)]
		rest = rest[w+int(l):]
	}
	if rest != "" {
		return Key{}, false
	}
	k.n, k.folded = n, folded
	k.Seal()
	return k, true
}

// le64 decodes a little-endian uint64 from the first 8 bytes of s.
func le64(s string) uint64 {
	_ = s[7]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

// uvarint decodes a uvarint at the start of s (binary.Uvarint for a string).
func uvarint(s string) (uint64, int) {
	var x uint64
	for i := 0; i < len(s) && i < binary.MaxVarintLen64; i++ {
		c := s[i]
		if c < 0x80 {
			return x | uint64(c)<<(7*i), i + 1
		}
		x |= uint64(c&0x7f) << (7 * i)
	}
	return 0, 0
}

// SameKey reports whether a and b name the same counter (both sealed).
func SameKey(a, b *Key) bool {
	return a.hash == b.hash && a.Window == b.Window && SameBase(a, b)
}

// SameBase reports whether a and b name the same counter, windows aside (both sealed).
func SameBase(a, b *Key) bool {
	if a.base != b.base || a.n != b.n || a.folded != b.folded || a.idDigest() != b.idDigest() {
		return false
	}
	for i := uint8(0); i < a.n; i++ {
		if a.parts[i] != b.parts[i] {
			return false
		}
	}
	return true
}

// ForgeDigests returns k with other's digests: the two keys then look alike to any index
// built on the digest, as an attacker who found a collision would make them. For tests of
// stores, which must keep such keys apart.
func (k Key) ForgeDigests(other Key) Key {
	k.hash, k.base = other.hash, other.base
	return k
}
