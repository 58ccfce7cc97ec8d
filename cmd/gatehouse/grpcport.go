package main

import (
	"fmt"
	"path/filepath"
	"sync"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/gatehouse/gatehouse/config"
	"github.com/gatehouse/gatehouse/extauthz"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
)

// Why /readyz fails. Fixed texts: a reason never echoes the configuration or an error
// (the log has the details).
const (
	reasonLoading   = "not ready: loading the configuration"
	reasonNoConfig  = "not ready: no valid configuration loaded yet (the file cannot be read or is not valid; the log says why); it is loaded again when the file changes and on SIGHUP"
	reasonPort      = "not ready: the configuration loaded but the gRPC port could not be opened with its server.tls (the log says why); it is tried again when the file changes and on SIGHUP"
	reasonDraining  = "not ready: draining"
	reasonStoreOpen = "not ready: the counter store named by the configuration could not be opened (the log says why); it is tried again when the file changes and on SIGHUP"
	reasonStore     = "not ready: the counter store does not answer (the log says why); calls meanwhile get their fail mode"
)

// grpcPort is the gRPC listener. It opens with the first configuration that loads,
// with that configuration's server.tls, and never changes after: a port meant for TLS
// never serves in plaintext, and one that has not read its configuration yet does not
// listen at all.
type grpcPort struct {
	mu     sync.Mutex
	srv    *grpc.Server // nil until open
	closed bool         // stopping: never opened any more
	// errc receives the first error of a port that stops serving (admin or gRPC) or of a
	// gRPC address that cannot be listened on: it stops the server.
	errc chan error
}

// fail reports err on errc unless an error is there already.
func (p *grpcPort) fail(err error) {
	select {
	case p.errc <- err:
	default:
	}
}

// shut marks the port as stopping and returns its server, nil when it never opened.
func (p *grpcPort) shut() *grpc.Server {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	return p.srv
}

// loaded follows every load attempt, one at a time, once a good snapshot is in force:
//  1. a failed load changes nothing once the port is open (the previous configuration
//     keeps serving); before, it says why the server is not ready;
//  2. the first good load opens the counter store and the verdict cache it names
//     (openRuntime), then the gRPC port with its server.tls;
//  3. a later good load that changes server.tls says that it waits for a restart.
func (s *server) loaded(snap *config.Snapshot, err error) {
	s.onLoad(snap, err)
	s.port.mu.Lock()
	defer s.port.mu.Unlock()
	switch {
	case s.port.closed:
		return
	case err != nil:
		if s.port.srv == nil {
			s.setReady(reasonNoConfig)
		}
		return
	case s.port.srv != nil:
		s.warnTLSChanged(snap)
	default:
		if s.counters.Load() == nil {
			if snap, err = s.openRuntime(snap); err != nil {
				return // openRuntime said why
			}
		}
		if err := s.openGRPC(snap); err != nil {
			s.log.Error("the gRPC port did not open: not ready", "error", err.Error())
			s.setReady(reasonPort)
			return
		}
	}
	s.setReady("")
}

// openGRPC sets up the access settings of snap's server.tls, listens and serves. The
// caller holds s.port.mu. A failure to listen (the address is taken) stops the server
// as it did at start; TLS files that do not load leave it not ready until a reload.
func (s *server) openGRPC(snap *config.Snapshot) error {
	if err := s.setupAccess(config.TLSFromFile(snap.File, filepath.Dir(snap.Path))); err != nil {
		return err
	}
	l, err := listen(s.flags.grpcAddr)
	if err != nil {
		s.port.fail(err)
		return err
	}
	opts := append(append(grpcOptions(), s.tracing.ServerOptions()...), s.access.serverOptions()...)
	srv := grpc.NewServer(opts...)
	healthpb.RegisterHealthServer(srv, s.health)
	reflection.Register(srv)
	authv3.RegisterAuthorizationServer(srv, extauthz.NewServer(s.rules, extauthz.Options{
		Observer: newObserver(s.metrics, s.log, s.flags.allowSample, s.flags.denialLogs), Log: s.log, Tracing: s.decisions}))
	s.registerRLS(srv)
	s.registerExtProc(srv)
	s.port.srv = srv
	go func() {
		if err := srv.Serve(l); err != nil {
			s.port.fail(fmt.Errorf("grpc: %w", err))
		}
	}()
	s.log.Info("gatehouse listening", "grpc", l.Addr().String(), "admin", s.adminAddr, "tls", s.access.tls != nil, "version", version)
	return nil
}
