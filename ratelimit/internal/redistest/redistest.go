// Package redistest runs real redis-server processes for the limiter's tests.
package redistest

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"
)

// Proc is a redis-server process owned by one test.
type Proc struct {
	t    testing.TB
	path string
	port int
	conf string // config file text, first argument when set (sentinel needs one)
	args []string
	cmd  *exec.Cmd
	out  *syncBuffer   // the process's output, for the failure message
	done chan struct{} // closed once the process has exited
}

// syncBuffer is the process's output, written by exec's copier and read by the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Start starts `redis-server --port <free port> --bind 127.0.0.1 --save ” --appendonly
// no` and stops it when the test ends. Without redis-server the test fails: a skipped
// Redis suite would let the Redis store go untested unnoticed.
func Start(t testing.TB, extra ...string) *Proc {
	t.Helper()
	return StartConf(t, "", extra...)
}

// StartConf is Start with conf written to a file that comes first on the
// command line; "{port}" in conf and extra stands for the process's port.
func StartConf(t testing.TB, conf string, extra ...string) *Proc {
	t.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server not found (%v): the Redis store is tested against a real one; run `make test` (it installs it) or install it (apt-get install -y redis-server)", err)
	}
	p := &Proc{t: t, path: path, conf: conf, args: extra}
	t.Cleanup(p.Stop)
	// A port found free can be taken again before redis-server binds it (or its cluster
	// bus port, port+10000, is in use): a process that exits at once tries another port.
	for attempt := 1; ; attempt++ {
		p.port = freePort(t)
		if p.start() {
			return p
		}
		if attempt == 5 {
			t.Fatalf("redis-server exited at start 5 times; last output:\n%s", p.out)
		}
	}
}

// freePort returns a port nothing listened on a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Port is the process's port.
func (p *Proc) Port() int { return p.port }

// Addr is the process's host:port.
func (p *Proc) Addr() string { return "127.0.0.1:" + strconv.Itoa(p.port) }

// Start starts the process again (after Stop) on the same port.
func (p *Proc) Start() {
	p.t.Helper()
	if !p.start() {
		p.t.Fatalf("redis-server on %s exited at start:\n%s", p.Addr(), p.out)
	}
}

// start runs the process and waits until it accepts connections; false when it exited
// first. It waits as long as a loaded machine needs (up to 60 s): the wait ends as soon
// as the port answers.
func (p *Proc) start() bool {
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
	p.out = new(syncBuffer)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	done := make(chan struct{})
	p.done = done
	go func(c *exec.Cmd) { c.Wait(); close(done) }(p.cmd)
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); {
		select {
		case <-done:
			p.cmd = nil
			return false
		default:
		}
		if c, err := net.DialTimeout("tcp", p.Addr(), 100*time.Millisecond); err == nil {
			c.Close()
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.t.Fatalf("redis-server on %s did not accept connections in 60 s:\n%s", p.Addr(), p.out)
	return false
}

// Signal sends sig to the process (SIGSTOP, SIGCONT: a Redis that stalls).
func (p *Proc) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Stop kills the process (a crash, not a shutdown) and waits for it.
func (p *Proc) Stop() {
	if p.cmd == nil {
		return
	}
	p.cmd.Process.Kill()
	<-p.done
	p.cmd = nil
}

// Do runs one command on a fresh client (setup only).
func (p *Proc) Do(args ...string) error {
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{p.Addr()}, ForceSingleClient: true, DisableCache: true})
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.Do(ctx, c.B().Arbitrary(args...).Build()).Error()
}

// Query runs one command on a fresh client and returns its reply as a string (setup and
// checks only).
func (p *Proc) Query(args ...string) (string, error) {
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{p.Addr()}, ForceSingleClient: true, DisableCache: true})
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

// CmdCalls returns how many times Redis has run cmd (lower case, as INFO commandstats names it).
func (p *Proc) CmdCalls(cmd string) int {
	p.t.Helper()
	info, err := p.Query("INFO", "commandstats")
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

// StartCluster starts a one-node Redis Cluster that serves every slot.
func StartCluster(t testing.TB) *Proc {
	t.Helper()
	// The cluster bus listens on a port of its own: by default the client port + 10000,
	// which Redis refuses for a client port above 55535 (a quarter of the ephemeral range).
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	bus := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	r := Start(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-port", bus)
	if err := r.Do("CLUSTER", "ADDSLOTSRANGE", "0", "16383"); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ { // the node serves its slots once it has seen its own config
		state, err := r.Query("CLUSTER", "INFO")
		if err == nil && strings.Contains(state, "cluster_state:ok") {
			return r
		}
		if i == 1000 {
			t.Fatalf("cluster never became ready: %v %q", err, state)
		}
		time.Sleep(5 * time.Millisecond) // polling a condition, bounded by the attempts
	}
}
