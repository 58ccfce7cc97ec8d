package ratelimit_test

import (
	"context"
	"testing"

	"github.com/gatehouse/gatehouse/ratelimit"
	"github.com/gatehouse/gatehouse/ratelimit/internal/redistest"
)

// TestOpenStoreRecords: whatever store OpenStore opens keeps records (ratelimit.Records),
// found by a type assertion as the documentation says.
func TestOpenStoreRecords(t *testing.T) {
	r := redistest.Start(t)
	for _, cfg := range []ratelimit.StoreConfig{
		{},
		{Type: "redis", Redis: ratelimit.RedisConfig{Addrs: []string{r.Addr()}}},
	} {
		s, err := ratelimit.OpenStore(context.Background(), cfg, ratelimit.SystemClock)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := s.(ratelimit.Records); !ok {
			t.Errorf("store %q: %T keeps no records", cfg.Type, s)
		}
		s.Close()
	}
}
