package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/gatehouse/gatehouse/config"
	"github.com/gatehouse/gatehouse/extauthz"
	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/ratelimit"
	"github.com/gatehouse/gatehouse/telemetry"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
)

type serveFlags struct {
	config        string
	traceParent   string
	deviceKeyFile string
	allowSample   float64
	adminToken    string
	grpcAddr      string
	adminAddr     string
	drainTimeout  time.Duration
	drainDelay    time.Duration
	pprof         bool
}

func parseServeFlags(args []string, stderr io.Writer) (*serveFlags, error) {
	f := &serveFlags{}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.config, "config", "", "configuration file; without it the embedded demo configuration runs")
	fs.StringVar(&f.grpcAddr, "grpc-addr", ":9191", "gRPC listen address (host:port, or unix:///path/to.sock)")
	fs.StringVar(&f.adminAddr, "admin-addr", ":9192", "admin HTTP listen address (/healthz, /readyz, /metrics)")
	fs.DurationVar(&f.drainTimeout, "drain-timeout", 15*time.Second, "on SIGTERM, how long in-flight calls may take before a hard stop")
	fs.DurationVar(&f.drainDelay, "drain-delay", 0, "on SIGTERM, how long to keep serving while reporting NOT_SERVING, so load balancers move away first")
	fs.BoolVar(&f.pprof, "pprof", false, "serve /debug/pprof on the admin port")
	fs.StringVar(&f.traceParent, "trace-user-parent", "parent", "the end user's traceparent in the request: parent (when Envoy sent no trace context), link, or off")
	fs.StringVar(&f.deviceKeyFile, "device-hash-key-file", "", "key for the HMAC that stands for device ids in traces (default: random per process)")
	fs.StringVar(&f.adminToken, "admin-token-file", "", "file holding the bearer token that enables the admin write API (license resets, credit top-ups)")
	fs.Float64Var(&f.allowSample, "log-allow-sample", 0, "fraction of allowed decisions written to the decision log (denials always are)")
	if err := fs.Parse(args); err != nil {
		return nil, exitError(2)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "gatehouse serve: unexpected argument %q\n", fs.Arg(0))
		return nil, exitError(2)
	}
	if _, err := extauthz.ParseUserParent(f.traceParent); err != nil {
		fmt.Fprintf(stderr, "gatehouse serve: --trace-user-parent: %v\n", err)
		return nil, exitError(2)
	}
	if f.allowSample < 0 || f.allowSample > 1 {
		fmt.Fprintln(stderr, "gatehouse serve: --log-allow-sample must be between 0 and 1")
		return nil, exitError(2)
	}
	return f, nil
}

// server is one running Gatehouse: its listeners, its configuration and its telemetry.
type server struct {
	flags   *serveFlags
	log     *slog.Logger
	level   *slog.LevelVar
	metrics *telemetry.Metrics
	store   config.Store
	deps    config.Deps
	health  *health.Server
	grpc    *grpc.Server
	tracing *telemetry.Tracing
	ready   atomic.Bool
	closers []func()
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f, err := parseServeFlags(args, stderr)
	if err != nil {
		return err
	}
	s := &server{flags: f, level: new(slog.LevelVar), metrics: telemetry.NewMetrics()}
	s.log = telemetry.NewLogger(stdout, s.level)
	defer s.close()
	if err := s.setup(ctx); err != nil {
		return err
	}
	return s.run(ctx)
}

func (s *server) close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
}

// setup builds the long-lived parts and loads the first configuration:
//  1. read the cache budget from the file (the cache outlives every snapshot),
//  2. open the runtime dependencies (counter store),
//  3. load and compile the configuration; a bad file at start leaves the server up but
//     not ready, so that a fixed ConfigMap is picked up without a restart.
func (s *server) setup(ctx context.Context) error {
	// The start-up settings, read once from the file; a file that does not parse yet
	// gets the defaults (the first load reports why).
	budget := int64(64 << 20)
	var store ratelimit.StoreConfig
	if s.flags.config != "" {
		if data, err := config.ReadFile(s.flags.config, config.MaxConfigBytes); err == nil {
			if f, err := config.Parse(data); err == nil {
				if f.Server.CacheMaxBytes > 0 {
					budget = f.Server.CacheMaxBytes
				}
				store = config.StoreFromFile(f, filepath.Dir(s.flags.config))
			}
		}
	}
	cache, err := policy.NewCache(budget)
	if err != nil {
		return fmt.Errorf("verdict cache: %w", err)
	}
	s.closers = append(s.closers, cache.Close)
	s.registerCacheMetrics(cache)
	if s.tracing, err = telemetry.SetupTracing(ctx, version); err != nil {
		return err
	}
	s.closers = append(s.closers, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.tracing.Shutdown(ctx)
	})
	rlm := ratelimit.NewMetrics()
	s.metrics.Registry.MustRegister(rlm)
	rt, closeRT, err := openRuntime(ctx, store, s.log, rlm)
	if err != nil {
		return err
	}
	s.closers = append(s.closers, closeRT)
	s.deps = config.Deps{Cache: cache, Keys: config.NewKeySources(), Runtime: rt, OnJWKSFetch: s.metrics.JWKSFetched}
	s.closers = append(s.closers, s.deps.Keys.Close)
	return nil
}

func (s *server) registerCacheMetrics(c *policy.Cache) {
	s.metrics.CounterFunc("gatehouse_cache_hits_total", "Verdict cache hits.", func() float64 { return float64(c.Stats().Hits) })
	s.metrics.CounterFunc("gatehouse_cache_misses_total", "Verdict cache misses.", func() float64 { return float64(c.Stats().Misses) })
	s.metrics.CounterFunc("gatehouse_cache_evictions_total", "Verdict cache evictions.", func() float64 { return float64(c.Stats().Evictions) })
	s.metrics.GaugeFunc("gatehouse_cache_cost_bytes", "Estimated bytes held by the verdict cache.", func() float64 { return float64(c.Stats().Cost) })
}

// onLoad applies a freshly loaded snapshot's server-wide settings and reports the load.
func (s *server) onLoad(snap *config.Snapshot, err error) {
	if err != nil {
		s.metrics.Reloads.WithLabelValues("failure").Inc()
		return
	}
	s.level.Set(snap.LogLevel)
	s.metrics.ConfigLoadedAt(snap.Version, snap.LoadedAt)
	if snap.StoreChanged {
		s.log.Warn("the store section changed: the running store stays until a restart")
	}
}

func (s *server) rules() *policy.Rules {
	if snap := s.store.Current(); snap != nil {
		return snap.Rules
	}
	return nil
}

// run serves until ctx ends, then drains:
//  1. health reports NOT_SERVING and /readyz fails, so Envoy and Kubernetes move away,
//  2. after --drain-delay, GracefulStop lets in-flight calls finish,
//  3. after --drain-timeout, whatever is left is cut.
func (s *server) run(ctx context.Context) error {
	gl, err := listen(s.flags.grpcAddr)
	if err != nil {
		return err
	}
	al, err := net.Listen("tcp", s.flags.adminAddr)
	if err != nil {
		gl.Close()
		return fmt.Errorf("admin listener: %w", err)
	}
	s.grpc = grpc.NewServer(append(grpcOptions(), s.tracing.ServerOptions()...)...)
	s.health = health.NewServer()
	healthpb.RegisterHealthServer(s.grpc, s.health)
	reflection.Register(s.grpc)
	tr, err := s.decisionTracing()
	if err != nil {
		gl.Close()
		al.Close()
		return err
	}
	authv3.RegisterAuthorizationServer(s.grpc, extauthz.NewServer(s.rules, extauthz.Options{
		Observer: &observer{m: s.metrics, log: s.log, allowSample: s.flags.allowSample}, Log: s.log, Tracing: tr}))
	s.registerRLS(s.grpc)
	s.setServing(false)

	mux := s.adminMux()
	if s.flags.adminToken != "" {
		a, err := newAdmin(s, s.flags.adminToken)
		if err != nil {
			gl.Close()
			al.Close()
			return err
		}
		a.register(mux)
	}
	admin := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 2)
	go func() { errc <- s.grpc.Serve(gl) }()
	go func() {
		if err := admin.Serve(al); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	}()
	s.log.Info("gatehouse listening", "grpc", gl.Addr().String(), "admin", al.Addr().String(), "version", version)

	// Watch before the first load, so that no change (or SIGHUP) between the two is lost.
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	s.watch(wctx)
	s.loadInitial()

	select {
	case <-ctx.Done():
	case err := <-errc:
		s.grpc.Stop()
		admin.Close()
		return fmt.Errorf("serve: %w", err)
	}
	return s.drain(admin)
}

// decisionTracing configures decision spans, or returns nil when tracing is off.
func (s *server) decisionTracing() (*extauthz.Tracing, error) {
	if !s.tracing.Enabled {
		return nil, nil
	}
	mode, _ := extauthz.ParseUserParent(s.flags.traceParent)
	key := make([]byte, 32)
	if s.flags.deviceKeyFile != "" {
		b, err := os.ReadFile(s.flags.deviceKeyFile)
		if err != nil || len(b) < 16 {
			return nil, fmt.Errorf("--device-hash-key-file: need a readable file of at least 16 bytes")
		}
		key = b
	} else if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	return extauthz.NewTracing(s.tracing.Provider.Tracer("github.com/gatehouse/gatehouse/extauthz"),
		s.tracing.Propagator, mode, key), nil
}

func (s *server) loadInitial() {
	var snap *config.Snapshot
	var err error
	if s.flags.config == "" {
		snap, err = config.LoadBytes(config.Demo, config.DemoPath, s.deps)
		if err == nil {
			s.store.Set(snap)
			s.log.Info("running the embedded demo configuration", "version", snap.Version)
		}
		s.onLoad(snap, err)
	} else {
		r := s.reloader()
		err = r.Reload()
	}
	if err != nil {
		s.log.Error("no valid configuration yet: not ready", "error", err.Error())
		return
	}
	s.setServing(true)
}

func (s *server) reloader() *config.Reloader {
	return &config.Reloader{Path: s.flags.config, Deps: s.deps, Store: &s.store, Log: s.log,
		OnReload: func(snap *config.Snapshot, err error) {
			s.onLoad(snap, err)
			if err == nil {
				s.setServing(true)
			}
		}}
}

// watch reloads on file changes and on SIGHUP.
func (s *server) watch(ctx context.Context) {
	if s.flags.config == "" {
		return
	}
	r := s.reloader()
	go func() {
		if err := r.Watch(ctx, 250*time.Millisecond); err != nil {
			s.log.Error("configuration watch stopped; reload with SIGHUP", "error", err.Error())
		}
	}()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				s.log.Info("SIGHUP: reloading configuration")
				_ = r.Reload()
			}
		}
	}()
}

func (s *server) setServing(ok bool) {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if ok {
		st = healthpb.HealthCheckResponse_SERVING
	}
	s.ready.Store(ok)
	s.health.SetServingStatus("", st)
	s.health.SetServingStatus("gatehouse", st)
}

func (s *server) drain(admin *http.Server) error {
	s.log.Info("stopping: draining in-flight calls", "delay", s.flags.drainDelay.String(), "timeout", s.flags.drainTimeout.String())
	s.setServing(false)
	s.health.Shutdown()
	time.Sleep(s.flags.drainDelay)
	done := make(chan struct{})
	go func() { s.grpc.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(s.flags.drainTimeout):
		s.log.Warn("drain timeout: cutting remaining calls")
		s.grpc.Stop()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = admin.Shutdown(ctx)
	s.log.Info("stopped")
	return nil
}

func (s *server) adminMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !s.ready.Load() {
			http.Error(w, "not ready: no valid configuration loaded, or draining", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok\n")
	})
	mux.Handle("GET /metrics", s.metrics.Handler())
	mux.HandleFunc("GET /loglevel", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, s.level.Level()) })
	mux.HandleFunc("PUT /loglevel", func(w http.ResponseWriter, r *http.Request) {
		// Until the next configuration load, which applies server.log_level again.
		var l slog.Level
		if err := l.UnmarshalText([]byte(r.URL.Query().Get("level"))); err != nil {
			http.Error(w, "level must be debug, info, warn or error", http.StatusBadRequest)
			return
		}
		s.level.Set(l)
		s.log.Info("log level changed", "level", l.String())
		fmt.Fprintln(w, l)
	})
	if s.flags.pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// listen opens a TCP or Unix-socket listener (unix:///path); a stale socket file left by
// a crash is removed first.
func listen(addr string) (net.Listener, error) {
	if p, ok := strings.CutPrefix(addr, "unix://"); ok {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("grpc listener: %w", err)
		}
		l, err := net.Listen("unix", p)
		if err != nil {
			return nil, fmt.Errorf("grpc listener: %w", err)
		}
		return l, nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("grpc listener: %w", err)
	}
	return l, nil
}

// grpcOptions suit Envoy as a client: long-lived HTTP/2 connections with many concurrent
// streams, Envoy's keepalive pings allowed, dead peers detected.
func grpcOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		// Long-lived workers keep their grown stacks: a call that finds every worker busy
		// runs on a fresh goroutine, which grows (copies) its stack again. A call waiting
		// on Redis holds its worker, so there are enough for a few dozen calls in flight
		// per core (an idle worker costs only its stack).
		grpc.NumStreamWorkers(uint32(32 * runtime.GOMAXPROCS(0))),
		grpc.MaxConcurrentStreams(2048),
		grpc.MaxRecvMsgSize(8 << 20), // with_request_body can carry a few MiB
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
	}
}
