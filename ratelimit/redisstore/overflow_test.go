package redisstore_test

import (
	"context"
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/ratelimit"
	"github.com/gatehouse/gatehouse/ratelimit/internal/redistest"
)

// A counter that counts every hit (Op.Always) can be driven to the top of int64 (a long
// window, hits_addend up to 2³²-1). Past it, INCRBY fails ("would overflow"): the
// request must be refused as over the limit, not reported as a store failure, which a
// fail-open configuration admits and which counts toward opening the breaker for every
// counter. The counter is set near the top directly, as 2³¹ requests would leave it.
func TestAlwaysCounterAtInt64IsRefused(t *testing.T) {
	r := redistest.Start(t)
	for _, tc := range []struct {
		name string
		cfg  ratelimit.RedisConfig
	}{
		{"native", ratelimit.RedisConfig{Lease: ratelimit.LeaseConfig{MaxUnits: -1}}},
		{"native with leases", ratelimit.RedisConfig{Lease: ratelimit.LeaseConfig{Idle: time.Hour}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.Addrs, cfg.KeyPrefix = []string{r.Addr()}, "ovf/"+tc.name+":"
			st := openTestRedis(t, cfg, nil)
			op := ratelimit.Op{Key: ratelimit.NewKey("wrap", "", 1, "d"), Kind: ratelimit.KindCounter, Limit: 10,
				Expire: t0.Add(time.Hour).UnixNano(), Always: true}
			key := op.Key.Render(st.Prefix(), false)
			if err := r.Do("SET", key, strconv.FormatInt(math.MaxInt64-5, 10), "PX", "3600000"); err != nil {
				t.Fatal(err)
			}
			out := make([]ratelimit.Outcome, 1)
			for _, cost := range []int64{5, 1, 1 << 32} { // to the top, then one past it
				op.Cost = cost
				err := st.Apply(context.Background(), t0, []ratelimit.Op{op}, out)
				if err != nil || out[0].Allowed {
					t.Fatalf("cost %d: err %v, allowed %v: want refused", cost, err, out[0].Allowed)
				}
			}
		})
	}
}
