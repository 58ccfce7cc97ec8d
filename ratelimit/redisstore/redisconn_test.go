package redisstore_test

import (
	"context"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/ratelimit"
	"github.com/gatehouse/gatehouse/ratelimit/internal/redistest"
)

// slowProxy forwards TCP to Redis, but holds each new connection for setup before the
// first byte goes through: a network where making a connection (TCP, TLS, the
// handshake) takes far longer than a store call may, while a round trip on a made one
// is quick.
type slowProxy struct {
	l      net.Listener
	target string
	setup  time.Duration
	mu     sync.Mutex
	conns  []net.Conn
	accept int
}

func startSlowProxy(t *testing.T, target string, setup time.Duration) *slowProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &slowProxy{l: l, target: target, setup: setup}
	t.Cleanup(func() { l.Close(); p.cut() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *slowProxy) addr() string { return p.l.Addr().String() }

func (p *slowProxy) serve(c net.Conn) {
	p.mu.Lock()
	p.accept++
	p.conns = append(p.conns, c)
	p.mu.Unlock()
	<-time.After(p.setup) // the slow connection set-up being simulated
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns = append(p.conns, up)
	p.mu.Unlock()
	go func() { io.Copy(up, c); up.Close() }()
	io.Copy(c, up)
	c.Close()
}

// cut closes every connection, as a network failure or a Redis restart would.
func (p *slowProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *slowProxy) accepted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accept
}

// TestRedisCallsNeverDial: connections take 300ms to set up and a store call may take
// 100ms. The first calls after the store opens all succeed, with one connection or
// several (pipeline_multiplex), because every connection was made before the store
// opened; after every connection is cut, calls fail fast while the store reconnects in
// the background, and then succeed again, although no call could ever make a
// connection within its own timeout.
func TestRedisCallsNeverDial(t *testing.T) {
	r := redistest.Start(t)
	for _, multiplex := range []int{0, 2} {
		t.Run("multiplex="+strconv.Itoa(multiplex), func(t *testing.T) {
			p := startSlowProxy(t, r.Addr(), 300*time.Millisecond)
			st := openTestRedis(t, ratelimit.RedisConfig{Addrs: []string{p.addr()}, Timeout: 100 * time.Millisecond,
				PipelineMultiplex: multiplex, Lease: ratelimit.LeaseConfig{MaxUnits: -1},
				Breaker: ratelimit.BreakerConfig{Failures: 1 << 20}}, nil)
			if got, want := p.accepted(), 1<<multiplex; multiplex > 0 && got != want {
				t.Fatalf("connections made at open: %d, want %d", got, want)
			}
			e := mustCompile(t, ratelimit.CompileInput{Apps: map[string]ratelimit.AppLimits{"a": {Limits: []ratelimit.LimitConfig{
				{Name: "l", Key: []string{"device"}, Requests: 1 << 30, Per: time.Hour},
				{Name: "g", Key: []string{"ip"}, Algorithm: "gcra", Requests: 1 << 20, Per: time.Second, Burst: 1 << 20}}}}}, st)
			ctx := context.Background()
			for i := range 64 {
				req := policy.LimitRequest{App: "a", Device: "d" + strconv.Itoa(i), IP: "10.0.0." + strconv.Itoa(i)}
				if _, err := e.Limit(ctx, t0, req); err != nil {
					t.Fatalf("call %d after open: %v", i, err)
				}
			}
			p.cut()
			waitFor(t, 20*time.Second, "calls to succeed again after the cut", func() bool {
				_, err := e.Limit(ctx, t0, policy.LimitRequest{App: "a", Device: "after", IP: "10.0.1.1"})
				return err == nil
			})
		})
	}
}
