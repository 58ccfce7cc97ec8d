package memstore_test

import (
	"testing"

	"github.com/gatehouse/gatehouse/ratelimit"
	"github.com/gatehouse/gatehouse/ratelimit/memstore"
	"github.com/gatehouse/gatehouse/ratelimit/storetest"
)

// TestStoreSuite: the memory store passes the suite every store passes.
func TestStoreSuite(t *testing.T) {
	storetest.Run(t, func(t *testing.T, clock ratelimit.Clock) ratelimit.Store {
		s, err := memstore.Open(ratelimit.MemoryConfig{}, clock)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// TestRecordsSuite: the memory store passes the records suite, expiries to the
// nanosecond of the calls' now.
func TestRecordsSuite(t *testing.T) {
	storetest.RunRecords(t, func(t *testing.T, clock ratelimit.Clock) ratelimit.Store {
		s, err := memstore.Open(ratelimit.MemoryConfig{}, clock)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}, storetest.RecordsOptions{ExactExpiry: true})
}
