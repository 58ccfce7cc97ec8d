package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// lines returns the JSON log records whose msg is msg.
func (s *syncBuffer) records(msg string) []map[string]any {
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(s.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil && m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// testServer is Gatehouse started through run, as main starts it, on loopback ports.
type testServer struct {
	grpcAddr, adminAddr string
	out                 *syncBuffer
	cancel              context.CancelFunc
	done                chan error
	conn                *grpc.ClientConn
	auth                authv3.AuthorizationClient
}

// TestMain lets the test binary stand in for the gatehouse binary: with
// GATEHOUSE_TEST_MAIN=1 it runs main's run and exits, so tests can start real server
// processes (startProcess) without building anything.
func TestMain(m *testing.M) {
	if os.Getenv("GATEHOUSE_TEST_MAIN") == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
		err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// --drain-delay 0: a test that stops a server does not wait for load balancers.
var serveArgs = []string{"serve", "--grpc-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--drain-timeout", "2s", "--drain-delay", "0"}

// startServer runs `gatehouse serve` with args plus loopback listeners in this process,
// waits until it listens, and stops it when the test ends.
func startServer(t testing.TB, args ...string) *testServer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &testServer{out: &syncBuffer{}, cancel: cancel, done: make(chan error, 1)}
	full := append(append([]string{}, serveArgs...), args...)
	go func() { s.done <- run(ctx, full, strings.NewReader(""), s.out, s.out) }()
	s.await(t)
	return s
}

// startProcess runs `gatehouse serve` as a separate process (this test binary, see
// TestMain), as a replica in production would run, and stops it with SIGTERM.
func startProcess(t testing.TB, args ...string) *testServer {
	t.Helper()
	s := &testServer{out: &syncBuffer{}, done: make(chan error, 1)}
	cmd := exec.Command(os.Args[0], append(append([]string{}, serveArgs...), args...)...)
	cmd.Env = append(os.Environ(), "GATEHOUSE_TEST_MAIN=1")
	cmd.Stdout, cmd.Stderr = s.out, s.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.cancel = func() { cmd.Process.Signal(syscall.SIGTERM) }
	go func() { s.done <- cmd.Wait() }()
	s.await(t)
	return s
}

// await waits until the server logs its listeners, then connects a client.
func (s *testServer) await(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second) // only a hung start takes this long
	for {
		if recs := s.out.records("gatehouse listening"); len(recs) > 0 {
			s.grpcAddr, _ = recs[0]["grpc"].(string)
			s.adminAddr, _ = recs[0]["admin"].(string)
			break
		}
		select {
		case err := <-s.done:
			t.Fatalf("server exited before listening: %v\n%s", err, s.out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("server did not start in time:\n%s", s.out)
		}
		time.Sleep(10 * time.Millisecond)
	}
	conn, err := grpc.NewClient(s.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	s.conn = conn
	s.auth = authv3.NewAuthorizationClient(conn)
	t.Cleanup(func() { s.stop(t) })
}

func (s *testServer) stop(t testing.TB) {
	if s.cancel == nil {
		return
	}
	s.conn.Close()
	s.cancel()
	s.cancel = nil
	select {
	case err := <-s.done:
		if err != nil {
			t.Errorf("server returned %v", err)
		}
	case <-time.After(60 * time.Second): // only a hung stop takes this long, even with -race on a loaded machine
		t.Errorf("server did not stop within 60s")
	}
}

// waitReady polls /readyz until it answers 200.
func (s *testServer) waitReady(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second) // only a hung server takes this long
	for time.Now().Before(deadline) {
		if s.get(t, "/readyz") == http.StatusOK {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("server not ready:\n%s", s.out)
}

func (s *testServer) get(t testing.TB, path string) int {
	resp, err := http.Get("http://" + s.adminAddr + path)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func (s *testServer) body(t testing.TB, path string) string {
	t.Helper()
	resp, err := http.Get("http://" + s.adminAddr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return b.String()
}

// request describes an HTTP request as a client sends it to Envoy.
type request struct {
	method  string
	path    string
	headers map[string]string
	ext     map[string]string
	body    string
	partial bool
	source  string
}

// envoyRequest shapes a CheckRequest as Envoy sends it: lower-case headers including
// pseudo-headers, the path with its query, the body when with_request_body is on.
func envoyRequest(r request) *authv3.CheckRequest {
	if r.method == "" {
		r.method = "GET"
	}
	if r.source == "" {
		r.source = "10.1.2.3"
	}
	h := map[string]string{":method": r.method, ":path": r.path, ":authority": "api.example.com", ":scheme": "https",
		"user-agent": "demo-app/1.0", "x-request-id": "req-1", "x-forwarded-proto": "https"}
	for k, v := range r.headers {
		h[strings.ToLower(k)] = v
	}
	if r.partial {
		h["x-envoy-auth-partial-body"] = "true"
	}
	hr := &authv3.AttributeContext_HttpRequest{Id: "req-1", Method: r.method, Path: r.path, Host: "api.example.com",
		Scheme: "https", Protocol: "HTTP/2", Headers: h, Size: -1}
	if r.body != "" {
		hr.Body = r.body
		hr.Size = int64(len(r.body))
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: r.source, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 51234}}}}},
		Destination:       &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{Address: "10.9.9.9", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 8080}}}}},
		Request:           &authv3.AttributeContext_Request{Time: nil, Http: hr},
		ContextExtensions: r.ext,
	}}
}

func (s *testServer) check(t testing.TB, r request) (*authv3.CheckResponse, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.auth.Check(ctx, envoyRequest(r))
}

// headerValue returns a header of a list of options.
func headerValue(hs []*corev3.HeaderValueOption, k string) (string, bool) {
	for _, h := range hs {
		if h.GetHeader().GetKey() == k {
			return h.GetHeader().GetValue(), true
		}
	}
	return "", false
}

func describe(resp *authv3.CheckResponse) string {
	if resp == nil {
		return "<nil>"
	}
	if d := resp.GetDeniedResponse(); d != nil {
		return fmt.Sprintf("denied %d %s", d.GetStatus().GetCode(), d.GetBody())
	}
	return fmt.Sprintf("allowed %v", resp.GetOkResponse().GetHeaders())
}
