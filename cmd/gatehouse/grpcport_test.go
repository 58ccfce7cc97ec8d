package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/gatehouse/gatehouse/config"
	"github.com/gatehouse/gatehouse/telemetry"
	"google.golang.org/grpc/health"
)

// newPortServer is a server set up as serve does, with the admin side's readiness and
// health but no listener yet, on a free gRPC address.
func newPortServer(t *testing.T) *server {
	t.Helper()
	s := &server{flags: &serveFlags{grpcAddr: freeAddr(t), adminAddr: "127.0.0.1:0"}, level: new(slog.LevelVar), metrics: telemetry.NewMetrics()}
	s.log = telemetry.NewLogger(io.Discard, s.level)
	t.Cleanup(s.close)
	if err := s.setup(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.health = health.NewServer()
	s.port.errc = make(chan error, 1)
	s.setReady(reasonLoading)
	t.Cleanup(func() {
		if srv := s.port.shut(); srv != nil {
			srv.Stop()
		}
	})
	return s
}

// TestPortWaitsForTLSFiles: when the TLS files of a configuration that loaded do not
// load when the port opens (a key removed in between), the port stays closed and the
// server not ready, saying why; the next load opens it with TLS, and a failed load after
// that changes nothing.
func TestPortWaitsForTLSFiles(t *testing.T) {
	s := newPortServer(t)
	p := newPKI(t)
	path := writeConfig(t, t.TempDir(), "server:\n  tls: {cert_file: "+filepath.Join(p.dir, "tls.crt")+", key_file: "+filepath.Join(p.dir, "tls.key")+"}\n"+plainTestConfig)
	snap, err := config.Load(path, s.deps)
	if err != nil {
		t.Fatal(err)
	}
	s.store.Set(snap)
	// The store opens with the first configuration that loads, which compiles it again:
	// open it here, so that the key goes missing between that and the port opening.
	if snap, err = s.openRuntime(snap); err != nil {
		t.Fatal(err)
	}
	key, _ := os.ReadFile(filepath.Join(p.dir, "tls.key"))
	os.Remove(filepath.Join(p.dir, "tls.key"))

	s.loaded(snap, nil)
	if got := *s.notReady.Load(); got != reasonPort {
		t.Fatalf("not ready %q, want %q", got, reasonPort)
	}
	if !refused(s.flags.grpcAddr) {
		t.Fatal("the port opened without its TLS files")
	}
	writeFile(t, filepath.Join(p.dir, "tls.key"), key)
	s.loaded(snap, nil)
	if got := *s.notReady.Load(); got != "" {
		t.Fatalf("not ready %q after the key came back", got)
	}
	if err := healthOn(dialTLS(t, s.flags.grpcAddr, p.ca, nil, "")); err != nil {
		t.Fatalf("TLS health: %v", err)
	}
	s.loaded(nil, errors.New("a bad file"))
	if got := *s.notReady.Load(); got != "" {
		t.Fatalf("a failed reload made the server not ready: %q", got)
	}
	select {
	case err := <-s.port.errc:
		t.Fatalf("port error %v", err)
	default:
	}
}

// TestPortAddressTaken: a gRPC address that cannot be listened on stops the server (as
// it did at start), rather than leaving it up and never ready.
func TestPortAddressTaken(t *testing.T) {
	s := newPortServer(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	s.flags.grpcAddr = l.Addr().String()
	snap, err := config.LoadBytes(config.Demo, config.DemoPath, s.deps)
	if err != nil {
		t.Fatal(err)
	}
	s.store.Set(snap)
	s.loaded(snap, nil)
	select {
	case err := <-s.port.errc:
		if err == nil {
			t.Fatal("nil error")
		}
	default:
		t.Fatal("a taken address did not stop the server")
	}
	if got := *s.notReady.Load(); got == "" {
		t.Fatal("ready without a gRPC port")
	}
}
