package extauthz_test

import (
	"context"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/gatehouse/gatehouse/config"
	"github.com/gatehouse/gatehouse/extauthz"
	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/policy/attest/attesttest"
	"github.com/gatehouse/gatehouse/ratelimit"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// deviceThrottleYAML is the mobile shape: every request to /v1/secure carries a signed
// attestation token of its device, passes the device's GCRA throttle (50/s, burst 100)
// and the app's monthly quota, on the memory store.
func deviceThrottleYAML(jwks string) string {
	return `server:
  default_dialect: protectmyapi
  fail_mode: closed
apps:
  - name: demo
    dialect: protectmyapi
    app_token_sha256: [05c7cd5c50922870dcfe86ad612a8a32ff0ae65eb6d7894a0b852403fbf25767] # demo-app-token
    endpoints: ["*"]
    attestation:
      providers:
        - type: signed_token
          header: x-attestation-token
          issuer: https://attest.bench
          audience: demo
          max_age: 1h
          jwks:
            inline: '` + jwks + `'
    limits:
      - {name: per_device, key: [device], algorithm: gcra, requests: 50, per: 1s, burst: 100}
      - {name: monthly, key: [app], requests: 1000000000000, period: month, time_zone: UTC}
endpoints:
  - name: secure
    path: /v1/secure
    methods: [GET]
    attestation: require
store:
  type: memory
`
}

// deviceFleet is a server on the mobile shape and one request per device, as the load
// tool's --device-throttle run sends them, encoded as they arrive (wire) and, for small
// fleets, decoded once (held); now is the server's clock.
type deviceFleet struct {
	srv   *extauthz.Server
	cache *policy.Cache
	wire  [][]byte
	reqs  []*authv3.CheckRequest
	now   func() time.Time
}

// benchClockStep is how far the fleet's clock moves per Check: with the fleet's devices
// taken in turn, each device sees far fewer than 50 requests a second, so every request
// is admitted, and the tokens (valid for an hour) outlive any benchmark run.
const benchClockStep = 50 * time.Microsecond

// newDeviceFleet builds a fleet of devices. Only a held fleet keeps its requests decoded:
// a large fleet's decoded requests would be most of the heap the collector scans, which a
// server's is not.
func newDeviceFleet(tb testing.TB, devices int, held bool) *deviceFleet {
	key := attesttest.NewKey(tb, "ES256", "bench-1")
	cache, err := policy.NewCache(64 << 20)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(cache.Close)
	st, err := ratelimit.OpenStore(context.Background(), ratelimit.StoreConfig{}, ratelimit.SystemClock)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	start := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	var ticks atomic.Int64
	now := func() time.Time { return start.Add(time.Duration(ticks.Add(1)) * benchClockStep) }
	snap, err := config.LoadBytes([]byte(deviceThrottleYAML(string(attesttest.JWKS(key)))), "bench.yaml",
		config.Deps{Cache: cache, Offline: true, Now: now, Runtime: config.Runtime{Store: st}})
	if err != nil {
		tb.Fatal(err)
	}
	f := &deviceFleet{srv: extauthz.NewServer(func() *policy.Rules { return snap.Rules }, extauthz.Options{Now: now}), cache: cache, now: now}
	for i := range devices {
		id := "device-" + strconv.Itoa(i)
		tok := attesttest.Sign(tb, key, attesttest.Claims{"iss": "https://attest.bench", "aud": "demo", "iat": start.Unix(),
			"nbf": start.Unix(), "exp": start.Add(time.Hour).Unix(), "device_id": id, "emulator": false, "tampered": false}, nil)
		r := deviceRequest(i, id, tok)
		b, err := proto.Marshal(r)
		if err != nil {
			tb.Fatal(err)
		}
		f.wire = append(f.wire, b)
		if held {
			f.reqs = append(f.reqs, r)
		}
	}
	// Every device once, until each token's verdict comes from the cache: the steady state
	// of a fleet whose tokens were seen before. Ristretto applies writes asynchronously.
	for i := range f.wire {
		f.check(tb, f.request(tb, i))
	}
	cache.Wait()
	for i := range f.wire {
		if resp := f.check(tb, f.request(tb, i)); resp.GetDynamicMetadata() == nil {
			tb.Fatal("no metadata")
		}
	}
	return f
}

// request is device i's request: held, or decoded from the wire as the server decodes it.
func (f *deviceFleet) request(tb testing.TB, i int) *authv3.CheckRequest {
	if f.reqs != nil {
		return f.reqs[i]
	}
	r := new(authv3.CheckRequest)
	if err := wireCodec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(f.wire[i])}, r); err != nil {
		tb.Fatal(err)
	}
	return r
}

// wireCodec is the server's codec.
var wireCodec = extauthz.Codec()

// check runs one Check and fails unless it was allowed.
func (f *deviceFleet) check(tb testing.TB, r *authv3.CheckRequest) *authv3.CheckResponse {
	resp, err := f.srv.Check(context.Background(), r)
	if err != nil || resp.GetOkResponse() == nil {
		tb.Fatalf("not allowed: %v %v", resp.GetDeniedResponse(), err)
	}
	return resp
}

// deviceRequest is device i's request as the load tool builds it.
func deviceRequest(i int, id, tok string) *authv3.CheckRequest {
	ip := "10.0." + strconv.Itoa((i/250)%256) + "." + strconv.Itoa(i%250+1)
	reqID := "0000" + strconv.Itoa(100000+i) + "-0000-4000-8000-000000000000"
	h := map[string]string{
		":method": "GET", ":path": "/v1/secure", ":authority": "api.example.com", ":scheme": "https",
		"x-request-id": reqID, "x-app-token": "demo-app-token", "user-agent": "gatehouse-load/1.0",
		"x-forwarded-for": ip, "x-forwarded-proto": "https", "x-device-id": id, "x-attestation-token": tok,
	}
	peer := func(a string, port uint32) *authv3.AttributeContext_Peer {
		return &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Protocol: corev3.SocketAddress_TCP, Address: a, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}}}
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source:      peer(ip, uint32(40000+i%20000)),
		Destination: peer("127.0.0.1", 8443),
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: reqID, Method: "GET", Headers: h, Path: "/v1/secure", Host: "api.example.com", Scheme: "https", Protocol: "HTTP/1.1",
		}},
	}}
}

// BenchmarkCheckAttestedDevice is Check (adapter, pipeline and the response's encoding
// by the server's codec; no transport) for the mobile shape: an attested device whose
// token verdict is cached, a GCRA throttle per device and a monthly quota per app, on the
// memory store; devices taken in turn from a fleet, built before the measurements.
//   - fleet=4096/held: the requests decoded once, ahead: Gatehouse's own work.
//   - fleet=100000/wire: the load run's fleet; each request decoded by the codec first,
//     as the server receives it (a no-op server pays that too): the heap and the CPU's
//     caches as a server's under that load.
//
// The collector's target is the server's. misses/op is the verdict cache's: 0 when the
// path measured is the cached one. cpu-ns/op is the process's CPU time per call, the
// collector's included.
func BenchmarkCheckAttestedDevice(b *testing.B) {
	for _, c := range []struct {
		devices int
		held    bool
	}{{4096, true}, {100_000, false}} {
		mode := map[bool]string{true: "held", false: "wire"}[c.held]
		b.Run("fleet="+strconv.Itoa(c.devices)+"/"+mode, func(b *testing.B) {
			benchFleet(b, newDeviceFleet(b, c.devices, c.held))
		})
	}
}

// benchGCPercent is the server's collector target (cmd/gatehouse defaultGCPercent).
const benchGCPercent = 200

func benchFleet(b *testing.B, f *deviceFleet) {
	defer debug.SetGCPercent(debug.SetGCPercent(benchGCPercent))
	runtime.GC()
	var next atomic.Uint64
	misses, cpu := f.cache.Stats().Misses, processCPU()
	b.ReportAllocs()
	b.ResetTimer()
	defer func() {
		b.ReportMetric(float64(f.cache.Stats().Misses-misses)/float64(b.N), "misses/op")
		b.ReportMetric(float64(processCPU()-cpu)/float64(b.N), "cpu-ns/op")
	}()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r := f.request(b, int(next.Add(1)%uint64(len(f.wire))))
			resp, err := f.srv.Check(context.Background(), r)
			if err != nil || resp.GetOkResponse() == nil {
				b.Fatal("not allowed")
			}
			buf, err := wireCodec.Marshal(resp)
			if err != nil {
				b.Fatal(err)
			}
			buf.Free()
		}
	})
}

// TestCheckAttestedDeviceAllocs: Check of an attested device's allowed request on the
// mobile shape costs exactly 9 allocations: the request's input and decision, in one
// block; the decision id; the decision's upstream and removed header lists and the client
// address the limits key; the response's fixed parts, its header slab and its metadata
// map (header and group). The rate-limit numbers are spelled already.
func TestCheckAttestedDeviceAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not exact under the race detector (sync.Pool drops at random)")
	}
	f := newDeviceFleet(t, 64, true)
	i := 0
	n := testing.AllocsPerRun(200, func() {
		i++
		f.check(t, f.reqs[i%len(f.reqs)])
	})
	if n != 9 {
		t.Errorf("%.0f allocations, want 9", n)
	}
}
