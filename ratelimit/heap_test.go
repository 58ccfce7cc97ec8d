//go:build !race

package ratelimit

import "testing"

// TestMillionDevicesHeap: 1,000,000 active device limiters fit in 200 MiB of heap. (Not
// under -race, whose shadow memory distorts the figure.)
func TestMillionDevicesHeap(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	mib := millionDevicesHeap(t)
	t.Logf("1,000,000 device limiters: %.1f MiB of heap", mib)
	if mib > 200 {
		t.Fatalf("%.1f MiB > 200 MiB", mib)
	}
}
