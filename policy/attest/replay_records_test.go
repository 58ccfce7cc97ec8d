package attest_test

import (
	"context"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/policy/attest"
	"github.com/gatehouse/gatehouse/ratelimit/memstore"
	"github.com/gatehouse/gatehouse/ratelimit/state"
)

// TestRecordsReplay: two dampers over one store (two replicas) see each other's marks; a
// mark lasts until exactly its token's expiry.
func TestRecordsReplay(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	store := memstore.New(state.MemoryConfig{}, func() time.Time { return now })
	a, b := attest.RecordsReplay{Records: store}, attest.RecordsReplay{Records: store}
	ctx := context.Background()
	id := policy.CacheKey("jti", "iss", "token-1")
	until := now.Add(time.Minute)
	steps := []struct {
		name string
		r    attest.Replay
		at   time.Time
		want bool
	}{
		{"first use, replica a", a, now, false},
		{"replayed to replica b", b, now, true},
		{"replayed to replica a 1s before expiry", a, until.Add(-time.Second), true},
		{"at its expiry", b, until, true}, // nothing can be recorded for no time: seen
	}
	for _, s := range steps {
		seen, err := s.r.Seen(ctx, s.at, id, until)
		if err != nil || seen != s.want {
			t.Errorf("%s: seen %v, %v; want %v", s.name, seen, err, s.want)
		}
	}
	other := policy.CacheKey("jti", "iss", "token-2")
	if seen, err := b.Seen(ctx, now, other, now.Add(time.Nanosecond)); err != nil || seen {
		t.Errorf("another token, 1ns to live: seen %v, %v", seen, err)
	}
}

// memoryReplay is a replay damper of its own for one test: records in a memory store.
func memoryReplay() attest.Replay {
	return attest.RecordsReplay{Records: memstore.New(state.MemoryConfig{}, nil)}
}
