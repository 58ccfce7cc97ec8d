package idempotency_test

import (
	"testing"

	"github.com/gatehouse/gatehouse/ratelimit/memstore"
	"github.com/gatehouse/gatehouse/ratelimit/state"
)

// newRecords returns the memory store's records, closed at the end of the test.
func newRecords(t testing.TB) *memstore.Store {
	t.Helper()
	s, err := memstore.Open(state.MemoryConfig{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
