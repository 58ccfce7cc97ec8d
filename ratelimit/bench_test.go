package ratelimit

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/ratelimit/internal/redistest"
	"github.com/gatehouse/gatehouse/ratelimit/memstore"
)

func benchEngine(b *testing.B, limits []LimitConfig, endpoint []LimitConfig) *Engine {
	in := CompileInput{Apps: map[string]AppLimits{"app": {Limits: limits}}}
	if endpoint != nil {
		in.Endpoints = map[string][]LimitConfig{"GET /v1/x": endpoint}
	}
	return mustCompile(b, in, memStore(b, MemoryConfig{}, func() time.Time { return t0 }))
}

func runLimitBench(b *testing.B, e *Engine) {
	devices := make([]string, 4096)
	for i := range devices {
		devices[i] = "device-" + strconv.Itoa(i)
	}
	var seed atomic.Uint64
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := seed.Add(7919)
		now := t0
		for pb.Next() {
			i++
			now = now.Add(time.Microsecond)
			_, err := e.Limit(ctx, now, policy.LimitRequest{App: "app", Endpoint: "GET /v1/x", Device: devices[i&4095], IP: "10.0.0.1"})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkLimitMemory is one inline decision on the memory store: one GCRA device limit.
func BenchmarkLimitMemory(b *testing.B) {
	runLimitBench(b, benchEngine(b, []LimitConfig{
		{Name: "device", Key: []string{"device"}, Algorithm: "gcra", Requests: 50, Per: time.Second, Burst: 100},
	}, nil))
}

// BenchmarkLimitMemory3 applies three limits (device GCRA, app window, endpoint monthly quota).
func BenchmarkLimitMemory3(b *testing.B) {
	runLimitBench(b, benchEngine(b, []LimitConfig{
		{Name: "device", Key: []string{"device"}, Algorithm: "gcra", Requests: 50, Per: time.Second, Burst: 100},
		{Name: "app", Requests: 1 << 40, Per: time.Minute},
	}, []LimitConfig{{Name: "monthly", Key: []string{"app"}, Requests: 1 << 40, Period: "month", TimeZone: "Europe/Berlin"}}))
}

// BenchmarkMillionDevices reports the heap used by 1,000,000 active device limiters.
func BenchmarkMillionDevices(b *testing.B) {
	for i := 0; i < b.N; i++ {
		mib, err := millionDevicesHeap()
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(mib, "MiB/1M-limiters")
	}
}

// millionDevicesHeap fills a memory store with one GCRA limiter per device for a million
// devices and returns the heap they hold, in MiB.
func millionDevicesHeap() (float64, error) {
	const n = 1_000_000
	store, err := memstore.Open(MemoryConfig{}, func() time.Time { return t0 })
	if err != nil {
		return 0, err
	}
	defer store.Close()
	e, err := Compile(CompileInput{Apps: map[string]AppLimits{"app": {Limits: []LimitConfig{
		{Name: "device", Key: []string{"device"}, Algorithm: "gcra", Requests: 50, Per: time.Second, Burst: 100},
	}}}}, store)
	if err != nil {
		return 0, err
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	ctx := context.Background()
	buf := make([]byte, 0, 32)
	for i := 0; i < n; i++ {
		buf = strconv.AppendInt(append(buf[:0], "device-"...), int64(i), 10)
		if _, err := e.Limit(ctx, t0, policy.LimitRequest{App: "app", Device: string(buf)}); err != nil {
			return 0, err
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if got := store.Len(); got != n {
		return 0, fmt.Errorf("%d limiters, want %d", got, n)
	}
	runtime.KeepAlive(store)
	return float64(after.HeapAlloc-before.HeapAlloc) / (1 << 20), nil
}

// BenchmarkLimitRedis is one inline decision (one GCRA device limit) on a real
// redis-server: the client's share of the CPU (redis-server's own is not counted here).
func BenchmarkLimitRedis(b *testing.B) {
	p := redistest.Start(b)
	st := openTestRedis(b, RedisConfig{Addrs: []string{p.Addr()}}, SystemClock)
	e := mustCompile(b, CompileInput{Apps: map[string]AppLimits{"app": {Limits: []LimitConfig{
		{Name: "device", Key: []string{"device"}, Algorithm: "gcra", Requests: 1 << 30, Per: time.Second, Burst: 1 << 30},
	}}}}, st)
	b.SetParallelism(8)
	runLimitBench(b, e)
}

// BenchmarkLimitRedisWindow is BenchmarkLimitRedis with a fixed window counted with
// native commands: far from its limit, most decisions come from leased units.
func BenchmarkLimitRedisWindow(b *testing.B) { benchRedisWindow(b, LeaseConfig{}) }

// BenchmarkLimitRedisWindowNoLease is BenchmarkLimitRedisWindow with leases off: one INCRBY
// per decision.
func BenchmarkLimitRedisWindowNoLease(b *testing.B) { benchRedisWindow(b, LeaseConfig{MaxUnits: -1}) }

func benchRedisWindow(b *testing.B, lease LeaseConfig) {
	p := redistest.Start(b)
	st := openTestRedis(b, RedisConfig{Addrs: []string{p.Addr()}, Lease: lease}, SystemClock)
	e := mustCompile(b, CompileInput{Apps: map[string]AppLimits{"app": {Limits: []LimitConfig{
		{Name: "device", Key: []string{"device"}, Requests: 1 << 40, Per: time.Second},
	}}}}, st)
	b.SetParallelism(8)
	runLimitBench(b, e)
}
