package policy

import (
	"strconv"
	"sync"
	"testing"
	"time"
)

// TestRateLimitHeadersConcurrentResets: goroutines telling resets that share the 8
// remembered spellings (seconds 8 apart, and the seconds either side), and counts either
// side of the ones spelled ahead (4095, 4096), each get their own numbers, never another
// goroutine's (-race checks the slots' sharing).
func TestRateLimitHeadersConcurrentResets(t *testing.T) {
	const base = 1_609_459_200
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 2000 {
				sec := int64(base + 8*(i%16) + g%2 - 1) // same slots across goroutines
				lim := int64(4095 + (i+g)%3)            // 4095, 4096, 4097
				r := LimitResult{Name: "n", Limit: lim, Remaining: lim - 1, Reset: time.Unix(sec, 0)}
				h := r.Headers()
				if h.Reset != strconv.FormatInt(sec, 10) || h.Limit != strconv.FormatInt(lim, 10) || h.Remaining != strconv.FormatInt(lim-1, 10) {
					t.Errorf("reset %d limit %d: headers %+v", sec, lim, h)
					return
				}
			}
		})
	}
	wg.Wait()
}
