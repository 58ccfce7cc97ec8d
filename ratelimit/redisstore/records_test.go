package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/ratelimit"
	"github.com/gatehouse/gatehouse/ratelimit/internal/redistest"
	"github.com/gatehouse/gatehouse/ratelimit/storetest"
)

// TestRecordsSuite: the Redis store passes the records suite, on a single Redis and on
// Redis Cluster. Redis keeps time itself: expiries are checked by TestRecordsTTL.
func TestRecordsSuite(t *testing.T) {
	single, cluster := redistest.Start(t), redistest.StartCluster(t)
	for _, tc := range []struct {
		name string
		r    *redistest.Proc
		mode string
	}{{"single", single, ""}, {"cluster", cluster, "cluster"}} {
		t.Run(tc.name, func(t *testing.T) {
			n := 0
			storetest.RunRecords(t, func(t *testing.T, clock ratelimit.Clock) ratelimit.Store {
				n++
				cfg := ratelimit.RedisConfig{Addrs: []string{tc.r.Addr()}, Mode: tc.mode,
					KeyPrefix: fmt.Sprintf("rsuite/%s/%d:", tc.name, n)}
				return openTestRedis(t, cfg, clock)
			}, storetest.RecordsOptions{})
		})
	}
}

// pttl returns the remaining ms of Redis key k (-2: no key).
func pttl(t *testing.T, r *redistest.Proc, k string) int64 {
	t.Helper()
	s, err := r.Query("PTTL", k)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestRecordsTTL: records are Redis strings under the store's prefix (the key escaped as
// counter keys are, a hash tag of its own in cluster mode) with the record's ttl as
// their PTTL, rounded up to the millisecond; a swap sets the ttl again, a delete or a
// take removes the key. Key names are typed here.
func TestRecordsTTL(t *testing.T) {
	ctx := context.Background()
	single, cluster := redistest.Start(t), redistest.StartCluster(t)
	for _, tc := range []struct {
		r        *redistest.Proc
		mode     string
		key, raw string
	}{
		{single, "", "nonce:a{b}%", "t:rec:nonce%3Aa%7Bb%7D%25"},
		{cluster, "cluster", "nonce:a{b}%", "t:rec:{nonce%3Aa%7Bb%7D%25}"},
	} {
		s := openTestRedis(t, ratelimit.RedisConfig{Addrs: []string{tc.r.Addr()}, Mode: tc.mode, KeyPrefix: "t:"}, nil)
		if _, ok, err := s.Create(ctx, t0, tc.key, []byte("v"), 10*time.Second); !ok || err != nil {
			t.Fatalf("%s: create %v %v", tc.mode, ok, err)
		}
		if v, err := tc.r.Query("GET", tc.raw); err != nil || v != "v" {
			t.Fatalf("%s: GET %s = %q %v, want \"v\"", tc.mode, tc.raw, v, err)
		}
		if ms := pttl(t, tc.r, tc.raw); ms <= 9000 || ms > 10000 {
			t.Fatalf("%s: PTTL %d, want in (9000, 10000]", tc.mode, ms)
		}
		if ok, err := s.Swap(ctx, t0, tc.key, []byte("v"), []byte("w"), 1500*time.Microsecond+time.Hour); !ok || err != nil {
			t.Fatalf("%s: swap %v %v", tc.mode, ok, err)
		}
		const hourMs = 3_600_000
		if ms := pttl(t, tc.r, tc.raw); ms <= hourMs-1000 || ms > hourMs+2 {
			t.Fatalf("%s: PTTL after swap %d, want in (%d, %d]", tc.mode, ms, hourMs-1000, hourMs+2)
		}
		if ok, err := s.Swap(ctx, t0, tc.key, []byte("w"), nil, 0); !ok || err != nil {
			t.Fatalf("%s: delete %v %v", tc.mode, ok, err)
		}
		if ms := pttl(t, tc.r, tc.raw); ms != -2 {
			t.Fatalf("%s: PTTL after delete %d, want -2 (no key)", tc.mode, ms)
		}
		s.Create(ctx, t0, tc.key, []byte("v"), time.Nanosecond) // 1 ms at least, never 0
		if ms := pttl(t, tc.r, tc.raw); ms > 1 || ms == -1 {
			t.Fatalf("%s: PTTL of a 1ns record %d, want at most 1 ms", tc.mode, ms)
		}
	}
}

// TestRecordsAcrossReplicas: two stores on one Redis (two replicas) share records: of
// concurrent Takes, Creates and Swaps of one record split between them, exactly one wins.
func TestRecordsAcrossReplicas(t *testing.T) {
	r := redistest.Start(t)
	cfg := ratelimit.RedisConfig{Addrs: []string{r.Addr()}, KeyPrefix: "two:"}
	a, b := openTestRedis(t, cfg, nil), openTestRedis(t, cfg, nil)
	replicas := []ratelimit.Records{a, b}
	ctx := context.Background()
	if _, ok, err := a.Create(ctx, t0, "seen", []byte("x"), time.Minute); !ok || err != nil {
		t.Fatalf("create on a: %v %v", ok, err)
	}
	if v, ok, err := b.Get(ctx, t0, "seen"); !ok || err != nil || string(v) != "x" {
		t.Fatalf("b reads %q %v %v, want a's record", v, ok, err)
	}
	for round := range 8 {
		key := "r" + strconv.Itoa(round)
		wins := [3]int{}
		var mu sync.Mutex
		win := func(i int) { mu.Lock(); wins[i]++; mu.Unlock() }
		if _, ok, _ := a.Create(ctx, t0, key+"take", []byte("c"), time.Minute); !ok {
			t.Fatal("create")
		}
		a.Create(ctx, t0, key+"swap", []byte("v0"), time.Minute)
		var wg sync.WaitGroup
		for i := range 16 {
			s := replicas[i%2]
			wg.Add(3)
			go func() {
				defer wg.Done()
				if _, ok, err := s.Take(ctx, t0, key+"take"); ok && err == nil {
					win(0)
				}
			}()
			go func() {
				defer wg.Done()
				if _, ok, err := s.Create(ctx, t0, key+"create", []byte{byte(i)}, time.Minute); ok && err == nil {
					win(1)
				}
			}()
			go func() {
				defer wg.Done()
				if ok, err := s.Swap(ctx, t0, key+"swap", []byte("v0"), []byte{byte(i)}, time.Minute); ok && err == nil {
					win(2)
				}
			}()
		}
		wg.Wait()
		if wins != [3]int{1, 1, 1} {
			t.Fatalf("round %d: winners of take, create, swap %v, want one each", round, wins)
		}
	}
}

// TestRecordsUnavailable: with Redis gone, every method fails with an error wrapping
// ErrUnavailable, within the store's timeout, and says nothing of the record's key; each
// failure is counted in the store metrics as every store call's is.
func TestRecordsUnavailable(t *testing.T) {
	r := redistest.Start(t)
	s := openTestRedis(t, ratelimit.RedisConfig{Addrs: []string{r.Addr()}, Timeout: 200 * time.Millisecond}, nil)
	m := ratelimit.NewMetrics()
	s.Instrument(m)
	r.Stop()
	ctx := context.Background()
	const key = "idem:secret-looking-key"
	_, _, errC := s.Create(ctx, t0, key, []byte("v"), time.Minute)
	_, _, errG := s.Get(ctx, t0, key)
	_, errS := s.Swap(ctx, t0, key, nil, []byte("v"), time.Minute)
	_, _, errT := s.Take(ctx, t0, key)
	for i, err := range []error{errC, errG, errS, errT} {
		if !errors.Is(err, ratelimit.ErrUnavailable) {
			t.Errorf("call %d: %v, want ErrUnavailable", i, err)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("call %d: error %q names the key", i, err)
		}
	}
	if n := metricValue(t, m, "gatehouse_store_errors_total", "backend", "redis"); n != 4 {
		t.Errorf("gatehouse_store_errors_total{backend=redis} = %v, want 4", n)
	}
}
