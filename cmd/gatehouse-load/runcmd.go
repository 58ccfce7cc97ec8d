package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"github.com/gatehouse/gatehouse/config"
	"google.golang.org/grpc"
)

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ", ") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

type runConfig struct {
	gatehouse    string
	configPath   string
	mode         string
	concurrency  []int
	duration     time.Duration
	warmup       time.Duration
	rounds       int
	conns        int
	redis        bool
	noLease      bool
	shareSlots   int
	shareFrac    float64
	genConfig    bool
	redisServer  string
	env          []string
	variantEnv   []string
	variantBin   string // a second Gatehouse binary measured in the same rounds (before/after a change)
	otlpSink     bool
	keepLogs     bool
	attest       bool   // authz: per-device attestation tokens from "GATEHOUSE demo-token --count N"
	devThrottle  bool   // authz: the generated mobile config, a GCRA throttle per device and a monthly app quota
	noAttest     bool   // with devThrottle: no attestation, the device header trusted as the device id
	warmDevices  bool   // before the rounds, every device's request once to each target (unmeasured)
	sessions     bool   // authz: the generated sessions config; requests carry a session token (--sessions)
	session      int    // requests in a row per device and worker (--session)
	targetCmd    string // hidden: command template replacing Gatehouse ({self} {grpc} {admin} {config}; tests, make load-reference)
	shape        reqShape
	headerFlags  []string
	extFlags     []string
	concurrencyS string
	bodySizesS   string
	bodySizes    []int // extproc: response body sizes, one series of measurements each
}

// hasVariant reports whether a second Gatehouse is measured beside the first.
func (c *runConfig) hasVariant() bool { return len(c.variantEnv) > 0 || c.variantBin != "" }

func parseRunFlags(args []string, stderr io.Writer) (*runConfig, error) {
	c := &runConfig{}
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.gatehouse, "gatehouse", "./bin/gatehouse", "Gatehouse `binary`, started as: BINARY serve --grpc-addr 127.0.0.1:P --admin-addr 127.0.0.1:Q [--config F]")
	fs.StringVar(&c.configPath, "config", "", "Gatehouse config `file` (default: none, Gatehouse's embedded demo config); with --redis, {{REDIS_ADDR}} in it is replaced by the Redis address")
	fs.StringVar(&c.shape.mode, "mode", "authz", "authz (ext_authz Check), rls (ShouldRateLimit) or extproc (Process streams)")
	fs.StringVar(&c.bodySizesS, "body-sizes", "1024,16384", "extproc: comma-separated response body `sizes` in bytes, each measured at every concurrency level")
	fs.StringVar(&c.concurrencyS, "concurrency", "16,64", "comma-separated concurrency `levels` (closed-loop goroutines)")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "measured `time` per measurement")
	fs.DurationVar(&c.warmup, "warmup", 2*time.Second, "unrecorded load before each measurement")
	fs.IntVar(&c.rounds, "rounds", 2, "alternating rounds (noop, gatehouse) per concurrency level; the summary uses each target's best round by rps")
	fs.IntVar(&c.conns, "conns", 2, "gRPC client connections per target (like Envoy workers)")
	fs.IntVar(&c.shape.devices, "devices", 1000, "number of distinct device ids (device-0 … device-N-1), chosen uniformly at random per request")
	fs.BoolVar(&c.redis, "redis", false, "start redis-server on a free loopback port (--save '' --appendonly no) and run Gatehouse with a Redis store config; adds Redis CPU and commands/round trips per request")
	fs.BoolVar(&c.noLease, "no-lease", false, "with --redis and the generated config: no leases (redis.lease.max_units: -1), so every request makes its Redis round trip")
	fs.Float64Var(&c.shareFrac, "share-fraction", 0, "with --share-slots: redis.shares.fraction (0: Gatehouse's default)")
	fs.IntVar(&c.shareSlots, "share-slots", 3, "with --device-throttle, --redis and the generated config: redis.shares.slots (0: off), the replicas that each admit from a share of every device's bucket without a round trip")
	fs.BoolVar(&c.genConfig, "gen-config", false, "run Gatehouse with the generated load config (demo app, /v1/hello, RLS domain demo keyed on device with a 1e6/s limit) on the memory store; --redis without --config implies it with the Redis store")
	fs.StringVar(&c.redisServer, "redis-server", "redis-server", "redis-server `binary` for --redis")
	fs.Var((*listFlag)(&c.env), "env", "extra `K=V` environment for Gatehouse (repeatable), e.g. OTEL_TRACES_EXPORTER=none")
	fs.Var((*listFlag)(&c.variantEnv), "variant-env", "start a second Gatehouse with this extra `K=V` on top of --env and measure it in the same rounds (repeatable), e.g. tracing on vs off")
	fs.StringVar(&c.variantBin, "variant-gatehouse", "", "start a second Gatehouse from this `binary` (same flags, config and env) and measure it in the same rounds, e.g. the build of an earlier commit")
	fs.BoolVar(&c.otlpSink, "otlp-sink", false, "start a discarding OTLP/gRPC collector (its CPU is not counted) and point Gatehouse at it (OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT/PROTOCOL, unless --env sets them)")
	fs.StringVar(&c.shape.host, "host", "api.example.com", "authz: request host / :authority")
	fs.StringVar(&c.shape.path, "path", "/v1/hello", "authz: request path / :path")
	fs.Var((*listFlag)(&c.headerFlags), "header", "authz: add or replace a request header, `'k: v'` (repeatable; an empty value removes it)")
	fs.Var((*listFlag)(&c.extFlags), "ext", "authz: add or replace a context extension `k=v` (repeatable; an empty value removes it); default endpoint=hello")
	fs.StringVar(&c.shape.deviceHeader, "device-header", "x-device-id", "authz: header carrying the device id (empty: none)")
	fs.StringVar(&c.shape.domain, "domain", "demo", "rls: rate-limit domain")
	fs.StringVar(&c.shape.rlsKey, "rls-key", "device", "rls: descriptor entry key (value: the device id)")
	fs.BoolVar(&c.attest, "attest", false, "authz: before the run, mint one attestation token per device with \"GATEHOUSE demo-token --count DEVICES\" and send\n"+
		"device i's token in x-attestation-token with x-device-id: device-i (--device-header), to GET /v1/secure with\n"+
		"endpoint=secure (unless --path/--ext say otherwise): the embedded demo config's attested endpoint, so that the\n"+
		"verdict-cache hit ratio at the end is the attestation cache's")
	fs.BoolVar(&c.sessions, "sessions", false, "authz: the generated sessions config (sessionsConfig): each device exchanges its demo attestation\n"+
		"token for a session token once before the run; requests then carry only the session token (x-session-token)\n"+
		"to GET /v1/secure; implies --attest")
	fs.BoolVar(&c.devThrottle, "device-throttle", false, "authz: the generated mobile config (deviceThrottleConfig): per device a GCRA throttle of 50/s,\n"+
		"burst 100, plus a monthly quota per app, on the attested endpoint; implies --attest. With --redis, on the\n"+
		"Redis store, else on the memory store")
	fs.BoolVar(&c.noAttest, "no-attest", false, "with --device-throttle: no attestation; the device id is the x-device-id header, trusted\n"+
		"(devices.trust_device_header), with the same limits, keys and endpoint: the run measures the limits without\n"+
		"token verification")
	fs.BoolVar(&c.warmDevices, "warm-devices", false, "before the first measurement, send every device's request once to each target (not measured),\n"+
		"so that the measurements see a fleet whose devices have been seen before (attestation tokens verified\n"+
		"and cached, as in the steady state of a fleet whose tokens live minutes) instead of mostly first requests")
	fs.IntVar(&c.session, "session", 1, "requests each worker sends in a row for one device before it picks another at random\n"+
		"(an app that opens sends a streak of calls)")
	fs.BoolVar(&c.keepLogs, "keep-logs", false, "keep the children's logs (always kept when the run fails)")
	fs.StringVar(&c.targetCmd, "target-cmd", "", "") // hidden, see usage
	fs.Usage = func() {
		fmt.Fprint(stderr, `usage: gatehouse-load run [flags]

Starts a no-op ext_authz/RLS server and Gatehouse as child processes on free 127.0.0.1
ports and measures them alternately (noop, gatehouse, noop, gatehouse, ...) at each
concurrency level with a closed-loop gRPC client. Reports requests/s, p50/p99/p999
latency, server CPU µs per call (from /proc, whole process group) and gatehouse/noop
ratios; at the end, the gatehouse_cache_* lines of Gatehouse's /metrics.

examples:
  gatehouse-load run                                   # authz, conc 16 and 64, 10 s each
  gatehouse-load run --mode rls
  gatehouse-load run --mode extproc --body-sizes 1024,16384
  gatehouse-load run --mode rls --redis --config redis.yaml
  gatehouse-load run --devices 10000 --concurrency 64
  gatehouse-load run --attest --devices 10000          # per-device attestation tokens: cache hit ratio
  gatehouse-load run --env OTEL_TRACES_EXPORTER=none --variant-env OTEL_TRACES_EXPORTER=otlp --otlp-sink

flags:
`)
		fs.VisitAll(func(f *flag.Flag) {
			if f.Name == "target-cmd" {
				return
			}
			name, usage := flag.UnquoteUsage(f)
			if name != "" {
				name = " " + name
			}
			fmt.Fprintf(stderr, "  --%s%s\n    \t%s", f.Name, name, strings.ReplaceAll(usage, "\n", "\n    \t"))
			if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "[]" {
				fmt.Fprintf(stderr, " (default %s)", f.DefValue)
			}
			fmt.Fprintln(stderr)
		})
	}
	err := fs.Parse(args)
	if err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	c.mode = c.shape.mode
	if c.mode != "authz" && c.mode != "rls" && c.mode != "extproc" {
		return nil, fmt.Errorf("--mode must be authz, rls or extproc, not %q", c.mode)
	}
	c.bodySizes = []int{0}
	if c.mode == "extproc" {
		if c.bodySizes, err = parseSizes(c.bodySizesS); err != nil {
			return nil, err
		}
	}
	pathSet := false
	fs.Visit(func(f *flag.Flag) { pathSet = pathSet || f.Name == "path" })
	if c.sessions {
		if c.configPath != "" || c.genConfig || c.devThrottle || c.redis {
			return nil, errors.New("--sessions generates its config (memory store): not with --config, --gen-config, --device-throttle or --redis")
		}
		c.attest = true
	}
	if c.devThrottle {
		if c.configPath != "" || c.genConfig {
			return nil, errors.New("--device-throttle generates its config: not with --config or --gen-config")
		}
		c.attest = !c.noAttest
		if !pathSet {
			c.shape.path = attestPath
		}
	} else if c.noAttest {
		return nil, errors.New("--no-attest is for --device-throttle")
	}
	if c.attest {
		if c.mode != "authz" {
			return nil, errors.New("--attest is for --mode authz")
		}
		if !pathSet {
			c.shape.path = attestPath
		}
	}
	for _, s := range strings.Split(c.concurrencyS, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 4096 {
			return nil, fmt.Errorf("bad --concurrency %q (want e.g. 16,64; each 1..4096)", c.concurrencyS)
		}
		c.concurrency = append(c.concurrency, n)
	}
	switch {
	case c.duration <= 0 || c.duration > time.Hour:
		return nil, errors.New("--duration must be in (0, 1h]")
	case c.warmup < 0 || c.warmup > time.Hour:
		return nil, errors.New("--warmup must be in [0, 1h]")
	case c.rounds < 1 || c.rounds > 100:
		return nil, errors.New("--rounds must be 1..100")
	case c.session < 1 || c.session > 1000:
		return nil, errors.New("--session must be 1..1000")
	case c.conns < 1 || c.conns > 64:
		return nil, errors.New("--conns must be 1..64")
	case c.shape.devices < 1 || c.shape.devices > 10_000_000:
		return nil, errors.New("--devices must be 1..10000000")
	}
	if c.noLease && (!c.redis || c.configPath != "") {
		return nil, errors.New("--no-lease is for --redis with the generated config (with --config, set redis.lease in the file)")
	}
	for _, kv := range append(append([]string{}, c.env...), c.variantEnv...) {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return nil, fmt.Errorf("bad env %q, want K=V", kv)
		}
	}
	c.shape.headers = map[string]string{}
	for _, h := range c.headerFlags {
		k, v, ok := strings.Cut(h, ":")
		if strings.HasPrefix(h, ":") { // pseudo-header, e.g. ":path: /x"
			k2, v2, ok2 := strings.Cut(h[1:], ":")
			k, v, ok = ":"+k2, v2, ok2
		}
		if !ok || strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("bad --header %q, want 'name: value'", h)
		}
		c.shape.headers[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
	}
	c.shape.exts = map[string]string{"endpoint": "hello"}
	if c.attest || c.devThrottle {
		c.shape.exts["endpoint"] = attestEndpoint
	}
	for _, e := range c.extFlags {
		k, v, ok := strings.Cut(e, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("bad --ext %q, want k=v", e)
		}
		c.shape.exts[k] = v
	}
	c.shape.deviceHeader = strings.ToLower(c.shape.deviceHeader)
	return c, nil
}

// parseSizes reads --body-sizes.
func parseSizes(list string) ([]int, error) {
	var out []int
	for _, s := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 0 || n > 16<<20 {
			return nil, fmt.Errorf("bad --body-sizes %q (want e.g. 1024,16384; each 0..16777216)", list)
		}
		out = append(out, n)
	}
	return out, nil
}

// target is one server under test.
type target struct {
	name      string
	proc      *child
	addr      string
	adminAddr string // Gatehouse only
	conns     []*grpc.ClientConn
	withRedis bool
}

func runLoad(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	cfg, err := parseRunFlags(args, stderr)
	if err != nil {
		return err
	}
	if cfg.targetCmd == "" {
		if _, err := exec.LookPath(cfg.gatehouse); err != nil {
			return fmt.Errorf("gatehouse binary: %w (build it first, or pass --gatehouse PATH)", err)
		}
	}
	logDir, err := os.MkdirTemp("", "gatehouse-load-")
	if err != nil {
		return err
	}
	// Children are stopped on every path out of here, panics included (deferred calls
	// run while a panic unwinds); PDEATHSIG covers this process being killed outright.
	var procs []*child
	defer func() {
		for i := len(procs) - 1; i >= 0; i-- {
			procs[i].stop()
		}
		if err != nil || cfg.keepLogs {
			fmt.Fprintf(stderr, "child logs kept in %s\n", logDir)
		} else {
			_ = os.RemoveAll(logDir)
		}
	}()

	self, err := os.Executable()
	if err != nil {
		return err
	}

	// Redis and the config Gatehouse gets.
	var rds *redisInstance
	configPath := cfg.configPath
	if cfg.redis {
		rds, err = startRedis(ctx, cfg.redisServer, logDir)
		if rds != nil {
			procs = append(procs, rds.child)
		}
		if err != nil {
			return err
		}
		var text string
		if cfg.configPath != "" {
			b, err := os.ReadFile(cfg.configPath)
			if err != nil {
				return err
			}
			text = strings.ReplaceAll(string(b), "{{REDIS_ADDR}}", rds.addr)
		} else if cfg.devThrottle {
			text = deviceThrottleConfig(redisStoreYAML(rds.addr, cfg.noLease)+sharesYAML(cfg.shareSlots, cfg.shareFrac, cfg.noLease), cfg.attest)
		} else {
			text = redisConfig(rds.addr, cfg.noLease)
		}
		configPath = filepath.Join(logDir, "gatehouse-redis.yaml")
		if err := os.WriteFile(configPath, []byte(text), 0o600); err != nil {
			return err
		}
	}
	if cfg.mode == "extproc" && cfg.configPath == "" && !cfg.redis {
		cfg.genConfig = false
		configPath = filepath.Join(logDir, "gatehouse-extproc.yaml")
		secret := filepath.Join(logDir, "sign.key")
		if err := os.WriteFile(secret, []byte(loadSecret), 0o600); err != nil {
			return err
		}
		if err := os.WriteFile(configPath, []byte(extprocConfig(secret)), 0o600); err != nil {
			return err
		}
	}
	if cfg.genConfig && !cfg.redis {
		if cfg.configPath != "" {
			return errors.New("--gen-config and --config exclude each other")
		}
		configPath = filepath.Join(logDir, "gatehouse-memory.yaml")
		if err := os.WriteFile(configPath, []byte(memoryConfig()), 0o600); err != nil {
			return err
		}
	}
	if cfg.sessions {
		if configPath, err = writeSessionsConfig(logDir); err != nil {
			return err
		}
	}
	if cfg.devThrottle && !cfg.redis {
		configPath = filepath.Join(logDir, "gatehouse-devices.yaml")
		if err := os.WriteFile(configPath, []byte(deviceThrottleConfig("store:\n  type: memory\n", cfg.attest)), 0o600); err != nil {
			return err
		}
	}
	if configPath == "" {
		// The demo as a file: `serve` runs the embedded demo only with --demo, which
		// older builds measured with --variant-gatehouse do not know.
		configPath = filepath.Join(logDir, "gatehouse-demo.yaml")
		if err := os.WriteFile(configPath, config.Demo, 0o600); err != nil {
			return err
		}
	}
	if configPath != "" {
		fmt.Fprintf(stderr, "gatehouse config: %s\n", configPath)
		if configPath, err = filepath.Abs(configPath); err != nil {
			return err
		}
	}

	var baseEnv []string
	if cfg.otlpSink {
		sinkAddr, err := freeAddr()
		if err != nil {
			return err
		}
		sink, err := startChild("otlp-sink", []string{self, "noop", "--addr", sinkAddr}, nil, logDir)
		if err != nil {
			return err
		}
		procs = append(procs, sink)
		if err := waitReady(ctx, sink, sinkAddr, nil); err != nil {
			return err
		}
		baseEnv = append(baseEnv, "OTEL_EXPORTER_OTLP_ENDPOINT=http://"+sinkAddr, "OTEL_EXPORTER_OTLP_PROTOCOL=grpc",
			"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://"+sinkAddr, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=grpc")
	}
	baseEnv = append(baseEnv, cfg.env...)

	if cfg.attest {
		ttl := attestTTL(cfg)
		start := time.Now()
		ids, toks, err := mintTokens(ctx, cfg.gatehouse, cfg.shape.devices, ttl, stderr)
		if err != nil {
			return err
		}
		cfg.shape.deviceIDs, cfg.shape.tokens = ids, toks
		fmt.Fprintf(stderr, "attest: %d tokens from %s demo-token --count %d --ttl %s in %v\n",
			len(toks), cfg.gatehouse, cfg.shape.devices, ttl, time.Since(start).Round(time.Millisecond))
	}

	// The servers under test.
	var probe func(pctx context.Context, cc *grpc.ClientConn) error
	checks, rlsReqs := buildRequests(cfg.shape)
	switch cfg.mode {
	case "extproc":
		first := buildExchanges(cfg.shape, cfg.bodySizes[0])[0]
		probe = func(pctx context.Context, cc *grpc.ClientConn) error {
			_, _, err := runExchange(pctx, extprocv3.NewExternalProcessorClient(cc), first)
			return err
		}
	case "authz":
		probe = func(pctx context.Context, cc *grpc.ClientConn) error {
			_, err := authv3.NewAuthorizationClient(cc).Check(pctx, checks[0])
			return err
		}
	default:
		probe = func(pctx context.Context, cc *grpc.ClientConn) error {
			_, err := rlsv3.NewRateLimitServiceClient(cc).ShouldRateLimit(pctx, rlsReqs[0])
			return err
		}
	}
	startTarget := func(name string, argv func(grpcAddr, adminAddr string) []string, env []string, withRedis bool) (*target, error) {
		grpcAddr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		adminAddr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		p, err := startChild(name, argv(grpcAddr, adminAddr), env, logDir)
		if err != nil {
			return nil, err
		}
		procs = append(procs, p)
		return &target{name: name, proc: p, addr: grpcAddr, adminAddr: adminAddr, withRedis: withRedis}, nil
	}
	serveArgv := func(bin string) func(grpcAddr, adminAddr string) []string {
		return func(grpcAddr, adminAddr string) []string {
			if cfg.targetCmd != "" {
				r := strings.NewReplacer("{self}", self, "{grpc}", grpcAddr, "{admin}", adminAddr, "{config}", configPath)
				return strings.Fields(r.Replace(cfg.targetCmd))
			}
			a := []string{bin, "serve", "--grpc-addr", grpcAddr, "--admin-addr", adminAddr}
			if configPath != "" {
				a = append(a, "--config", configPath)
			}
			return a
		}
	}
	gatehouseArgv := serveArgv(cfg.gatehouse)

	var targets []*target
	noop, err := startTarget("noop", func(g, _ string) []string { return []string{self, "noop", "--addr", g} }, nil, false)
	if err != nil {
		return err
	}
	targets = append(targets, noop)
	gh, err := startTarget("gatehouse", gatehouseArgv, baseEnv, cfg.redis)
	if err != nil {
		return err
	}
	targets = append(targets, gh)
	if cfg.hasVariant() {
		variantArgv := gatehouseArgv
		if cfg.variantBin != "" {
			variantArgv = serveArgv(cfg.variantBin)
		}
		v, err := startTarget("variant", variantArgv, append(append([]string{}, baseEnv...), cfg.variantEnv...), cfg.redis)
		if err != nil {
			return err
		}
		targets = append(targets, v)
	}
	for _, t := range targets {
		if err := waitReady(ctx, t.proc, t.addr, probe); err != nil {
			return err
		}
		if t.conns, err = dialTarget(ctx, t.addr, cfg.conns); err != nil {
			return err
		}
		defer closeAll(t.conns)
	}
	if cfg.sessions {
		start := time.Now()
		if err := exchangeSessions(ctx, gh.conns[0], &cfg.shape); err != nil {
			return err
		}
		checks, rlsReqs = buildRequests(cfg.shape)
		fmt.Fprintf(stderr, "sessions: %d attestation tokens exchanged for session tokens in %v\n", len(cfg.shape.tokens), time.Since(start).Round(time.Millisecond))
	}

	// Header.
	fmt.Fprintf(stdout, "gatehouse-load: mode=%s concurrency=%v duration=%v warmup=%v rounds=%d conns=%d devices=%d cpus=%d\n",
		cfg.mode, cfg.concurrency, cfg.duration, cfg.warmup, cfg.rounds, cfg.conns, cfg.shape.devices, runtime.NumCPU())
	for _, t := range targets {
		fmt.Fprintf(stdout, "  %-9s pid %d grpc %s %s\n", t.name, t.proc.pid(), t.addr, strings.Join(t.proc.cmd.Args, " "))
	}
	if rds != nil {
		fmt.Fprintf(stdout, "  %-9s pid %d %s (CPU added to gatehouse's)\n", "redis", rds.pid(), rds.addr)
	}
	if cfg.attest {
		fmt.Fprintf(stdout, "  attest: one demo-token per device in %s (device id in %s), %s endpoint=%s\n",
			attestHeader, cfg.shape.deviceHeader, cfg.shape.path, cfg.shape.exts["endpoint"])
	}
	if len(cfg.env) > 0 {
		fmt.Fprintf(stdout, "  gatehouse env: %s\n", strings.Join(cfg.env, " "))
	}
	if len(cfg.variantEnv) > 0 {
		fmt.Fprintf(stdout, "  variant env:   %s (on top of gatehouse env)\n", strings.Join(cfg.variantEnv, " "))
	}
	if cfg.variantBin != "" {
		fmt.Fprintf(stdout, "  variant binary: %s (in place of %s)\n", cfg.variantBin, cfg.gatehouse)
	}
	if cfg.mode == "extproc" {
		fmt.Fprintf(stdout, "  extproc: one Process stream per call, as Envoy sends a buffered route (request headers,\n"+
			"  response headers, response body of %v bytes), honouring each server's mode overrides\n", cfg.bodySizes)
	}
	fmt.Fprintln(stdout, "  summary: per target the round with the highest rps; ratio = gatehouse/noop")

	denyWord := "denied"
	if cfg.mode == "rls" {
		denyWord = "over_limit"
	}
	if cfg.warmDevices {
		if err := warmTargets(ctx, stdout, cfg, targets, checks, rlsReqs, denyWord); err != nil {
			return err
		}
	}
	var summaries []string
	type bestPair struct {
		conc  int
		label string
		best  map[string]*result
	}
	var allBest []bestPair
	for _, size := range cfg.bodySizes {
		reqs := requestSet{checks: checks, rls: rlsReqs}
		label := ""
		if cfg.mode == "extproc" {
			reqs = requestSet{procs: buildExchanges(cfg.shape, size)}
			label = " body=" + strconv.Itoa(size)
		}
		for _, conc := range cfg.concurrency {
			best := map[string]*result{}
			for round := 1; round <= cfg.rounds; round++ {
				for _, t := range targets {
					r, err := measure(ctx, t, rds, cfg, conc, reqs)
					if err != nil {
						return fmt.Errorf("%s conc=%d%s round %d: %w", t.name, conc, label, round, err)
					}
					r.target, r.round = t.name, round
					fmt.Fprintf(stdout, "conc=%-4d%s round %d %s\n", conc, label, round, formatRound(r, denyWord))
					if b := best[t.name]; b == nil || r.rps() > b.rps() {
						best[t.name] = r
					}
				}
			}
			line := formatSummary(cfg.mode, conc, targets, best) + label
			fmt.Fprintln(stdout, line)
			summaries = append(summaries, line)
			allBest = append(allBest, bestPair{conc, label, best})
		}
	}

	fmt.Fprintln(stdout, "\n== summary ==")
	for _, s := range summaries {
		fmt.Fprintln(stdout, s)
	}
	for _, bp := range allBest {
		for _, line := range verdicts(cfg, bp.conc, bp.best) {
			fmt.Fprintln(stdout, line+bp.label)
		}
	}
	for _, t := range targets[1:] {
		if cfg.mode == "extproc" {
			printExchangeMetrics(ctx, stdout, t)
			continue
		}
		printCacheMetrics(ctx, stdout, t)
	}
	return nil
}

// measure runs one warmup+window against t, bracketing the window with CPU (and Redis)
// snapshots.
func measure(ctx context.Context, t *target, rds *redisInstance, cfg *runConfig, conc int, reqs requestSet) (*result, error) {
	var (
		cpu0, cpu1, rcpu0, rcpu1, self0, self1 int64
		cpuErr                                 error
		rsnap0, rsnap1                         redisSnap
		rsErr                                  error
		reads0, reads1                         int64
		readsErr                               error
	)
	spec := loadSpec{conns: t.conns, concurrency: conc, warmup: cfg.warmup, duration: cfg.duration, session: cfg.session}
	switch cfg.mode {
	case "authz":
		spec.checks = reqs.checks
	case "extproc":
		spec.procs = reqs.procs
	default:
		spec.rls = reqs.rls
	}
	useRedis := t.withRedis && rds != nil
	spec.beforeWindow = func() {
		if useRedis {
			// syscr first: the INFO connection's two reads (request, EOF) then fall
			// inside the window, and are subtracted below.
			reads0, readsErr = readSyscalls(rds.pid())
			rsnap0, rsErr = takeRedisSnap(rds.addr)
			rcpu0, cpuErr = groupCPUTicks(rds.pgid)
		}
		self0 = selfCPUTicks()
		if c, err := groupCPUTicks(t.proc.pgid); err != nil {
			cpuErr = err
		} else {
			cpu0 = c
		}
	}
	spec.afterWindow = func() {
		if c, err := groupCPUTicks(t.proc.pgid); err != nil {
			cpuErr = err
		} else {
			cpu1 = c
		}
		self1 = selfCPUTicks()
		if useRedis {
			var err error
			if rcpu1, err = groupCPUTicks(rds.pgid); err != nil {
				cpuErr = err
			}
			var r1 int64
			if r1, err = readSyscalls(rds.pid()); err != nil && readsErr == nil {
				readsErr = err
			}
			reads1 = r1
			var s redisSnap
			if s, err = takeRedisSnap(rds.addr); err != nil && rsErr == nil {
				rsErr = err
			}
			rsnap1 = s
		}
	}
	r, err := drive(ctx, spec)
	if r == nil {
		if t.proc.exited() {
			return nil, t.proc.describeExit()
		}
		return nil, err
	}
	if err != nil {
		if t.proc.exited() {
			return nil, fmt.Errorf("%w; %v", err, t.proc.describeExit())
		}
		return nil, err
	}
	r.clientTick = self1 - self0
	r.cpuTicks = -1
	if cpuErr == nil {
		r.cpuTicks = cpu1 - cpu0
		if useRedis {
			r.redisTicks = rcpu1 - rcpu0
			r.cpuTicks += r.redisTicks
		}
	}
	if useRedis && rsErr == nil {
		d := diffRedis(rsnap0, rsnap1)
		d.reads = -1
		if readsErr == nil {
			d.reads = reads1 - reads0 - 2 // this tool's INFO connection: one request read, one EOF read
		}
		r.redis = &d
	}
	return r, nil
}

func ms(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e6, 'f', 2, 64) + "ms" }

func cores(ticks int64, elapsed time.Duration) float64 {
	if elapsed <= 0 {
		return 0
	}
	return float64(ticks) / userHZ / elapsed.Seconds()
}

func formatCPU(r *result) string {
	if v := r.cpuPerCall(); v >= 0 {
		return fmt.Sprintf("cpu %.1fµs/call", v)
	}
	return "cpu n/a"
}

func formatRound(r *result, denyWord string) string {
	s := fmt.Sprintf("%-9s %8.0f rps  p50 %s p99 %s p999 %s  %s (server %.2f cores",
		r.target, r.rps(), ms(r.hist.quantile(0.50)), ms(r.hist.quantile(0.99)), ms(r.hist.quantile(0.999)),
		formatCPU(r), cores(r.cpuTicks, r.elapsed))
	if r.redis != nil || r.redisTicks > 0 {
		s += fmt.Sprintf(", redis %.2f", cores(r.redisTicks, r.elapsed))
	}
	s += fmt.Sprintf(", client %.2f)  ok %d %s %d", cores(r.clientTick, r.elapsed), r.ok, denyWord, r.denied)
	if r.other > 0 {
		s += fmt.Sprintf(" unknown %d", r.other)
	}
	s += fmt.Sprintf(" grpc_err %d", r.errs)
	if r.firstErr != "" {
		s += fmt.Sprintf(" (first: %s)", r.firstErr)
	}
	if r.redis != nil {
		s += "\n    " + r.redis.format(r.calls())
	}
	return s
}

func briefTarget(r *result) string {
	if r == nil {
		return "n/a"
	}
	s := fmt.Sprintf("%.0f rps p50 %s p99 %s p999 %s %s", r.rps(),
		ms(r.hist.quantile(0.50)), ms(r.hist.quantile(0.99)), ms(r.hist.quantile(0.999)), formatCPU(r))
	if r.redis != nil {
		s += fmt.Sprintf(" redis %.2f cmds/req", float64(r.redis.commands)/float64(max(r.calls(), 1)))
		if r.redis.reads >= 0 {
			s += fmt.Sprintf(" %.2f rt/req", float64(r.redis.reads)/float64(max(r.calls(), 1)))
		}
	}
	return s
}

// ratios returns a/b for rps and cpu per call (NaN-free: -1 when unknown).
func ratios(a, b *result) (rps, cpu float64) {
	rps, cpu = -1, -1
	if a == nil || b == nil {
		return
	}
	if b.rps() > 0 {
		rps = a.rps() / b.rps()
	}
	if ac, bc := a.cpuPerCall(), b.cpuPerCall(); ac >= 0 && bc > 0 {
		cpu = ac / bc
	}
	return
}

func fmtRatio(v float64) string {
	if v < 0 {
		return "n/a"
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

func formatSummary(mode string, conc int, targets []*target, best map[string]*result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "mode=%s conc=%-4d", mode, conc)
	for i, t := range targets {
		if i > 0 {
			b.WriteString(" |")
		}
		fmt.Fprintf(&b, " %s: %s", t.name, briefTarget(best[t.name]))
	}
	rps, cpu := ratios(best["gatehouse"], best["noop"])
	fmt.Fprintf(&b, " | ratio rps %s cpu %s", fmtRatio(rps), fmtRatio(cpu))
	if v := best["variant"]; v != nil {
		rps, cpu = ratios(v, best["noop"])
		fmt.Fprintf(&b, " | variant/noop rps %s cpu %s", fmtRatio(rps), fmtRatio(cpu))
		rps, cpu = ratios(v, best["gatehouse"])
		fmt.Fprintf(&b, " | variant/gatehouse rps %s cpu %s", fmtRatio(rps), fmtRatio(cpu))
	}
	return b.String()
}

// verdicts checks the targets for one concurrency level and flags suspicious results.
func verdicts(cfg *runConfig, conc int, best map[string]*result) []string {
	var out []string
	gh, nr := best["gatehouse"], best["noop"]
	rps, cpu := ratios(gh, nr)
	pf := func(ok bool) string {
		if ok {
			return "PASS"
		}
		return "FAIL"
	}
	switch cfg.mode {
	case "authz":
		out = append(out, fmt.Sprintf("target conc=%d: gatehouse/noop rps %s ≥ 0.80 %s", conc, fmtRatio(rps), pf(rps >= 0.8)))
	case "extproc":
		out = append(out, fmt.Sprintf("target conc=%d: gatehouse/noop cpu/stream %s ≤ 1.30 (Process vs a no-op ext_proc server) %s",
			conc, fmtRatio(cpu), pf(cpu >= 0 && cpu <= 1.3)))
	default:
		limit, store := 1.3, "memory"
		if cfg.redis {
			limit, store = 1.6, "redis, incl. redis-server CPU"
		}
		out = append(out, fmt.Sprintf("target conc=%d: gatehouse/noop cpu/call %s ≤ %.2f (%s) %s", conc, fmtRatio(cpu), limit, store, pf(cpu >= 0 && cpu <= limit)))
	}
	for _, name := range []string{"gatehouse", "variant"} {
		r := best[name]
		if r == nil || r.calls() == 0 {
			continue
		}
		if r.errs > 0 {
			out = append(out, fmt.Sprintf("warning conc=%d: %s had %d gRPC errors of %d calls (first: %s)", conc, name, r.errs, r.calls(), r.firstErr))
		}
		if cfg.redis && r.redis != nil && r.redis.commands <= 0 {
			out = append(out, fmt.Sprintf("warning conc=%d: %s sent no commands to Redis: is its config using the redis store?", conc, name))
		}
		if r.denied > r.calls()/2 {
			out = append(out, fmt.Sprintf("warning conc=%d: %s denied %d of %d calls: the deny path was measured; check --header/--ext/--config", conc, name, r.denied, r.calls()))
		}
	}
	return out
}

// warmTargets sends every device's request once to each target before the rounds
// (--warm-devices), at the highest concurrency level, and reports what came back.
func warmTargets(ctx context.Context, stdout io.Writer, cfg *runConfig, targets []*target,
	checks []*authv3.CheckRequest, rlsReqs []*rlsv3.RateLimitRequest, denyWord string) error {
	conc := slices.Max(cfg.concurrency)
	for _, t := range targets {
		spec := loadSpec{conns: t.conns, concurrency: conc}
		if cfg.mode == "authz" {
			spec.checks = checks
		} else {
			spec.rls = rlsReqs
		}
		start := time.Now()
		c, err := warm(ctx, spec)
		if err != nil {
			return fmt.Errorf("warm-up of %s: %w", t.name, err)
		}
		n := max(len(checks), len(rlsReqs))
		fmt.Fprintf(stdout, "warm-devices: %-9s every device once (%d requests, conc %d) in %v: ok %d %s %d grpc_err %d\n",
			t.name, n, conc, time.Since(start).Round(time.Millisecond), c.ok, denyWord, c.denied, c.errs)
		if c.errs == int64(n) {
			return fmt.Errorf("warm-up of %s: every request failed: %s", t.name, c.firstErr)
		}
	}
	return nil
}
