package signature

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkAppendHeaders is the signing work per response: the body's SHA-256, the
// HMAC of the canonical string and the three headers.
func BenchmarkAppendHeaders(b *testing.B) {
	s, _ := New([]byte(exSecret), Settings{})
	now := time.Unix(exTS, 0)
	for _, size := range []int{1 << 10, 16 << 10} {
		body := make([]byte, size)
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(size))
			var buf [3]Header
			for range b.N {
				s.AppendHeaders(buf[:0], exNonce, 200, now, body)
			}
		})
	}
}
