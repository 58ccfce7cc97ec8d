package idempotency_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/gatehouse/gatehouse/policy/idempotency"
)

// BenchmarkFirstRequestMemory is what a first request with a key costs on the memory
// store: Begin (create the mark) and Complete (store a 1 KiB response), in process.
func BenchmarkFirstRequestMemory(b *testing.B) {
	rec, s := newRecords(b), settings()
	s.MaxBody = 4096
	ctx := context.Background()
	body := make([]byte, 1024)
	fp := idempotency.NewFingerprint("POST", "/v1/orders", body)
	resp := idempotency.Response{Status: 201, Headers: [][2]string{{"content-type", "application/json"}}, Body: body}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		c, _, _, err := idempotency.Begin(ctx, rec, s, t0, "shop", "alice", strconv.Itoa(i), fp)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := idempotency.Complete(ctx, rec, s, t0, c, resp); err != nil {
			b.Fatal(err)
		}
	}
}
