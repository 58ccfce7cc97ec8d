package memstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/ratelimit/state"
)

// TestRecordsNamespaceShareExpired: a namespace whose share is held by expired records
// takes a new one at once, as a full store does (TestRecordsFull), not only after the
// background sweep: else a flood of nonces that expired refuses every signed request
// until the sweep runs, though no live nonce holds the room.
func TestRecordsNamespaceShareExpired(t *testing.T) {
	ctx := context.Background()
	s := New(state.MemoryConfig{MaxRecords: 8}, nil) // a quarter: 2
	for _, k := range []string{"nonce:1", "nonce:2"} {
		if _, ok, err := s.Create(ctx, t0, k, []byte{1}, time.Minute); !ok || err != nil {
			t.Fatalf("create %s: %v %v", k, ok, err)
		}
	}
	if _, _, err := s.Create(ctx, t0, "nonce:3", []byte{1}, time.Minute); !errors.Is(err, ErrRecordsFull) {
		t.Fatalf("third nonce while two are live: %v, want ErrRecordsFull", err)
	}
	at := t0.Add(time.Minute)
	if _, ok, err := s.Create(ctx, at, "nonce:3", []byte{1}, time.Minute); !ok || err != nil {
		t.Fatalf("nonce once the others expired: %v %v", ok, err)
	}
	if ok, err := s.Swap(ctx, at, "nonce:4", nil, []byte{1}, time.Minute); !ok || err != nil {
		t.Fatalf("nonce by swap once the others expired: %v %v", ok, err)
	}
}
