package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// The configuration of the start tests without server.tls.
const plainTestConfig = `
apps:
  - name: acc
    app_token_sha256: ["{{T:acc}}"]
    endpoints: ["*"]
endpoints:
  - {name: api, path: /v1/api}
`

// A marker in the bad files: /readyz must never show it.
const configMarker = "s3cr3t-marker-in-the-file"

// freeAddr returns a loopback address nothing listens on (the port was free a moment ago).
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// startAdmin runs `gatehouse serve` in this process (or as a separate process) and
// waits only for the admin port: the gRPC port may not be open yet.
func startAdmin(t *testing.T, process bool, args ...string) *testServer {
	t.Helper()
	s := &testServer{out: &syncBuffer{}, done: make(chan error, 1)}
	full := append(append([]string{}, serveArgs...), args...)
	if process {
		cmd := exec.Command(os.Args[0], full...)
		cmd.Env = append(os.Environ(), "GATEHOUSE_TEST_MAIN=1")
		cmd.Stdout, cmd.Stderr = s.out, s.out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		s.cancel = func() { cmd.Process.Signal(syscall.SIGTERM) }
		go func() { s.done <- cmd.Wait() }()
	} else {
		ctx, cancel := context.WithCancel(context.Background())
		s.cancel = cancel
		go func() { s.done <- run(ctx, full, strings.NewReader(""), s.out, s.out) }()
	}
	waitUntil(t, "the admin port", func() bool {
		select {
		case err := <-s.done:
			t.Fatalf("server exited: %v\n%s", err, s.out)
		default:
		}
		recs := s.out.records("admin listening")
		if len(recs) == 0 {
			return false
		}
		s.adminAddr, _ = recs[0]["admin"].(string)
		return true
	})
	// A client that never dials unless used, so that stop can close it.
	conn, err := grpc.NewClient("127.0.0.1:1", grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	s.conn = conn
	t.Cleanup(func() { s.stop(t) })
	return s
}

// awaitGRPC waits for the gRPC port to open and connects a plaintext client to it.
func (s *testServer) awaitGRPC(t *testing.T) {
	t.Helper()
	waitUntil(t, "the gRPC port to open", func() bool { return len(s.out.records("gatehouse listening")) > 0 })
	s.grpcAddr, _ = s.out.records("gatehouse listening")[0]["grpc"].(string)
	s.conn.Close()
	conn, err := grpc.NewClient(s.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	s.conn, s.auth = conn, authv3.NewAuthorizationClient(conn)
}

// readyz returns /readyz's status and body.
func (s *testServer) readyz(t *testing.T) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + s.adminAddr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// refused reports whether a TCP connection to addr is refused (nothing listens).
func refused(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return true
	}
	c.Close()
	return false
}

// replaceConfig renders cfg (see writeConfig) and renames it over path, as a ConfigMap
// update or an editor would.
func replaceConfig(t *testing.T, path, cfg string) {
	t.Helper()
	staged := writeConfig(t, t.TempDir(), cfg)
	if err := os.Rename(staged, path); err != nil {
		t.Fatal(err)
	}
}

// TestStartWithoutValidConfig: a server started on a file it cannot use stays up (admin
// /healthz 200), is not ready (/readyz 503 saying why, never what the file holds) and
// keeps the gRPC port closed; once a valid file is written, the gRPC port opens with that
// file's server.tls: TLS when set, plaintext otherwise. A later reload that changes
// server.tls leaves the port as it is and says a restart is needed.
func TestStartWithoutValidConfig(t *testing.T) {
	p := newPKI(t)
	tlsSection := "server:\n  tls: {cert_file: " + filepath.Join(p.dir, "tls.crt") + ", key_file: " + filepath.Join(p.dir, "tls.key") + "}\n"
	tlsConfig := tlsSection + plainTestConfig
	bad := map[string]string{
		"not YAML":         "server: {tls: [\n# " + configMarker + "\n",
		"YAML aliases":     "a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b, " + configMarker + "]\n",
		"TLS key missing":  "server:\n  tls: {cert_file: " + filepath.Join(p.dir, "tls.crt") + ", key_file: " + filepath.Join(p.dir, "none.key") + "}\n" + plainTestConfig + "# " + configMarker + "\n",
		"invalid":          "apps: [{name: " + configMarker + "}]\n",
		"unknown key":      "server: {" + configMarker + ": 1}\n",
		"missing file":     "",
		"unreadable shape": "- " + configMarker + "\n",
	}
	cases := []struct {
		bad, good string
		tls       bool
		process   bool
	}{
		{bad: "not YAML", good: tlsConfig, tls: true, process: true},
		{bad: "YAML aliases", good: plainTestConfig},
		{bad: "TLS key missing", good: tlsConfig, tls: true},
		{bad: "invalid", good: plainTestConfig},
		{bad: "unknown key", good: tlsConfig, tls: true},
		{bad: "missing file", good: plainTestConfig, process: true},
		{bad: "unreadable shape", good: tlsConfig, tls: true},
	}
	for _, c := range cases {
		name := c.bad + " then plaintext"
		if c.tls {
			name = c.bad + " then TLS"
		}
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "config.yaml")
			if bad[c.bad] != "" {
				if err := os.WriteFile(path, []byte(bad[c.bad]), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			grpcAddr := freeAddr(t)
			srv := startAdmin(t, c.process, "--config", path, "--grpc-addr", grpcAddr)
			waitUntil(t, "the rejection to be logged", func() bool { return len(srv.out.records("no valid configuration yet: not ready")) > 0 })
			if code := srv.get(t, "/healthz"); code != http.StatusOK {
				t.Fatalf("/healthz %d, want 200", code)
			}
			code, body := srv.readyz(t)
			if code != http.StatusServiceUnavailable || !strings.Contains(body, "no valid configuration") || strings.Contains(body, configMarker) {
				t.Fatalf("/readyz %d %q, want 503 saying why without the file's content", code, body)
			}
			if !refused(grpcAddr) {
				t.Fatal("the gRPC port listens before a configuration loaded")
			}

			replaceConfig(t, path, c.good)
			waitUntil(t, "ready after the fix", func() bool { return srv.get(t, "/readyz") == http.StatusOK })
			srv.awaitGRPC(t)
			if srv.grpcAddr != grpcAddr {
				t.Fatalf("gRPC on %s, want %s", srv.grpcAddr, grpcAddr)
			}
			checkTransport(t, srv, p, c.tls)

			// A reload that changes server.tls keeps the port as it is.
			next := tlsConfig
			if c.tls {
				next = plainTestConfig
			}
			replaceConfig(t, path, next)
			waitUntil(t, "the server.tls change to be reported", func() bool {
				return len(srv.out.records("the server.tls section changed: the running TLS settings stay until a restart (the certificate files themselves are re-read when they change)")) > 0
			})
			checkTransport(t, srv, p, c.tls)
		})
	}
}

// checkTransport checks that the gRPC port serves Check in TLS (trusting p's CA) and
// refuses plaintext, or the other way round.
func checkTransport(t *testing.T, srv *testServer, p *pki, wantTLS bool) {
	t.Helper()
	tlsResp, tlsErr := checkOn(dialTLS(t, srv.grpcAddr, p.ca, nil, ""))
	plainResp, plainErr := checkOn(srv.conn)
	served, refusedConn := tlsResp, plainErr
	if !wantTLS {
		served, refusedConn = plainResp, tlsErr
	}
	if served.GetOkResponse() == nil {
		t.Fatalf("Check (tls=%v): TLS %v %s, plaintext %v %s", wantTLS, tlsErr, describe(tlsResp), plainErr, describe(plainResp))
	}
	if status.Code(refusedConn) != codes.Unavailable {
		t.Fatalf("the other transport (tls=%v): %v, want Unavailable", !wantTLS, refusedConn)
	}
}

// TestStartRetriedOnSIGHUP: a configuration whose TLS key is not there yet is retried
// on SIGHUP, with no change to the file itself; the port then opens speaking TLS.
func TestStartRetriedOnSIGHUP(t *testing.T) {
	p := newPKI(t)
	key := filepath.Join(t.TempDir(), "tls.key")
	path := writeConfig(t, t.TempDir(), "server:\n  tls: {cert_file: "+filepath.Join(p.dir, "tls.crt")+", key_file: "+key+"}\n"+plainTestConfig)
	grpcAddr := freeAddr(t)
	srv := startAdmin(t, false, "--config", path, "--grpc-addr", grpcAddr)
	waitUntil(t, "the rejection to be logged", func() bool { return len(srv.out.records("no valid configuration yet: not ready")) > 0 })
	if code, body := srv.readyz(t); code != http.StatusServiceUnavailable || strings.Contains(body, key) {
		t.Fatalf("/readyz %d %q", code, body)
	}
	if !refused(grpcAddr) {
		t.Fatal("the gRPC port listens before a configuration loaded")
	}
	data, err := os.ReadFile(filepath.Join(p.dir, "tls.key"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, key, data)
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "ready after SIGHUP", func() bool { return srv.get(t, "/readyz") == http.StatusOK })
	srv.awaitGRPC(t)
	checkTransport(t, srv, p, true)
}
