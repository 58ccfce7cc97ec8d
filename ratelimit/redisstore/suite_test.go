package redisstore_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/ratelimit"
	"github.com/gatehouse/gatehouse/ratelimit/internal/redistest"
	"github.com/gatehouse/gatehouse/ratelimit/storetest"
)

// TestStoreSuite: the Redis store passes the suite every store passes, in each way it
// can count: native counters with leases (the default) and without, the script, and
// Redis Cluster. Each store the suite opens gets keys of its own.
func TestStoreSuite(t *testing.T) {
	single, cluster := redistest.Start(t), redistest.StartCluster(t)
	for _, tc := range []struct {
		name string
		r    *redistest.Proc
		cfg  ratelimit.RedisConfig
	}{
		{"native with leases", single, ratelimit.RedisConfig{Lease: ratelimit.LeaseConfig{Idle: time.Hour}}},
		{"native", single, ratelimit.RedisConfig{Lease: ratelimit.LeaseConfig{MaxUnits: -1}}},
		{"script", single, ratelimit.RedisConfig{Counters: "script"}},
		{"cluster", cluster, ratelimit.RedisConfig{Mode: "cluster"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := 0
			storetest.Run(t, func(t *testing.T, clock ratelimit.Clock) ratelimit.Store {
				n++
				cfg := tc.cfg
				cfg.Addrs = []string{tc.r.Addr()}
				cfg.KeyPrefix = fmt.Sprintf("suite/%s/%d:", tc.name, n)
				cfg.OverLimitCacheKeys = 16 // a small cache clears fast
				return openTestRedis(t, cfg, clock)
			})
		})
	}
}
