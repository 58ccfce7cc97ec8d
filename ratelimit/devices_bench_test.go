package ratelimit

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/ratelimit/internal/redistest"
)

// BenchmarkLimitRedisDevices is the mobile shape on a real redis-server: 100,000
// devices, each with a token bucket of 50/s, burst 100, beside the app's monthly quota,
// a device chosen at random per decision (so most decisions are a device's first in a
// while, as in a large fleet). The client's share of the CPU; redis-server's is not
// counted here.
func BenchmarkLimitRedisDevices(b *testing.B) {
	p := redistest.Start(b)
	st := openTestRedis(b, RedisConfig{Addrs: []string{p.Addr()}}, SystemClock)
	e := mustCompile(b, CompileInput{Apps: map[string]AppLimits{"app": {Limits: []LimitConfig{
		{Name: "device", Key: []string{"device"}, Algorithm: "gcra", Requests: 50, Per: time.Second, Burst: 100},
		{Name: "monthly", Key: []string{"app"}, Requests: 1 << 40, Period: "month", TimeZone: "UTC"},
	}}}}, st)
	const n = 100_000
	devices := make([]string, n)
	for i := range devices {
		devices[i] = "device-" + strconv.Itoa(i)
	}
	var seed atomic.Uint64
	ctx := context.Background()
	b.SetParallelism(8)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		x := seed.Add(0x9E3779B97F4A7C15)
		for pb.Next() {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			res, err := e.Limit(ctx, time.Now(), policy.LimitRequest{App: "app", Device: devices[x%n]})
			if err != nil || res.Code != "" {
				b.Fatal(res, err)
			}
		}
	})
}
