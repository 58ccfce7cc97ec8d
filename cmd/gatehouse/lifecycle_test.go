package main

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/config"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second) // only a hung server takes this long
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestNotReadyUntilGoodConfig: a server started on a bad file stays up and not ready,
// without a gRPC port, and becomes ready when the file is fixed, without a restart.
// SIGHUP reloads.
func TestNotReadyUntilGoodConfig(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte("apps: [{name: broken}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := startAdmin(t, false, "--config", path)
	waitUntil(t, "the rejection to be logged", func() bool { return len(srv.out.records("no valid configuration yet: not ready")) > 0 })
	if code := srv.get(t, "/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("readyz %d with a bad config", code)
	}
	if code := srv.get(t, "/healthz"); code != http.StatusOK {
		t.Fatalf("healthz %d with a bad config", code)
	}

	if err := os.WriteFile(path, config.Demo, 0o644); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "ready after the fix", func() bool { return srv.get(t, "/readyz") == http.StatusOK })
	srv.awaitGRPC(t)
	hc := healthpb.NewHealthClient(srv.conn)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if r, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "gatehouse"}); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health %v %v after the fix", r, err)
	}
	resp, err := srv.check(t, request{path: "/v1/hello", headers: map[string]string{"x-app-token": "demo-app-token"}})
	if err != nil || resp.GetOkResponse() == nil {
		t.Fatalf("after fix: %v %s", err, describe(resp))
	}

	before := len(srv.out.records("configuration loaded"))
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "a reload on SIGHUP", func() bool { return len(srv.out.records("configuration loaded")) > before })
}

// TestGracefulStop: on shutdown health turns NOT_SERVING and run returns cleanly.
func TestGracefulStop(t *testing.T) {
	srv := startServer(t, "--demo")
	srv.waitReady(t)
	hc := healthpb.NewHealthClient(srv.conn)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	stream, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{Service: "gatehouse"})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := stream.Recv(); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("initial health %v %v", r, err)
	}
	srv.cancel()
	r, err := stream.Recv()
	if err != nil || r.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("health during drain %v %v", r, err)
	}
	select {
	case err := <-srv.done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second): // only a hung stop takes this long
		t.Fatal("no stop")
	}
	srv.cancel = nil
	srv.conn.Close()
}
