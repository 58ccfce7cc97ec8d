package rls_test

import (
	"context"
	"math"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	common "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/gatehouse/gatehouse/ratelimit"
	"github.com/gatehouse/gatehouse/ratelimit/rls"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// start0 is 10 s into a minute, in the middle of a day.
var start0 = time.Date(2025, 3, 14, 12, 0, 10, 0, time.UTC)

// serve starts a real gRPC server on 127.0.0.1:0 with every testdata config and returns a
// client to it.
func serve(t *testing.T, cfg ratelimit.RLSConfig, store ratelimit.Store) (rlsv3.RateLimitServiceClient, *clock, *ratelimit.Metrics) {
	t.Helper()
	if cfg.Files == nil {
		files, err := filepath.Glob("../testdata/*.yaml")
		if err != nil || len(files) == 0 {
			t.Fatal("no testdata", err)
		}
		cfg.Files = files
	}
	if store == nil {
		s, err := ratelimit.OpenStore(context.Background(), ratelimit.StoreConfig{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		store = s
	}
	m := ratelimit.NewMetrics()
	e, err := ratelimit.Compile(ratelimit.CompileInput{RLS: cfg}, store, ratelimit.WithMetrics(m))
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{t: start0}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	rls.New(func() *ratelimit.Engine { return e }, c.now).Register(g)
	go g.Serve(lis)
	t.Cleanup(g.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return rlsv3.NewRateLimitServiceClient(conn), c, m
}

func desc(kv ...string) *common.RateLimitDescriptor {
	d := &common.RateLimitDescriptor{}
	for i := 0; i+1 < len(kv); i += 2 {
		d.Entries = append(d.Entries, &common.RateLimitDescriptor_Entry{Key: kv[i], Value: kv[i+1]})
	}
	return d
}

func call(t *testing.T, c rlsv3.RateLimitServiceClient, domain string, hits uint32, ds ...*common.RateLimitDescriptor) *rlsv3.RateLimitResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := c.ShouldRateLimit(ctx, &rlsv3.RateLimitRequest{Domain: domain, Descriptors: ds, HitsAddend: hits})
	if err != nil {
		t.Fatal(err)
	}
	if res.OverallCode == rlsv3.RateLimitResponse_UNKNOWN {
		t.Fatal("overall_code UNKNOWN")
	}
	if len(res.Statuses) != len(ds) {
		t.Fatalf("%d statuses for %d descriptors", len(res.Statuses), len(ds))
	}
	return res
}

const (
	ok   = rlsv3.RateLimitResponse_OK
	over = rlsv3.RateLimitResponse_OVER_LIMIT
)

// check compares one status: code, remaining and the limit (rpu 0 = no limit).
func check(t *testing.T, where string, st *rlsv3.RateLimitResponse_DescriptorStatus, code rlsv3.RateLimitResponse_Code, remaining uint32, rpu uint32) {
	t.Helper()
	if st.Code != code || st.LimitRemaining != remaining {
		t.Fatalf("%s: code %v remaining %d, want %v %d", where, st.Code, st.LimitRemaining, code, remaining)
	}
	if rpu == 0 {
		if st.CurrentLimit != nil {
			t.Fatalf("%s: unexpected limit %v", where, st.CurrentLimit)
		}
		return
	}
	if st.CurrentLimit.GetRequestsPerUnit() != rpu {
		t.Fatalf("%s: limit %v, want %d", where, st.CurrentLimit, rpu)
	}
}

func TestTwentyPerMinute(t *testing.T) {
	c, _, _ := serve(t, ratelimit.RLSConfig{}, nil)
	for i := 1; i <= 21; i++ {
		res := call(t, c, "basic", 0, desc("generic_key", "slowpath")) // hits_addend 0 counts as 1
		st := res.Statuses[0]
		if i <= 20 {
			if res.OverallCode != ok {
				t.Fatalf("call %d over", i)
			}
			check(t, "call "+strconv.Itoa(i), st, ok, uint32(20-i), 20)
			if res.RawBody != nil {
				t.Fatal("body on OK")
			}
			continue
		}
		if res.OverallCode != over {
			t.Fatalf("call 21: %v", res.OverallCode)
		}
		check(t, "call 21", st, over, 0, 20)
		if st.CurrentLimit.Unit != rlsv3.RateLimitResponse_RateLimit_MINUTE || st.DurationUntilReset.AsDuration() != 50*time.Second {
			t.Fatalf("limit %v reset %v", st.CurrentLimit, st.DurationUntilReset.AsDuration())
		}
		if string(res.RawBody) != `{"success":false,"error":{"code":"RATE_LIMITED","message":"Too many requests"}}` {
			t.Fatalf("body %s", res.RawBody)
		}
		if h := res.ResponseHeadersToAdd; len(h) != 1 || h[0].Key != "content-type" || h[0].Value != "application/json" {
			t.Fatalf("headers %v", h)
		}
	}
}

func TestHitsAddend(t *testing.T) {
	c, _, _ := serve(t, ratelimit.RLSConfig{}, nil)
	res := call(t, c, "basic", 15, desc("generic_key", "slowpath"))
	check(t, "15 hits", res.Statuses[0], ok, 5, 20)
	d := desc("generic_key", "slowpath")
	d.HitsAddend = wrapperspb.UInt64(5) // the descriptor's own addend wins
	res = call(t, c, "basic", 15, d)
	check(t, "descriptor addend", res.Statuses[0], ok, 0, 20)
	res = call(t, c, "basic", 0, desc("generic_key", "slowpath"))
	check(t, "over", res.Statuses[0], over, 0, 20)
}

func TestUnknownDomainAndNoMatch(t *testing.T) {
	c, _, _ := serve(t, ratelimit.RLSConfig{}, nil)
	res := call(t, c, "nope", 1, desc("a", "b"), desc("c", "d"))
	if res.OverallCode != ok {
		t.Fatal(res.OverallCode)
	}
	for i, st := range res.Statuses {
		check(t, "unknown domain "+strconv.Itoa(i), st, ok, 0, 0)
	}
	res = call(t, c, "basic", 1, desc("nothing", "here"))
	check(t, "no match", res.Statuses[0], ok, 0, 0)
}

func TestNestedDescriptors(t *testing.T) {
	c, _, _ := serve(t, ratelimit.RLSConfig{}, nil)
	marketing := desc("message_type", "marketing", "to_number", "2061111111")
	number := desc("to_number", "2061111111")
	for i := 1; i <= 5; i++ {
		res := call(t, c, "messaging", 1, marketing, number)
		check(t, "marketing", res.Statuses[0], ok, uint32(5-i), 5)
		check(t, "number", res.Statuses[1], ok, uint32(100-i), 100)
	}
	res := call(t, c, "messaging", 1, marketing, number)
	check(t, "6th marketing", res.Statuses[0], over, 0, 5)
	// As envoyproxy/ratelimit (counting: every_hit), the other limits of a denied
	// request are consumed.
	check(t, "6th number", res.Statuses[1], ok, 94, 100)
	if res.Statuses[0].CurrentLimit.Unit != rlsv3.RateLimitResponse_RateLimit_DAY {
		t.Fatal(res.Statuses[0].CurrentLimit)
	}
	// Each phone number has its own counter.
	res = call(t, c, "messaging", 1, desc("message_type", "marketing", "to_number", "2062222222"))
	check(t, "other number", res.Statuses[0], ok, 4, 5)
}

func TestMatching(t *testing.T) {
	c, _, _ := serve(t, ratelimit.RLSConfig{}, nil)
	t.Run("most specific value wins, 0 blocks", func(t *testing.T) {
		st := call(t, c, "edge_proxy_per_ip", 1, desc("remote_address", "50.0.0.5")).Statuses[0]
		if st.Code != over || st.CurrentLimit == nil || st.CurrentLimit.RequestsPerUnit != 0 {
			t.Fatalf("blocked ip: %v", st)
		}
	})
	t.Run("other ip", func(t *testing.T) {
		for i := 1; i <= 11; i++ {
			st := call(t, c, "edge_proxy_per_ip", 1, desc("remote_address", "50.0.0.1")).Statuses[0]
			if i <= 10 {
				check(t, "ip", st, ok, uint32(10-i), 10)
			} else {
				check(t, "ip 11", st, over, 0, 10)
			}
		}
	})
	t.Run("depth must match", func(t *testing.T) {
		check(t, "deeper request", call(t, c, "example4", 1, desc("key", "value", "subkey", "subvalue")).Statuses[0], ok, 0, 0)
		check(t, "shallower request", call(t, c, "example4", 1, desc("other", "value")).Statuses[0], ok, 0, 0)
		check(t, "nested", call(t, c, "example4", 1, desc("other", "value", "subkey", "x")).Statuses[0], ok, 299, 300)
	})
	t.Run("unlimited", func(t *testing.T) {
		check(t, "ldap", call(t, c, "internal", 1, desc("ldap", "x")).Statuses[0], ok, math.MaxUint32, 0)
	})
	t.Run("wildcard prefix", func(t *testing.T) {
		for i := 1; i <= 3; i++ {
			st := call(t, c, "example8", 1, desc("path", "/api/v1/users")).Statuses[0]
			if i < 3 {
				check(t, "users", st, ok, uint32(2-i), 2)
			} else {
				check(t, "users 3", st, over, 0, 2)
			}
		}
		check(t, "items counts apart", call(t, c, "example8", 1, desc("path", "/api/v1/items")).Statuses[0], ok, 1, 2)
		check(t, "no prefix", call(t, c, "example8", 1, desc("path", "/api/v2/items")).Statuses[0], ok, 0, 0)
		check(t, "key alone", call(t, c, "example8", 1, desc("key1", "zzz")).Statuses[0], ok, 9, 10)
		check(t, "key and value", call(t, c, "example8", 1, desc("key1", "value1")).Statuses[0], ok, 19, 20)
	})
}

func TestReplaces(t *testing.T) {
	c, _, _ := serve(t, ratelimit.RLSConfig{}, nil)
	first := desc("key_1", "value_1", "user", "bkthomps")
	second := desc("key_2", "value_2", "user", "bkthomps")
	for i := 1; i <= 11; i++ {
		res := call(t, c, "example7", 1, first, second)
		check(t, "replaced", res.Statuses[0], ok, 0, 0)
		if i <= 10 {
			check(t, "replacing", res.Statuses[1], ok, uint32(10-i), 10)
		} else {
			check(t, "replacing 11", res.Statuses[1], over, 0, 10)
		}
	}
	// The replaced limit was not touched.
	check(t, "specific alone", call(t, c, "example7", 1, first).Statuses[0], ok, 4, 5)
}

func TestShadowMode(t *testing.T) {
	c, _, m := serve(t, ratelimit.RLSConfig{}, nil)
	userA := desc("service", "auth", "user", "user-a")
	for i := 1; i <= 12; i++ {
		res := call(t, c, "example6", 1, userA)
		if res.OverallCode != ok || res.Statuses[0].Code != ok {
			t.Fatalf("shadow call %d: %v", i, res)
		}
	}
	if n := counterValue(m.ShadowCounter("rls", "example6.service.user_user-a")); n != 2 {
		t.Fatalf("shadow metric %v, want 2", n)
	}
	for i := 1; i <= 21; i++ {
		res := call(t, c, "example6", 1, desc("service", "auth", "user", "user-b"))
		if (res.OverallCode == over) != (i == 21) {
			t.Fatalf("user-b call %d: %v", i, res.OverallCode)
		}
	}
	t.Run("global", func(t *testing.T) {
		c, _, m := serve(t, ratelimit.RLSConfig{ShadowMode: true}, nil)
		for i := 0; i < 21; i++ {
			call(t, c, "basic", 1, desc("generic_key", "slowpath"))
		}
		res := call(t, c, "basic", 1, desc("generic_key", "slowpath"))
		if res.OverallCode != ok || res.Statuses[0].Code != over {
			t.Fatalf("global shadow: %v", res)
		}
		if n := counterValue(m.ShadowCounter("rls", "global")); n != 2 {
			t.Fatalf("global shadow metric %v", n)
		}
	})
}

func TestLimitOverride(t *testing.T) {
	c, _, _ := serve(t, ratelimit.RLSConfig{}, nil)
	d := desc("anything", "x")
	d.Limit = &common.RateLimitDescriptor_RateLimitOverride{RequestsPerUnit: 2, Unit: typev3.RateLimitUnit_MINUTE}
	check(t, "1", call(t, c, "basic", 1, d).Statuses[0], ok, 1, 2)
	check(t, "2", call(t, c, "basic", 1, d).Statuses[0], ok, 0, 2)
	check(t, "3", call(t, c, "basic", 1, d).Statuses[0], over, 0, 2)
	check(t, "unknown domain ignores overrides", call(t, c, "nope", 1, d).Statuses[0], ok, 0, 0)
}

func TestHeadersAndWindows(t *testing.T) {
	c, clk, _ := serve(t, ratelimit.RLSConfig{AddHeaders: true}, nil)
	headers := func(res *rlsv3.RateLimitResponse) map[string]string {
		h := map[string]string{}
		for _, v := range res.ResponseHeadersToAdd {
			h[v.Key] = v.Value
		}
		return h
	}
	reset := strconv.FormatInt(start0.Truncate(time.Minute).Add(time.Minute).Unix(), 10)
	for i := 1; i <= 11; i++ {
		res := call(t, c, "demo", 1, desc("device", "d1"), desc("unrelated", "x"))
		h := headers(res)
		if i <= 10 {
			if h["X-RateLimit-Limit"] != "10" || h["X-RateLimit-Remaining"] != strconv.Itoa(10-i) || h["X-RateLimit-Reset"] != reset || h["Retry-After"] != "" {
				t.Fatalf("call %d headers %v", i, h)
			}
			continue
		}
		if res.OverallCode != over || h["Retry-After"] != "50" || h["X-RateLimit-Remaining"] != "0" || h["content-type"] != "application/json" {
			t.Fatalf("call 11 headers %v", h)
		}
	}
	clk.add(50 * time.Second) // the next minute: a new window
	if res := call(t, c, "demo", 1, desc("device", "d1")); res.OverallCode != ok {
		t.Fatal("window did not reset")
	}
	t.Run("gatehouse gcra", func(t *testing.T) {
		for i := 0; i < 100; i++ {
			if res := call(t, c, "rich", 1, desc("api_key", "k")); res.OverallCode != ok {
				t.Fatalf("burst call %d over", i)
			}
		}
		res := call(t, c, "rich", 1, desc("api_key", "k"))
		if res.OverallCode != over || headers(res)["Retry-After"] != "1" {
			t.Fatalf("101st: %v %v", res.OverallCode, headers(res))
		}
		clk.add(20 * time.Millisecond)
		if res := call(t, c, "rich", 1, desc("api_key", "k")); res.OverallCode != ok {
			t.Fatal("no refill after one interval")
		}
	})
	t.Run("90s window and calendar month", func(t *testing.T) {
		st := call(t, c, "rich", 1, desc("tenant", "t")).Statuses[0]
		if st.CurrentLimit.Unit != rlsv3.RateLimitResponse_RateLimit_SECOND || st.CurrentLimit.UnitMultiplier.GetValue() != 90 {
			t.Fatalf("90s: %v", st.CurrentLimit)
		}
		st = call(t, c, "rich", 1, desc("plan", "p")).Statuses[0]
		monthEnd := time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC)
		if st.CurrentLimit.Unit != rlsv3.RateLimitResponse_RateLimit_MONTH || st.DurationUntilReset.AsDuration() != monthEnd.Sub(clk.now()) {
			t.Fatalf("month: %v %v", st.CurrentLimit, st.DurationUntilReset.AsDuration())
		}
	})
}

// downStore is a store whose backend is unreachable (a real Redis outage is in
// ratelimit's redis tests).
type downStore struct{ ratelimit.Store }

func (downStore) Apply(context.Context, time.Time, []ratelimit.Op, []ratelimit.Outcome) error {
	return ratelimit.ErrUnavailable
}

func TestStoreFailure(t *testing.T) {
	c, _, _ := serve(t, ratelimit.RLSConfig{}, downStore{})
	_, err := c.ShouldRateLimit(context.Background(), &rlsv3.RateLimitRequest{Domain: "demo", Descriptors: []*common.RateLimitDescriptor{desc("device", "d")}})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("fail mode error: %v", err)
	}
	c, _, _ = serve(t, ratelimit.RLSConfig{FailMode: "allow"}, downStore{})
	if res := call(t, c, "demo", 1, desc("device", "d")); res.OverallCode != ok {
		t.Fatal("fail mode allow")
	}
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}

// TestHugeHitsAddend: a hits_addend far beyond a token bucket's burst is refused and
// consumes nothing; it must not wrap around into a refilled bucket.
func TestHugeHitsAddend(t *testing.T) {
	c, _, _ := serve(t, ratelimit.RLSConfig{}, nil)
	for _, hits := range []uint32{math.MaxInt32, math.MaxUint32} { // hits × 6e9 ns wraps negative, then positive
		if res := call(t, c, "corner", hits, desc("bucket", "fresh")); res.OverallCode != over {
			t.Fatalf("%d hits on a fresh bucket of 10: %v", hits, res.OverallCode)
		}
	}
	huge := desc("bucket", "fresh")
	huge.HitsAddend = wrapperspb.UInt64(math.MaxUint64)
	if res := call(t, c, "corner", 1, huge); res.OverallCode != over {
		t.Fatalf("2^64-1 hits as the descriptor's own: %v", res.OverallCode)
	}
	check(t, "after the refusals", call(t, c, "corner", 1, desc("bucket", "fresh")).Statuses[0], ok, 9, 10)

	for i := 0; i < 10; i++ {
		call(t, c, "corner", 1, desc("bucket", "used"))
	}
	check(t, "11th", call(t, c, "corner", 1, desc("bucket", "used")).Statuses[0], over, 0, 10)
	res := call(t, c, "corner", math.MaxInt32, desc("bucket", "used"))
	check(t, "2^31-1 hits on an empty bucket", res.Statuses[0], over, 0, 10)
	if d := res.Statuses[0].DurationUntilReset.AsDuration(); d <= 0 || d > time.Minute {
		t.Fatalf("duration_until_reset %v", d)
	}
	check(t, "after it", call(t, c, "corner", 1, desc("bucket", "used")).Statuses[0], over, 0, 10)
}

// TestDescriptorHitsAddendZero: a descriptor's own hits_addend of 0 is checked without
// counting (the request's 0 still counts as 1).
func TestDescriptorHitsAddendZero(t *testing.T) {
	c, _, _ := serve(t, ratelimit.RLSConfig{}, nil)
	peek := desc("check", "k")
	peek.HitsAddend = wrapperspb.UInt64(0)
	for i := 0; i < 4; i++ {
		check(t, "check only", call(t, c, "corner", 1, peek).Statuses[0], ok, 3, 3)
	}
	check(t, "request's 0", call(t, c, "corner", 0, desc("check", "k")).Statuses[0], ok, 2, 3)
	check(t, "check only after one", call(t, c, "corner", 1, peek).Statuses[0], ok, 2, 3)
}

// TestZeroRequestsPerUnitBlocks: requests_per_unit 0 refuses every request, whatever the
// unit (here a day, a calendar period).
func TestZeroRequestsPerUnitBlocks(t *testing.T) {
	c, _, _ := serve(t, ratelimit.RLSConfig{}, nil)
	for i := 0; i < 2; i++ {
		if res := call(t, c, "corner", 1, desc("blocked", "x")); res.OverallCode != over {
			t.Fatalf("request %d: %v", i+1, res.OverallCode)
		}
	}
}

// TestNegativeHitsRefund: is_negative_hits gives units back (never below nothing
// counted) and is never refused.
func TestNegativeHitsRefund(t *testing.T) {
	c, _, _ := serve(t, ratelimit.RLSConfig{}, nil)
	refund := func(n uint64, kv ...string) *common.RateLimitDescriptor {
		d := desc(kv...)
		d.HitsAddend = wrapperspb.UInt64(n)
		d.IsNegativeHits = true
		return d
	}
	call(t, c, "corner", 3, desc("check", "neg"))
	check(t, "spent", call(t, c, "corner", 1, desc("check", "neg")).Statuses[0], over, 0, 3) // counted: 4
	check(t, "2 given back", call(t, c, "corner", 1, refund(2, "check", "neg")).Statuses[0], ok, 1, 3)
	check(t, "then counted", call(t, c, "corner", 1, desc("check", "neg")).Statuses[0], ok, 0, 3)
	check(t, "more than counted", call(t, c, "corner", 1, refund(100, "check", "neg")).Statuses[0], ok, 3, 3)
	check(t, "a fresh key", call(t, c, "corner", 1, refund(1, "check", "fresh")).Statuses[0], ok, 3, 3)
	call(t, c, "corner", 3, desc("check", "beside"))
	res := call(t, c, "corner", 1, refund(2, "check", "beside"), desc("blocked", "x"))
	if res.OverallCode != over {
		t.Fatalf("a refund beside a refusal: %v", res.OverallCode)
	}
	check(t, "the refund beside a refusal is kept", call(t, c, "corner", 1, desc("check", "beside")).Statuses[0], ok, 1, 3)

	for i := 0; i < 10; i++ {
		call(t, c, "corner", 1, desc("bucket", "neg"))
	}
	check(t, "bucket empty", call(t, c, "corner", 1, desc("bucket", "neg")).Statuses[0], over, 0, 10)
	check(t, "4 tokens back", call(t, c, "corner", 1, refund(4, "bucket", "neg")).Statuses[0], ok, 4, 10)
	check(t, "more than the burst back", call(t, c, "corner", 1, refund(math.MaxUint32, "bucket", "neg")).Statuses[0], ok, 10, 10)
}

// TestFilesPattern: rate_limit_service.files entries may be patterns; one that matches
// nothing is an error, not an empty configuration.
func TestFilesPattern(t *testing.T) {
	c, _, _ := serve(t, ratelimit.RLSConfig{Files: []string{"../testdata/corner.y*ml", "../testdata/basic.yaml"}}, nil)
	check(t, "from the pattern", call(t, c, "corner", 1, desc("check", "p")).Statuses[0], ok, 2, 3)
	check(t, "from the name", call(t, c, "basic", 1, desc("generic_key", "slowpath")).Statuses[0], ok, 19, 20)
	st, err := ratelimit.OpenStore(context.Background(), ratelimit.StoreConfig{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_, err = ratelimit.Compile(ratelimit.CompileInput{RLS: ratelimit.RLSConfig{Files: []string{"../testdata/nothing-*.yaml"}}}, st)
	if err == nil || !strings.Contains(err.Error(), "matches no file") {
		t.Fatalf("a pattern matching nothing: %v", err)
	}
}

// TestNewerDescriptorFields: share_threshold, quota_mode and value_to_metric load and
// behave as envoyproxy/ratelimit documents them.
func TestNewerDescriptorFields(t *testing.T) {
	c, _, _ := serve(t, ratelimit.RLSConfig{}, nil)
	t.Run("share_threshold", func(t *testing.T) {
		check(t, "files/a.pdf", call(t, c, "newer", 1, desc("files", "files/a.pdf")).Statuses[0], ok, 2, 3)
		check(t, "files/b.csv shares it", call(t, c, "newer", 1, desc("files", "files/b.csv")).Statuses[0], ok, 1, 3)
		check(t, "files/a.pdf again", call(t, c, "newer", 1, desc("files", "files/a.pdf")).Statuses[0], ok, 0, 3)
		check(t, "files/c.txt", call(t, c, "newer", 1, desc("files", "files/c.txt")).Statuses[0], over, 0, 3)
	})
	t.Run("without it", func(t *testing.T) {
		check(t, "files/a.pdf", call(t, c, "newer", 1, desc("own", "files/a.pdf")).Statuses[0], ok, 2, 3)
		check(t, "files/b.csv on its own", call(t, c, "newer", 1, desc("own", "files/b.csv")).Statuses[0], ok, 2, 3)
	})
	t.Run("shared at an upper level", func(t *testing.T) {
		check(t, "team-a u1", call(t, c, "newer", 1, desc("team", "team-a", "user", "u1")).Statuses[0], ok, 1, 2)
		check(t, "team-b u1 shares it", call(t, c, "newer", 1, desc("team", "team-b", "user", "u1")).Statuses[0], ok, 0, 2)
		check(t, "team-a u2 has its own", call(t, c, "newer", 1, desc("team", "team-a", "user", "u2")).Statuses[0], ok, 1, 2)
	})
	t.Run("quota_mode", func(t *testing.T) {
		check(t, "first", call(t, c, "newer", 1, desc("quota", "q")).Statuses[0], ok, 0, 1)
		res := call(t, c, "newer", 1, desc("quota", "q"))
		if res.OverallCode != ok {
			t.Fatalf("over its quota: %v, want OK", res.OverallCode)
		}
		check(t, "over its quota", res.Statuses[0], ok, 0, 1)
	})
}
