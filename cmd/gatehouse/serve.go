package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gatehouse/gatehouse/config"
	"github.com/gatehouse/gatehouse/extauthz"
	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/ratelimit"
	"github.com/gatehouse/gatehouse/telemetry"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	"google.golang.org/grpc/keepalive"
)

type serveFlags struct {
	config        string
	demo          bool
	traceParent   string
	deviceKeyFile string
	allowSample   float64
	denialLogs    int
	adminToken    string
	grpcAddr      string
	adminAddr     string
	drainTimeout  time.Duration
	drainDelay    time.Duration
	pprof         bool
}

func parseServeFlags(args []string, stdout, stderr io.Writer) (*serveFlags, error) {
	f := &serveFlags{}
	fs := newFlags("serve", "serve [flags]\n\nRuns the ext_authz and rate-limit gRPC server and the admin port.")
	fs.StringVar(&f.config, "config", "", "configuration file (required unless --demo)")
	fs.BoolVar(&f.demo, "demo", false, "run the embedded demo configuration instead of a file; it trusts a public demo key: never in production")
	fs.StringVar(&f.grpcAddr, "grpc-addr", ":9191", "gRPC listen address (host:port, or unix:///path/to.sock)")
	fs.StringVar(&f.adminAddr, "admin-addr", ":9192", "admin HTTP listen address (/healthz, /readyz, /metrics)")
	fs.DurationVar(&f.drainTimeout, "drain-timeout", 15*time.Second, "on SIGTERM, how long in-flight calls may take before a hard stop")
	fs.DurationVar(&f.drainDelay, "drain-delay", defaultDrainDelay, "on SIGTERM, how long to keep serving while reporting NOT_SERVING, so load balancers move away first")
	fs.BoolVar(&f.pprof, "pprof", false, "serve /debug/pprof on the admin port")
	fs.StringVar(&f.traceParent, "trace-user-parent", "parent", "the end user's traceparent in the request: parent (when Envoy sent no trace context), link, or off")
	fs.StringVar(&f.deviceKeyFile, "device-hash-key-file", "", "key for the HMAC that stands for device ids in traces (default: random per process)")
	fs.StringVar(&f.adminToken, "admin-token-file", "", "file holding the bearer token that enables the admin write API (license resets, credit top-ups)")
	fs.Float64Var(&f.allowSample, "log-allow-sample", 0, "fraction of allowed decisions written to the decision log (denials are, within --log-denials-per-second)")
	fs.IntVar(&f.denialLogs, "log-denials-per-second", 10, "decision log lines per catalogue code and second for denials, errors and fail-open allows, and for sampled allows; the rest are counted in gatehouse_decision_logs_suppressed_total (0: no limit)")
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "gatehouse serve: unexpected argument %q\n", fs.Arg(0))
		return nil, exitError(2)
	}
	if err := checkConfigSource(f, stderr); err != nil {
		return nil, err
	}
	if _, err := extauthz.ParseUserParent(f.traceParent); err != nil {
		fmt.Fprintf(stderr, "gatehouse serve: --trace-user-parent: %v\n", err)
		return nil, exitError(2)
	}
	if f.denialLogs < 0 {
		fmt.Fprintln(stderr, "gatehouse serve: --log-denials-per-second must be 0 (no limit) or more")
		return nil, exitError(2)
	}
	if f.allowSample < 0 || f.allowSample > 1 {
		fmt.Fprintln(stderr, "gatehouse serve: --log-allow-sample must be between 0 and 1")
		return nil, exitError(2)
	}
	return f, nil
}

// defaultDrainDelay is the NOT_SERVING window on SIGTERM before new calls are refused:
// long enough for Kubernetes to take the pod out of its endpoints and for Envoy's
// health checks (and its connection pool) to move to other replicas.
const defaultDrainDelay = 5 * time.Second

// noConfig is what serve says when neither --config nor --demo is given.
const noConfig = `gatehouse serve: --config is required (a configuration file, e.g. /etc/gatehouse/config.yaml).
To try Gatehouse with the embedded demo configuration, which trusts a public demo key
and must never run in production: gatehouse serve --demo (or make run).
`

// checkConfigSource refuses a server that would run on nothing, or on two things: one
// of --config and --demo, never both, never neither.
func checkConfigSource(f *serveFlags, stderr io.Writer) error {
	switch {
	case f.demo && f.config != "":
		fmt.Fprintln(stderr, "gatehouse serve: --demo and --config exclude each other (the demo is a configuration of its own)")
		return exitError(2)
	case !f.demo && f.config == "":
		fmt.Fprint(stderr, noConfig)
		return exitError(2)
	}
	return nil
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
	tracing *telemetry.Tracing
	reload  *config.Reloader
	// reloader is reload for the admin port, which serves before watch sets it.
	reloader atomic.Pointer[config.Reloader]
	// decisions configures decision spans (nil: tracing is off).
	decisions *extauthz.Tracing
	// notReady is why /readyz fails; "" when ready.
	notReady atomic.Pointer[string]
	ready    readiness
	rlm      *ratelimit.Metrics
	// counters is the counter store once the first configuration opened it.
	counters atomic.Pointer[ratelimit.Store]
	// ctx is serve's: the store opens under it.
	ctx    context.Context
	port   grpcPort
	access access
	// adminAddr is the admin port's address once it listens.
	adminAddr string
	closers   []func()
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f, err := parseServeFlags(args, stdout, stderr)
	if err != nil {
		return err
	}
	setDefaultGCPercent(os.LookupEnv)
	s := &server{flags: f, level: new(slog.LevelVar), metrics: telemetry.NewMetrics()}
	b := currentBuild()
	s.metrics.SetBuildInfo(b.Version, b.Commit, b.GoVersion)
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

// setup builds the long-lived parts that do not depend on the configuration. The
// counter store and the verdict cache do: they open with the first configuration that
// loads (openRuntime), so that a file fixed after a bad start gets the store it names.
//
// A file that cannot be used yet stops nothing: run serves the admin port at once and
// opens the gRPC port when a configuration has loaded.
func (s *server) setup(ctx context.Context) error {
	s.ctx = ctx
	var err error
	if s.tracing, err = telemetry.SetupTracing(ctx, version); err != nil {
		return err
	}
	s.closers = append(s.closers, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.tracing.Shutdown(ctx)
	})
	s.rlm = ratelimit.NewMetrics()
	s.metrics.Registry.MustRegister(s.rlm)
	s.deps = config.Deps{Keys: config.NewKeySources(), Runtime: config.Runtime{Store: pendingStore{}}, OnJWKSFetch: s.metrics.JWKSFetched}
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
		s.metrics.ConfigLoadFailed()
		return
	}
	s.level.Set(snap.LogLevel)
	s.metrics.ConfigLoadedAt(snap.Version, snap.LoadedAt)
	if snap.StoreChanged && s.counters.Load() != nil {
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
//  1. the admin port opens at once, whatever the configuration, so that liveness holds
//     while a bad file waits for a fix;
//  2. the file is watched and loaded; the first configuration that loads opens the gRPC
//     port with its server.tls (grpcPort);
//  3. when ctx ends, health reports NOT_SERVING and /readyz fails, so Envoy and
//     Kubernetes move away; after --drain-delay, GracefulStop lets in-flight calls
//     finish, and after --drain-timeout whatever is left is cut.
func (s *server) run(ctx context.Context) error {
	al, err := net.Listen("tcp", s.flags.adminAddr)
	if err != nil {
		return fmt.Errorf("admin listener: %w", err)
	}
	s.health = health.NewServer()
	s.setReady(reasonLoading)
	if s.decisions, err = s.decisionTracing(); err != nil {
		al.Close()
		return err
	}
	mux, err := s.adminMux()
	if err != nil {
		al.Close()
		return err
	}
	// DisableGeneralOptionsHandler: "OPTIONS *" reaches the handler, which treats it as
	// a write like any method other than GET and HEAD.
	admin := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, DisableGeneralOptionsHandler: true}
	s.port.errc = make(chan error, 1)
	go func() {
		if err := admin.Serve(al); !errors.Is(err, http.ErrServerClosed) {
			s.port.fail(err)
		}
	}()
	s.adminAddr = al.Addr().String()
	s.log.Info("admin listening", "admin", s.adminAddr, "version", version)

	// Watch before the first load, so that no change (or SIGHUP) between the two is lost.
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	s.watch(wctx)
	s.loadInitial()

	select {
	case <-ctx.Done():
	case err := <-s.port.errc:
		if srv := s.port.shut(); srv != nil {
			srv.Stop()
		}
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

// loadInitial loads the first configuration: the embedded demo with --demo.
func (s *server) loadInitial() {
	var err error
	if s.flags.demo {
		s.log.Warn("running the embedded demo configuration: it trusts a public demo key, anyone can mint its tokens; not safe for production (use --config)")
		var snap *config.Snapshot
		snap, err = config.LoadBytes(config.Demo, config.DemoPath, s.deps)
		if err == nil {
			s.store.Set(snap)
			s.log.Info("running the embedded demo configuration", "version", snap.Version)
		}
		s.loaded(snap, err)
	} else {
		err = s.reload.Reload()
	}
	if err != nil {
		s.log.Error("no valid configuration yet: not ready", "error", err.Error())
	}
}

// watch reloads on file changes and on SIGHUP. Every load, the first included, goes
// through the one reloader, so that loads and their consequences happen one at a time.
func (s *server) watch(ctx context.Context) {
	if s.flags.demo {
		return
	}
	s.reload = &config.Reloader{Path: s.flags.config, Deps: s.deps, Store: &s.store, Log: s.log, OnReload: s.loaded}
	r := s.reload
	s.reloader.Store(r)
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

func (s *server) drain(admin *http.Server) error {
	s.log.Info("stopping: draining in-flight calls", "delay", s.flags.drainDelay.String(), "timeout", s.flags.drainTimeout.String())
	srv := s.port.shut()
	s.setReady(reasonDraining)
	s.health.Shutdown()
	time.Sleep(s.flags.drainDelay)
	if srv != nil {
		done := make(chan struct{})
		go func() { srv.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-time.After(s.flags.drainTimeout):
			s.log.Warn("drain timeout: cutting remaining calls")
			srv.Stop()
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = admin.Shutdown(ctx)
	s.log.Info("stopped")
	return nil
}

// adminMux builds the admin port's handler. Reads are registered as GET; every other
// route is a write and goes through the token check in adminHandler.
func (s *server) adminMux() (*adminHandler, error) {
	a := newAdminHandler()
	if s.flags.adminToken != "" {
		if err := a.readToken(s.flags.adminToken); err != nil {
			return nil, err
		}
	}
	a.handle(http.MethodGet, "/healthz", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") }))
	a.handle(http.MethodGet, "/readyz", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if reason := *s.notReady.Load(); reason != "" {
			http.Error(w, reason, http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok\n")
	}))
	a.handle(http.MethodGet, "/metrics", s.metrics.Handler())
	a.handle(http.MethodGet, "/loglevel", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, s.level.Level()) }))
	a.handle(http.MethodPut, "/loglevel", http.HandlerFunc(s.setLogLevel))
	a.handle(http.MethodPost, "/-/reload", http.HandlerFunc(s.reloadNow))
	if s.flags.pprof {
		a.handle(http.MethodGet, "/debug/pprof/", http.HandlerFunc(pprof.Index))
		a.handle(http.MethodGet, "/debug/pprof/cmdline", http.HandlerFunc(pprof.Cmdline))
		a.handle(http.MethodGet, "/debug/pprof/profile", http.HandlerFunc(pprof.Profile))
		a.handle(http.MethodGet, "/debug/pprof/symbol", http.HandlerFunc(pprof.Symbol))
		a.handle(http.MethodGet, "/debug/pprof/trace", http.HandlerFunc(pprof.Trace))
	}
	(&admin{s: s}).register(a)
	return a, nil
}

// setLogLevel sets the level until the next configuration load, which applies
// server.log_level again.
func (s *server) setLogLevel(w http.ResponseWriter, r *http.Request) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(r.URL.Query().Get("level"))); err != nil {
		http.Error(w, "level must be debug, info, warn or error", http.StatusBadRequest)
		return
	}
	s.level.Set(l)
	s.log.Info("log level changed", "level", l.String())
	fmt.Fprintln(w, l)
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
		// Protobuf's codec, with Check's dynamic metadata written directly.
		grpc.ForceServerCodecV2(extauthz.Codec()),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
	}
}
