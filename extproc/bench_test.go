package extproc

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/gatehouse/gatehouse/extproc/extproctest"
	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/signature"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// TestMain lets the test binary stand in for an ext_proc server in its own process
// (BenchmarkProcess measures that process's CPU): with EXTPROC_BENCH_SERVER=noop or
// sign it serves on a loopback port, prints the address, and stops when stdin closes.
func TestMain(m *testing.M) {
	if kind := os.Getenv("EXTPROC_BENCH_SERVER"); kind != "" {
		if err := benchServer(kind); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func benchServer(kind string) error {
	var srv extprocv3.ExternalProcessorServer = extproctest.Noop{}
	if kind == "sign" {
		sg, err := signature.New([]byte(testSecret), signature.Settings{})
		if err != nil {
			return err
		}
		rs := NewRoutes(policy.ProtectMyAPI)
		rs.Add(&Route{App: "a", Endpoint: "e", Sign: sg})
		srv = NewServer(func() *Routes { return rs }, Options{})
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	g := grpc.NewServer()
	extprocv3.RegisterExternalProcessorServer(g, srv)
	go g.Serve(l)
	fmt.Println(l.Addr().String())
	io.Copy(io.Discard, os.Stdin)
	g.Stop()
	return nil
}

// startBenchServer runs kind in a child process and returns its address and pid.
func startBenchServer(b *testing.B, kind string) (string, int) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "EXTPROC_BENCH_SERVER="+kind)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { stdin.Close(); cmd.Wait() })
	addr, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatal(err)
	}
	return strings.TrimSpace(addr), cmd.Process.Pid
}

// cpuTicks is a process's user and system CPU time in clock ticks (Linux /proc).
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s, nil
}

// BenchmarkProcess drives whole ext_proc streams over loopback gRPC, as Envoy does on a
// signed route (request headers with Check's metadata, response headers, the buffered
// response body), against Gatehouse's server signing the response and against a no-op
// server answering CONTINUE, each in its own process. server-µs/stream is that
// process's CPU time per stream (the target: sign ≤ 1.3 × noop); ns/op is the
// client's wall time.
//
//	go test -run '^$' -bench BenchmarkProcess -benchtime 20000x ./extproc/
func BenchmarkProcess(b *testing.B) {
	if _, err := cpuTicks(os.Getpid()); err != nil {
		b.Skip("needs Linux /proc for the server's CPU time")
	}
	for _, size := range []int{1 << 10, 16 << 10} {
		for _, kind := range []string{"noop", "sign"} {
			b.Run(fmt.Sprintf("%s/%dKiB", kind, size>>10), func(b *testing.B) { benchStreams(b, kind, size) })
		}
	}
}

func benchStreams(b *testing.B, kind string, size int) {
	addr, pid := startBenchServer(b, kind)
	c := dialBench(b, addr)
	msgs := []*extprocv3.ProcessingRequest{
		reqHeaders(metadata("a", "e", "allow"), true, ":method", "GET", ":path", "/e", "x-nonce", "bench-nonce-0000000001"),
		respHeaders(false, ":status", "200", "content-type", "application/json", "content-length", strconv.Itoa(size)),
		respBody(strings.Repeat("x", size), true),
	}
	runStream(b, c, msgs) // warm up the connection and the server
	t0, _ := cpuTicks(pid)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		runStream(b, c, msgs)
	}
	b.StopTimer()
	t1, _ := cpuTicks(pid)
	const tick = 10_000 // µs per clock tick (USER_HZ 100)
	b.ReportMetric(float64((t1-t0)*tick)/float64(b.N), "server-µs/stream")
}

func dialBench(b *testing.B, addr string) extprocv3.ExternalProcessorClient {
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cc.Close() })
	return extprocv3.NewExternalProcessorClient(cc)
}

// runStream sends msgs on one stream, each after the answer to the one before, as
// Envoy does, then ends the stream.
func runStream(b *testing.B, c extprocv3.ExternalProcessorClient, msgs []*extprocv3.ProcessingRequest) {
	s, err := c.Process(b.Context())
	if err != nil {
		b.Fatal(err)
	}
	for _, m := range msgs {
		if err := s.Send(m); err != nil {
			b.Fatal(err)
		}
		if _, err := s.Recv(); err != nil {
			b.Fatal(err)
		}
	}
	s.CloseSend()
	if _, err := s.Recv(); !errors.Is(err, io.EOF) {
		b.Fatal(err)
	}
}
