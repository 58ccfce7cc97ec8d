package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The run subcommand re-executes os.Executable() (here: the test binary) with "noop".
// This env var makes such a child behave like the real binary instead of running tests.
const childEnv = "GATEHOUSE_LOAD_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(mainExit(os.Args[1:]))
	}
	os.Setenv(childEnv, "1") // inherited by the children only
	os.Exit(m.Run())
}

var ratioRE = regexp.MustCompile(`ratio rps ([0-9.]+) cpu ([0-9.]+|n/a)`)

// TestNoopVsNoop runs the whole tool with a second no-op server standing in for
// Gatehouse. It checks the report, not timings: the ratio must exist and be positive.
func TestNoopVsNoop(t *testing.T) {
	if testing.Short() {
		t.Skip("starts servers and drives load for a few seconds")
	}
	for _, mode := range []string{"authz", "rls", "extproc"} {
		t.Run(mode, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			var out, errb bytes.Buffer
			err := run(ctx, []string{"run", "--mode", mode,
				"--target-cmd", "{self} noop --addr {grpc}",
				"--duration", "1s", "--warmup", "100ms", "--concurrency", "4", "--rounds", "1", "--devices", "50"}, &out, &errb)
			t.Logf("stdout:\n%s\nstderr:\n%s", out.String(), errb.String())
			if err != nil {
				t.Fatalf("run: %v", err)
			}
			s := out.String()
			for _, want := range []string{"mode=" + mode + " conc=4", "noop: ", "gatehouse: ", "== summary ==", "target conc=4"} {
				if !strings.Contains(s, want) {
					t.Errorf("output lacks %q", want)
				}
			}
			m := ratioRE.FindStringSubmatch(s)
			if m == nil {
				t.Fatalf("no ratio in output")
			}
			rps, err := strconv.ParseFloat(m[1], 64)
			if err != nil || rps <= 0 {
				t.Errorf("rps ratio %q not positive", m[1])
			}
			if m[2] != "n/a" {
				if cpu, err := strconv.ParseFloat(m[2], 64); err != nil || cpu <= 0 {
					t.Errorf("cpu ratio %q not positive", m[2])
				}
			}
			if !strings.Contains(s, "grpc_err 0") {
				t.Errorf("expected no gRPC errors against noop servers")
			}
		})
	}
}

func TestHistogramQuantiles(t *testing.T) {
	var h histogram
	for i := 1; i <= 1000; i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Microsecond}, {0.99, 990 * time.Microsecond}, {0.999, 999 * time.Microsecond}} {
		got := h.quantile(c.q)
		if diff := float64(got-c.want) / float64(c.want); diff > 0.01 || diff < -0.01 {
			t.Errorf("q%.3f = %v, want %v ±1%%", c.q, got, c.want)
		}
	}
	for v := uint64(0); v < 1<<20; v += 7 {
		b := bucketOf(v)
		if m := bucketMid(b); bucketOf(m) != b {
			t.Fatalf("bucketMid(%d)=%d is not in bucket %d", b, m, b)
		}
	}
}

func TestProcStatSelf(t *testing.T) {
	pg, ticks, err := procStat(os.Getpid())
	if err != nil || pg <= 0 || ticks < 0 {
		t.Fatalf("procStat(self) = %d, %d, %v", pg, ticks, err)
	}
}

// TestRedisAccounting checks the INFO/syscall bookkeeping against a real redis-server.
func TestRedisAccounting(t *testing.T) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal("redis-server is not installed: run the tests with `make test`, whose deps-test step installs it")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := startRedis(ctx, bin, t.TempDir())
	if r != nil {
		defer r.stop()
	}
	if err != nil {
		t.Fatal(err)
	}
	reads0, err := readSyscalls(r.pid())
	if err != nil {
		t.Skipf("no /proc/PID/io: %v", err)
	}
	s0, err := takeRedisSnap(r.addr)
	if err != nil {
		t.Fatal(err)
	}
	// One pipelined batch of 10 commands: 10 commands, ~1 round trip.
	c, err := net.Dial("tcp", r.addr)
	if err != nil {
		t.Fatal(err)
	}
	var cmd strings.Builder
	for i := 0; i < 10; i++ {
		cmd.WriteString("*2\r\n$4\r\nINCR\r\n$1\r\nk\r\n")
	}
	if _, err := c.Write([]byte(cmd.String())); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 0, 256)
	tmp := make([]byte, 256)
	for strings.Count(string(buf), "\r\n") < 10 {
		n, err := c.Read(tmp)
		if err != nil {
			t.Fatal(err)
		}
		buf = append(buf, tmp[:n]...)
	}
	c.Close()
	// Wait until redis has read the batch and the EOF (two reads at least); the deadline
	// only catches a server that never reads it.
	var reads1 int64
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if reads1, _ = readSyscalls(r.pid()); reads1-reads0 >= 2 || time.Now().After(deadline) {
			break
		}
	}
	s1, err := takeRedisSnap(r.addr)
	if err != nil {
		t.Fatal(err)
	}
	d := diffRedis(s0, s1)
	d.reads = reads1 - reads0 - 2
	if d.commands != 10 || d.perCmd["incr"] != 10 {
		t.Errorf("commands = %d, per command %v; want 10 incr", d.commands, d.perCmd)
	}
	// The batch read plus our connection's EOF read; allow a split read.
	// redis-server's cron also reads /proc/self/stat (10/s), hence some slack.
	if d.reads < 1 || d.reads > 5 {
		t.Errorf("server reads = %d, want ≈1 (+EOF)", d.reads)
	}
	t.Log(d.format(10))
}

func TestCacheMetrics(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, `# HELP gatehouse_cache_hits_total Cache hits.
# TYPE gatehouse_cache_hits_total counter
gatehouse_cache_hits_total{cache="verdict"} 900
gatehouse_cache_misses_total{cache="verdict"} 100
gatehouse_cache_entries 42
gatehouse_requests_total 1000
`)
	}))
	defer srv.Close()
	var out bytes.Buffer
	printCacheMetrics(context.Background(), &out, &target{name: "gatehouse", adminAddr: strings.TrimPrefix(srv.URL, "http://")})
	s := out.String()
	for _, want := range []string{`gatehouse_cache_entries 42`, `hit ratio gatehouse_cache_*_total{cache="verdict"}: 0.9000 (hits 900, misses 100)`} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "gatehouse_requests_total") || strings.Contains(s, "# HELP") {
		t.Errorf("printed non-cache lines:\n%s", s)
	}
}
