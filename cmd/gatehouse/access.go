package main

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"sync/atomic"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/gatehouse/gatehouse/config"
	"github.com/gatehouse/gatehouse/extauthz"
	"github.com/gatehouse/gatehouse/grpcauth"
	"github.com/gatehouse/gatehouse/policy"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// access is the gRPC port's transport security: TLS from the server.tls of the
// configuration that opened the port, and the allow-lists' guard. Zero value: plaintext,
// every caller allowed.
type access struct {
	tls   *config.TLS // as the port opened with it; nil: plaintext
	certs *grpcauth.Certs
	guard *grpcauth.Guard
}

// setupAccess loads the TLS files and compiles the allow-lists of t (nil: plaintext).
func (s *server) setupAccess(t *config.TLS) error {
	if t == nil {
		return nil
	}
	certs, err := grpcauth.Load(t.Files(), s.log)
	if err != nil {
		return fmt.Errorf("server.tls: %w", err)
	}
	allow, err := t.Lists()
	if err != nil {
		return fmt.Errorf("server.tls.allow: %w", err)
	}
	s.access = access{tls: t, certs: certs}
	if allow.Any() {
		refused := prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_grpc_refused_total",
			Help: "gRPC calls refused by the client allow-lists, by list (check, ratelimit, refunds, method).",
		}, []string{"list"})
		s.metrics.Registry.MustRegister(refused)
		s.access.guard = &grpcauth.Guard{Allow: allow, CheckRefusal: s.checkRefusal, OnRefuse: s.onRefuse(refused)}
	}
	s.log.Info("gRPC TLS on", "client_ca", t.ClientCAFile != "", "require_client_cert", t.RequireClientCert, "allow_lists", allow.Any())
	return nil
}

// serverOptions are the gRPC credentials and interceptors of the access settings.
func (a *access) serverOptions() []grpc.ServerOption {
	var opts []grpc.ServerOption
	if a.certs != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(a.certs.TLSConfig())))
	}
	if a.guard != nil {
		opts = append(opts, grpc.ChainUnaryInterceptor(a.guard.Unary), grpc.ChainStreamInterceptor(a.guard.Stream))
	}
	return opts
}

// checkRefusal answers a Check from a client not on the check list: a 403 FORBIDDEN
// denial in the default dialect. A denial rather than a gRPC error, because Envoy turns
// an error into an allow under failure_mode_allow.
func (s *server) checkRefusal() *authv3.CheckResponse {
	d := policy.Decision{Outcome: policy.Deny, Code: policy.Forbidden, Step: policy.StepApp}
	if snap := s.store.Current(); snap != nil {
		d.Dialect, _ = policy.ParseDialect(snap.File.Server.DefaultDialect)
	}
	return extauthz.ToResponse(&d, extauthz.NewDecisionID())
}

// onRefuse counts refused calls and logs at most one line every 10 seconds, naming the
// client by its verified certificate.
func (s *server) onRefuse(refused *prometheus.CounterVec) func(context.Context, string, string) {
	var last atomic.Int64
	return func(ctx context.Context, method, list string) {
		refused.WithLabelValues(list).Inc()
		now := time.Now().Unix()
		if prev := last.Load(); now-prev < 10 || !last.CompareAndSwap(prev, now) {
			return
		}
		client, addr := "none (no verified client certificate)", ""
		if leaf := grpcauth.Leaf(ctx); leaf != nil {
			switch {
			case len(leaf.URIs) > 0:
				client = leaf.URIs[0].String()
			case len(leaf.DNSNames) > 0:
				client = leaf.DNSNames[0]
			}
		}
		if p, ok := peer.FromContext(ctx); ok {
			addr = p.Addr.String()
		}
		s.log.Warn("gRPC call refused by the client allow-list (at most one line every 10s)", "method", method, "list", list, "client", client, "peer", addr)
	}
}

// warnTLSChanged says when a reload changes server.tls, which applies when the port
// opens, that is at the next restart.
func (s *server) warnTLSChanged(snap *config.Snapshot) {
	if snap.File == nil || s.flags.config == "" {
		return
	}
	now := config.TLSFromFile(snap.File, filepath.Dir(s.flags.config))
	if !reflect.DeepEqual(now, s.access.tls) {
		s.log.Warn("the server.tls section changed: the running TLS settings stay until a restart (the certificate files themselves are re-read when they change)")
	}
}
