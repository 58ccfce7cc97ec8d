package ratelimit

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"
)

// redisProc is a redis-server process owned by one test.
type redisProc struct {
	t    testing.TB
	path string
	port int
	conf string // config file text, first argument when set (sentinel needs one)
	args []string
	cmd  *exec.Cmd
}

// startRedis starts `redis-server --port <free port> --bind 127.0.0.1 --save ” --appendonly
// no` and stops it when the test ends. Without redis-server the test fails: a skipped
// Redis suite would let the Redis store go untested unnoticed.
func startRedis(t testing.TB, extra ...string) *redisProc {
	t.Helper()
	return startRedisConf(t, "", extra...)
}

// startRedisConf is startRedis with conf written to a file that comes first on the
// command line; "{port}" in conf and extra stands for the process's port.
func startRedisConf(t testing.TB, conf string, extra ...string) *redisProc {
	t.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server not found (%v): the Redis store is tested against a real one; run `make test` (it installs it) or install it (apt-get install -y redis-server)", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	p := &redisProc{t: t, path: path, port: port, conf: conf, args: extra}
	p.start()
	t.Cleanup(p.stop)
	return p
}

func (p *redisProc) addr() string { return "127.0.0.1:" + strconv.Itoa(p.port) }

func (p *redisProc) start() {
	p.t.Helper()
	port := strconv.Itoa(p.port)
	args := []string{"--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"}
	for _, a := range p.args {
		args = append(args, strings.ReplaceAll(a, "{port}", port))
	}
	dir := p.t.(interface{ TempDir() string }).TempDir()
	if p.conf != "" {
		file := filepath.Join(dir, "redis.conf")
		if err := os.WriteFile(file, []byte(strings.ReplaceAll(p.conf, "{port}", port)), 0o600); err != nil {
			p.t.Fatal(err)
		}
		args = append([]string{file}, args...)
	}
	p.cmd = exec.Command(p.path, args...)
	p.cmd.Dir = dir
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

// query runs one command on a fresh client and returns its reply as a string (setup and
// checks only).
func (p *redisProc) query(args ...string) (string, error) {
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{p.addr()}, ForceSingleClient: true, DisableCache: true})
	if err != nil {
		return "", err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	msg, err := c.Do(ctx, c.B().Arbitrary(args...).Build()).ToMessage()
	if err != nil {
		return "", err
	}
	if v, err := msg.AsInt64(); err == nil {
		return strconv.FormatInt(v, 10), nil
	}
	return msg.ToString()
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

// cmdCalls returns how many times Redis has run cmd (lower case, as INFO commandstats names it).
func (p *redisProc) cmdCalls(cmd string) int {
	p.t.Helper()
	info, err := p.query("INFO", "commandstats")
	if err != nil {
		p.t.Fatal(err)
	}
	_, rest, ok := strings.Cut(info, "cmdstat_"+cmd+":calls=")
	if !ok {
		return 0
	}
	n, _ := strconv.Atoi(rest[:strings.IndexByte(rest, ',')])
	return n
}
