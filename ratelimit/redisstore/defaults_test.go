package redisstore

import (
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/ratelimit/internal/redistest"
	"github.com/gatehouse/gatehouse/ratelimit/state"
)

// TestRedisDefaults pins what a Redis store runs with when the file says nothing but
// its address. The values are typed here by hand from the documentation (README,
// configuration reference): a change of a default must change this table too.
func TestRedisDefaults(t *testing.T) {
	r := redistest.Start(t)
	s, err := Open(t.Context(), state.RedisConfig{Addrs: []string{r.Addr()}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"timeout", s.timeout, 100 * time.Millisecond},
		{"dial_timeout", s.opt.Dialer.Timeout, time.Second},
		{"breaker.failures", s.br.failures, 5},
		{"breaker.window", s.br.window, 50 * time.Millisecond},
		{"breaker.cooldown", s.br.cooldown, 250 * time.Millisecond},
		{"flush_delay", s.opt.MaxFlushDelay, 20 * time.Microsecond},
		{"retries off", s.opt.DisableRetry, true},
		{"always pipelined", s.opt.AlwaysPipelining, true},
		{"key_prefix", s.prefix, "gh:"},
		{"counters native", s.native, true},
		{"lease.max_units", s.leases.max, int64(64)},
	} {
		if c.got != c.want {
			t.Errorf("%s: %v, want %v", c.name, c.got, c.want)
		}
	}
}

// TestRedisTimeoutBounds: redis.timeout is validated at its edges: 0 (the default), up
// to 10s, never negative, never above 10s.
func TestRedisTimeoutBounds(t *testing.T) {
	for _, c := range []struct {
		timeout time.Duration
		ok      bool
	}{
		{-time.Nanosecond, false},
		{0, true},
		{time.Nanosecond, true},
		{10*time.Second - time.Nanosecond, true},
		{10 * time.Second, true},
		{10*time.Second + time.Nanosecond, false},
	} {
		errs := state.StoreConfig{Type: "redis", Redis: state.RedisConfig{Addrs: []string{"127.0.0.1:1"}, Timeout: c.timeout}}.Validate()
		if got := len(errs) == 0; got != c.ok {
			t.Errorf("timeout %v: errors %v, want ok=%v", c.timeout, errs, c.ok)
		}
		for _, err := range errs {
			if !strings.HasPrefix(err.Error(), "redis.timeout: ") {
				t.Errorf("timeout %v: %v, want a redis.timeout problem", c.timeout, err)
			}
		}
	}
}
