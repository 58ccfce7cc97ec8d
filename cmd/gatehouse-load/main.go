// Command gatehouse-load measures Gatehouse against a no-op gRPC baseline in the same
// run. Absolute numbers drift on a shared 2-core machine, so every result is reported as
// a ratio to a no-op ext_authz / rate-limit server (built from the same go-control-plane
// types, plain grpc.NewServer, no interceptors) measured alternately with Gatehouse.
//
// Usage:
//
//	gatehouse-load noop --addr 127.0.0.1:PORT
//	gatehouse-load run [flags]
//
// # noop
//
// Serves envoy.service.auth.v3.Authorization (Check → OK, empty ok_response),
// envoy.service.ratelimit.v3.RateLimitService (ShouldRateLimit → OVERALL OK, one OK
// status per descriptor), envoy.service.ext_proc.v3.ExternalProcessor (Process → CONTINUE
// to every message, extproctest.Noop), grpc.health.v1 and an OTLP/gRPC collector (traces,
// metrics, logs) that discards everything (used by --otlp-sink). It runs until SIGTERM/SIGINT.
//
// # run
//
// Starts the no-op server (this binary re-executed with "noop") and Gatehouse
// ("GATEHOUSE serve --grpc-addr 127.0.0.1:P --admin-addr 127.0.0.1:Q [--config F]") as
// child processes in their own process groups on free loopback ports, waits until each
// answers a gRPC health check (or, if health is not implemented, a first Check /
// ShouldRateLimit) for at most 20 s, then for every concurrency level C runs --rounds
// rounds of: noop, gatehouse[, variant]. Each measurement is --warmup (not recorded)
// followed by --duration of a closed loop: C goroutines spread over --conns client
// connections, each sending pre-built requests back-to-back (device chosen uniformly at
// random among --devices). Per measurement it records responses by verdict, gRPC errors,
// requests/s, p50/p99/p999 latency (log-linear histogram, ≤0.8% bucket error, bounded
// memory), and the server's CPU time over the window (utime+stime of every process in
// the child's process group from /proc, USER_HZ=100) → CPU µs per call. With --redis it
// adds redis-server's CPU, and reports Redis commands per request (INFO commandstats)
// and redis-server read syscalls per request (/proc/PID/io syscr, ≈ round trips, since
// Redis reads once per batch that arrives on a connection).
//
// Reporting: every measurement is printed; the summary line for a concurrency level uses,
// per target, the round with the highest requests/s (best-of-rounds; all of its numbers
// come from that same round). Ratios are gatehouse/noop. At the end the gatehouse_cache_*
// lines of http://ADMIN/metrics are printed (cumulative over the whole run) with a hit
// ratio per hits/misses pair.
//
// run flags:
//
//	--gatehouse PATH       Gatehouse binary (default ./bin/gatehouse)
//	--config F             Gatehouse config (default: none, the embedded demo config). With
//	                       --redis, the text {{REDIS_ADDR}} in F is replaced by the address
//	                       of the redis-server started for the run.
//	--mode authz|rls|extproc
//	                       ext_authz Check, ShouldRateLimit, or ext_proc Process streams (default
//	                       authz). extproc: one stream per call, sent as Envoy sends a route whose
//	                       processing mode buffers bodies (request headers of an allowed GET with
//	                       Check's dynamic metadata, then response headers, then the response
//	                       body), honouring each server's mode_override and immediate responses;
//	                       the call ends when the server ends the stream. Without --config,
//	                       Gatehouse gets the generated load config with the response phase on
//	                       for the demo app: every response signed (a generated secret; each
//	                       request carries its own x-nonce), upstream errors rewritten
//	--body-sizes 1024,16384
//	                       extproc: response body sizes; each is a series over every concurrency
//	--concurrency 16,64    comma-separated concurrency levels
//	--duration 10s         measured time per measurement
//	--warmup 2s            unrecorded load before each measurement
//	--rounds 2             alternating rounds per concurrency level
//	--conns 2              gRPC client connections per target (like Envoy workers)
//	--devices 1000         distinct device ids (device-0 … device-N-1)
//	--session 1            requests a worker sends in a row for one device (a session)
//	--device-throttle      authz: the generated mobile config (a GCRA throttle per device, a
//	                       monthly app quota, attested devices: implies --attest); memory store,
//	                       or Redis with --redis
//	--gen-config           run Gatehouse with a generated config (demo app, /v1/hello, RLS domain
//	                       demo keyed on device with a 1e6/s limit, so RLS runs measure the
//	                       under-limit path) on the memory store; see redisConfig in redis.go
//	--redis                start redis-server (--save '' --appendonly no); without --config,
//	                       Gatehouse gets the generated config with the Redis store
//	--no-lease             with --redis and the generated config: redis.lease.max_units -1, so
//	                       every request makes its Redis round trip
//	--redis-server PATH    redis-server binary (default redis-server)
//	--env K=V              extra environment for Gatehouse (repeatable)
//	--variant-env K=V      also start a second Gatehouse with this extra environment on top of
//	                       --env and measure it in the same rounds (repeatable), e.g.
//	                       --env OTEL_TRACES_EXPORTER=none --variant-env OTEL_TRACES_EXPORTER=otlp
//	--variant-gatehouse B  also start a second Gatehouse from binary B (same flags, config and
//	                       env) and measure it in the same rounds: before/after a change
//	--otlp-sink            start a discarding OTLP/gRPC collector (another "noop" process, whose
//	                       CPU is not counted) and point Gatehouse at it
//	                       (OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT/PROTOCOL) unless --env sets them
//	--host, --path         :authority and :path of the authz request (api.example.com, /v1/hello)
//	--header 'k: v'        add/replace a request header (repeatable; empty value removes it)
//	--ext k=v              add/replace a context extension (repeatable; empty value removes it;
//	                       default endpoint=hello)
//	--device-header NAME   header carrying the device id (default x-device-id)
//	--attest               authz: before the run, mint one attestation token per device with
//	                       "GATEHOUSE demo-token --count DEVICES --ttl T" (T covers the run) and
//	                       send device i's token in x-attestation-token with its id in the device
//	                       header, to /v1/secure with endpoint=secure unless --path/--ext say
//	                       otherwise (the demo config's attested endpoint); the cache hit ratio
//	                       printed at the end is then the attestation verdict cache's
//	--sessions             authz: the generated sessions config (memory store); before the run each
//	                       device exchanges its demo token (--attest) for a session token at
//	                       POST /v1/attest/exchange, then sends only x-session-token to /v1/secure
//	--domain, --rls-key    rate-limit domain and descriptor key (demo, device)
//	--keep-logs            keep the children's stdout/stderr logs and print where they are
//
// The children are killed (SIGTERM to the process group, SIGKILL after 3 s) when run
// returns, including on errors, panics and SIGINT/SIGTERM; they also get PDEATHSIG=SIGKILL
// should this process die without cleaning up.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	os.Exit(mainExit(os.Args[1:]))
}

func mainExit(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, args, os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(os.Stderr, "gatehouse-load:", err)
		return 1
	}
	return 0
}

const topUsage = `usage:
  gatehouse-load noop --addr 127.0.0.1:PORT   no-op ext_authz + RLS server (baseline)
  gatehouse-load run [flags]                  measure Gatehouse vs the no-op baseline

"gatehouse-load run -h" lists the run flags.
`

// run is the whole program: args excludes the program name.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, topUsage)
		return errors.New("missing subcommand")
	}
	switch args[0] {
	case "noop":
		return runNoop(ctx, args[1:], stderr)
	case "run":
		return runLoad(ctx, args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, topUsage)
		return nil
	default:
		fmt.Fprint(stderr, topUsage)
		return fmt.Errorf("unknown subcommand %q", args[0])
	}
}
