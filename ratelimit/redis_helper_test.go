package ratelimit

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/redis/rueidis"
)

// redisProc is a redis-server process owned by one test.
type redisProc struct {
	t    testing.TB
	path string
	port int
	args []string
	cmd  *exec.Cmd
}

// startRedis starts `redis-server --port <free port> --bind 127.0.0.1 --save ” --appendonly
// no` and stops it when the test ends. Without redis-server the test is skipped, unless
// the environment variable CI is set: then it fails.
func startRedis(t testing.TB, extra ...string) *redisProc {
	t.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("redis-server not installed and CI is set: %v", err)
		}
		t.Skip("redis-server not installed (apt-get install -y redis-server); set CI=true to make this a failure")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	p := &redisProc{t: t, path: path, port: port, args: extra}
	p.start()
	t.Cleanup(p.stop)
	return p
}

func (p *redisProc) addr() string { return "127.0.0.1:" + strconv.Itoa(p.port) }

func (p *redisProc) start() {
	p.t.Helper()
	args := append([]string{"--port", strconv.Itoa(p.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"}, p.args...)
	p.cmd = exec.Command(p.path, args...)
	p.cmd.Dir = p.t.(interface{ TempDir() string }).TempDir()
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	for i := 0; i < 500; i++ { // up to 5 s
		if c, err := net.DialTimeout("tcp", p.addr(), 100*time.Millisecond); err == nil {
			c.Close()
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.t.Fatalf("redis-server on %s did not start", p.addr())
}

// stop kills the process (a crash, not a shutdown) and waits for it.
func (p *redisProc) stop() {
	if p.cmd == nil {
		return
	}
	p.cmd.Process.Kill()
	p.cmd.Wait()
	p.cmd = nil
}

// do runs one command on a fresh client (setup only).
func (p *redisProc) do(args ...string) error {
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{p.addr()}, ForceSingleClient: true, DisableCache: true})
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.Do(ctx, c.B().Arbitrary(args...).Build()).Error()
}

// openTestRedis opens a Redis store with a generous timeout (the race detector on a
// shared machine is slow); fault tests pass their own config.
func openTestRedis(t testing.TB, cfg RedisConfig, clock Clock) *redisStore {
	t.Helper()
	if cfg.Timeout == 0 {
		cfg.Timeout = 2 * time.Second
	}
	s, err := openRedis(context.Background(), cfg, orSystem(clock))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if s.client.Load() == nil {
		t.Fatal(fmt.Sprintf("cannot connect to %v", cfg.Addrs))
	}
	return s
}
