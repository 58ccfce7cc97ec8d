package main

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	grpcstatus "google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

const readyTimeout = 20 * time.Second

// reqShape is everything that shapes the pre-built requests.
type reqShape struct {
	mode         string // authz | rls
	devices      int
	host, path   string
	headers      map[string]string // after --header overrides; device header added per device
	exts         map[string]string
	deviceHeader string
	domain       string
	rlsKey       string
	// deviceIDs and tokens, when set (--attest), are device i's id and attestation token;
	// the token is sent in tokenHeader (default attestHeader; --sessions: its session token).
	deviceIDs   []string
	tokens      []string
	tokenHeader string
}

// buildRequests pre-builds one request per device, like Envoy would send it.
func buildRequests(s reqShape) (checks []*authv3.CheckRequest, rls []*rlsv3.RateLimitRequest) {
	now := timestamppb.New(time.Now())
	for i := 0; i < s.devices; i++ {
		dev := "device-" + strconv.Itoa(i)
		if i < len(s.deviceIDs) {
			dev = s.deviceIDs[i]
		}
		if s.mode == "rls" {
			rls = append(rls, &rlsv3.RateLimitRequest{
				Domain: s.domain,
				Descriptors: []*ratelimitv3.RateLimitDescriptor{{
					Entries: []*ratelimitv3.RateLimitDescriptor_Entry{{Key: s.rlsKey, Value: dev}},
				}},
				HitsAddend: 1,
			})
			continue
		}
		// Client addresses are request payload only (what Envoy saw); nothing ever connects to them.
		ip := fmt.Sprintf("10.0.%d.%d", (i/250)%256, i%250+1)
		port := uint32(40000 + i%20000)
		reqID := fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i)
		h := make(map[string]string, len(s.headers)+8)
		h[":method"] = "GET"
		h[":path"] = s.path
		h[":authority"] = s.host
		h[":scheme"] = "https"
		h["x-request-id"] = reqID
		h["x-app-token"] = "demo-app-token"
		h["user-agent"] = "gatehouse-load/1.0"
		h["x-forwarded-for"] = ip
		h["x-forwarded-proto"] = "https"
		if s.deviceHeader != "" {
			h[s.deviceHeader] = dev
		}
		if i < len(s.tokens) {
			th := s.tokenHeader
			if th == "" {
				th = attestHeader
			}
			h[th] = s.tokens[i]
		}
		for k, v := range s.headers {
			if v == "" {
				delete(h, k)
			} else {
				h[k] = v
			}
		}
		ext := make(map[string]string, len(s.exts))
		for k, v := range s.exts {
			if v != "" {
				ext[k] = v
			}
		}
		checks = append(checks, &authv3.CheckRequest{
			Attributes: &authv3.AttributeContext{
				Source:      &authv3.AttributeContext_Peer{Address: sockAddr(ip, port)},
				Destination: &authv3.AttributeContext_Peer{Address: sockAddr("127.0.0.1", 8443)},
				Request: &authv3.AttributeContext_Request{
					Time: now,
					Http: &authv3.AttributeContext_HttpRequest{
						Id:       reqID,
						Method:   "GET",
						Headers:  h,
						Path:     s.path,
						Host:     s.host,
						Scheme:   "https",
						Protocol: "HTTP/1.1",
					},
				},
				ContextExtensions: ext,
			},
		})
	}
	return checks, rls
}

func sockAddr(ip string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Protocol: corev3.SocketAddress_TCP, Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

// dialTarget opens n independent client connections (each its own HTTP/2 connection).
func dialTarget(ctx context.Context, addr string, n int) ([]*grpc.ClientConn, error) {
	var conns []*grpc.ClientConn
	for i := 0; i < n; i++ {
		cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			closeAll(conns)
			return nil, err
		}
		conns = append(conns, cc)
		cc.Connect()
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for _, cc := range conns {
		for s := cc.GetState(); s != connectivity.Ready; s = cc.GetState() {
			if !cc.WaitForStateChange(wctx, s) {
				closeAll(conns)
				return nil, fmt.Errorf("connect %s: still %v: %w", addr, s, wctx.Err())
			}
		}
	}
	return conns, nil
}

func closeAll(conns []*grpc.ClientConn) {
	for _, c := range conns {
		_ = c.Close()
	}
}

// waitReady polls addr until it answers grpc.health.v1 SERVING, or (if health is not
// implemented) answers one request of the mode without a transport error.
func waitReady(ctx context.Context, c *child, addr string, probe func(context.Context, *grpc.ClientConn) error) error {
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer cc.Close()
	deadline := time.Now().Add(readyTimeout)
	var last error
	for {
		if c.exited() {
			return c.describeExit()
		}
		last = probeOnce(ctx, cc, probe)
		if last == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s at %s not ready after %v: %v\n%s last output:\n%s", c.name, addr, readyTimeout, last, c.name, indent(c.logTail(2048)))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func probeOnce(ctx context.Context, cc *grpc.ClientConn, probe func(context.Context, *grpc.ClientConn) error) error {
	pctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(cc).Check(pctx, &healthpb.HealthCheckRequest{})
	switch {
	case err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING:
		return nil
	case err == nil:
		return fmt.Errorf("health: %v", resp.GetStatus())
	case grpcstatus.Code(err) == codes.Unimplemented && probe != nil:
		if err := probe(pctx, cc); err != nil && isTransportErr(err) {
			return err
		}
		return nil // answered (a policy error is still an answer)
	default:
		return err
	}
}

func isTransportErr(err error) bool {
	switch grpcstatus.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
		return true
	}
	return false
}

// result is one measurement of one target.
type result struct {
	target     string
	round      int
	elapsed    time.Duration
	ok         int64 // authz: CheckResponse status OK; rls: OVERALL OK
	denied     int64 // authz: other status codes; rls: OVER_LIMIT
	other      int64 // rls: UNKNOWN overall code
	errs       int64 // gRPC errors
	firstErr   string
	hist       *histogram
	cpuTicks   int64 // server (+ redis) CPU during the window; -1 unknown
	redisTicks int64 // part of cpuTicks spent by redis-server
	clientTick int64 // this process's CPU during the window
	redis      *redisDelta
}

func (r *result) responses() int64 { return r.ok + r.denied + r.other }
func (r *result) calls() int64     { return r.responses() + r.errs }

func (r *result) rps() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.responses()) / r.elapsed.Seconds()
}

// cpuPerCall is server CPU µs per call (responses and errors), or -1 if unknown.
func (r *result) cpuPerCall() float64 {
	if r.cpuTicks < 0 || r.calls() == 0 {
		return -1
	}
	return float64(r.cpuTicks) * (1e6 / userHZ) / float64(r.calls())
}

type outcome uint8

const (
	outcomeOK     outcome = iota // allowed / OK
	outcomeDenied                // denied / OVER_LIMIT
	outcomeOther                 // anything else (an UNKNOWN overall code)
)

// caller returns one worker's request function: a random pre-built request of the spec
// sent on cc, classified.
func (spec *loadSpec) caller(cc *grpc.ClientConn, rng *rand.Rand) func(context.Context) (outcome, error) {
	if spec.procs != nil {
		client := extprocv3.NewExternalProcessorClient(cc)
		pick := spec.picker(rng, len(spec.procs))
		return func(ctx context.Context) (outcome, error) {
			o, _, err := runExchange(ctx, client, spec.procs[pick()])
			return o, err
		}
	}
	call := spec.indexCaller(cc)
	pick := spec.picker(rng, max(len(spec.checks), len(spec.rls)))
	return func(ctx context.Context) (outcome, error) { return call(ctx, pick()) }
}

// indexCaller returns a function that sends pre-built request i of the spec on cc and
// classifies the answer.
func (spec *loadSpec) indexCaller(cc *grpc.ClientConn) func(context.Context, int) (outcome, error) {
	if spec.checks != nil {
		client := authv3.NewAuthorizationClient(cc)
		return func(ctx context.Context, i int) (outcome, error) {
			resp, err := client.Check(ctx, spec.checks[i])
			if err != nil || resp.GetStatus().GetCode() == int32(codes.OK) {
				return outcomeOK, err
			}
			return outcomeDenied, nil
		}
	}
	client := rlsv3.NewRateLimitServiceClient(cc)
	return func(ctx context.Context, i int) (outcome, error) {
		resp, err := client.ShouldRateLimit(ctx, spec.rls[i])
		switch {
		case err != nil || resp.GetOverallCode() == rlsv3.RateLimitResponse_OK:
			return outcomeOK, err
		case resp.GetOverallCode() == rlsv3.RateLimitResponse_OVER_LIMIT:
			return outcomeDenied, nil
		}
		return outcomeOther, nil
	}
}

// picker returns one worker's choice of request among n: a device chosen uniformly at
// random, kept for spec.session requests in a row (a session: an app that opens sends a
// streak of calls).
func (spec *loadSpec) picker(rng *rand.Rand, n int) func() int {
	i, left := 0, 0
	return func() int {
		if left <= 0 {
			i, left = rng.IntN(n), max(spec.session, 1)
		}
		left--
		return i
	}
}

// requestSet is the pre-built requests of one series of measurements (one mode).
type requestSet struct {
	checks []*authv3.CheckRequest
	rls    []*rlsv3.RateLimitRequest
	procs  []*procExchange
}

// loadSpec is one closed-loop measurement.
type loadSpec struct {
	session     int // requests in a row for one device (--session)
	conns       []*grpc.ClientConn
	concurrency int
	warmup      time.Duration
	duration    time.Duration
	checks      []*authv3.CheckRequest
	rls         []*rlsv3.RateLimitRequest
	procs       []*procExchange // extproc: one Process stream per call
	// beforeWindow/afterWindow bracket the measured window (CPU and Redis snapshots).
	beforeWindow func()
	afterWindow  func()
}

type workerStats struct {
	ok, denied, other, errs int64
	firstErr                error
	hist                    histogram
}

// drive runs spec.concurrency goroutines back-to-back for warmup (discarded) and then
// duration (recorded). Every RPC is bounded by the window's end plus a 10 s grace.
func drive(ctx context.Context, spec loadSpec) (*result, error) {
	if spec.warmup > 0 {
		if _, err := driveOnce(ctx, spec, spec.warmup, false); err != nil {
			return nil, err
		}
	}
	if spec.beforeWindow != nil {
		spec.beforeWindow()
	}
	r, err := driveOnce(ctx, spec, spec.duration, true)
	if spec.afterWindow != nil {
		spec.afterWindow()
	}
	return r, err
}

func driveOnce(ctx context.Context, spec loadSpec, d time.Duration, record bool) (*result, error) {
	rctx, cancel := context.WithTimeout(ctx, d+10*time.Second)
	defer cancel()
	var stop atomic.Bool
	timer := time.AfterFunc(d, func() { stop.Store(true) })
	defer timer.Stop()

	stats := make([]*workerStats, spec.concurrency)
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < spec.concurrency; w++ {
		ws := &workerStats{}
		stats[w] = ws
		cc := spec.conns[w%len(spec.conns)]
		rng := rand.New(rand.NewPCG(uint64(w)+1, uint64(time.Now().UnixNano())))
		wg.Add(1)
		go func() {
			defer wg.Done()
			call := spec.caller(cc, rng)
			for !stop.Load() && rctx.Err() == nil {
				t0 := time.Now()
				o, err := call(rctx)
				lat := time.Since(t0)
				switch {
				case err != nil:
					ws.errs++
					if ws.firstErr == nil {
						ws.firstErr = err
					}
				case o == outcomeOK:
					ws.ok++
				case o == outcomeDenied:
					ws.denied++
				default:
					ws.other++
				}
				if record {
					ws.hist.record(lat)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r := &result{elapsed: elapsed, hist: &histogram{}}
	for _, ws := range stats {
		r.ok += ws.ok
		r.denied += ws.denied
		r.other += ws.other
		r.errs += ws.errs
		if ws.firstErr != nil && r.firstErr == "" {
			r.firstErr = ws.firstErr.Error()
		}
		r.hist.merge(&ws.hist)
	}
	if r.calls() > 0 && r.errs == r.calls() {
		return r, errors.New("every request failed: " + r.firstErr)
	}
	return r, nil
}

// histogram is a log-linear latency histogram over nanoseconds: values below 2^subBits
// are exact, above that each power of two is split into 2^subBits buckets (bucket width
// ≤ 1/128 of the value). Fixed size, no allocation per sample.
const subBits = 7

type histogram struct {
	counts [64 << subBits]uint64
	n      uint64
	max    time.Duration
}

func bucketOf(v uint64) int {
	if v < 1<<subBits {
		return int(v)
	}
	e := bits.Len64(v) - subBits // ≥ 1
	return e<<subBits + int(v>>(e-1)) - 1<<subBits
}

// bucketMid is a representative value (the middle) of bucket b.
func bucketMid(b int) uint64 {
	if b < 1<<subBits {
		return uint64(b)
	}
	e := b >> subBits
	m := uint64(b&(1<<subBits-1)) + 1<<subBits
	lo := m << (e - 1)
	return lo + (uint64(1)<<(e-1))/2
}

func (h *histogram) record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[bucketOf(uint64(d))]++
	h.n++
	if d > h.max {
		h.max = d
	}
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	if o.max > h.max {
		h.max = o.max
	}
}

// quantile returns the q-quantile (0<q≤1) or 0 with no samples.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for b, c := range h.counts {
		seen += c
		if seen >= rank {
			v := time.Duration(bucketMid(b))
			if v > h.max {
				v = h.max
			}
			return v
		}
	}
	return h.max
}

// warmCounts is what a warm-up pass got back.
type warmCounts struct {
	ok, denied, errs int64
	firstErr         string
}

// warm sends every pre-built request of spec exactly once (each device once), spread over
// spec.concurrency goroutines and spec.conns: --warm-devices, so that the measurements
// that follow see devices that have been seen before.
func warm(ctx context.Context, spec loadSpec) (warmCounts, error) {
	n := max(len(spec.checks), len(spec.rls))
	var (
		next       atomic.Int64
		ok, denied atomic.Int64
		errs       atomic.Int64
		firstErr   atomic.Pointer[string]
		wg         sync.WaitGroup
	)
	for w := 0; w < spec.concurrency; w++ {
		call := spec.indexCaller(spec.conns[w%len(spec.conns)])
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < int64(n) && ctx.Err() == nil; i = next.Add(1) - 1 {
				o, err := call(ctx, int(i))
				switch {
				case err != nil:
					errs.Add(1)
					msg := err.Error()
					firstErr.CompareAndSwap(nil, &msg)
				case o == outcomeOK:
					ok.Add(1)
				default:
					denied.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	c := warmCounts{ok: ok.Load(), denied: denied.Load(), errs: errs.Load()}
	if p := firstErr.Load(); p != nil {
		c.firstErr = *p
	}
	return c, ctx.Err()
}
