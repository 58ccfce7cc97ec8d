package redisstore_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/ratelimit"
	"github.com/gatehouse/gatehouse/ratelimit/internal/redistest"
	"github.com/gatehouse/gatehouse/ratelimit/redisstore"
)

// TestRedisTLSAndPassword: the store counts through a TLS port that requires a password,
// with the password read from a file; a wrong password, an untrusted server certificate
// or plain TCP leave the store unavailable, and no error repeats the password.
func TestRedisTLSAndPassword(t *testing.T) {
	dir := t.TempDir()
	caFile, certFile, keyFile := writeTestPKI(t, dir)
	otherCA, _, _ := writeTestPKI(t, t.TempDir())
	const password = "tls-test-password-7f3a"
	r := redistest.Start(t, "--port", "0", "--tls-port", "{port}", "--tls-cert-file", certFile,
		"--tls-key-file", keyFile, "--tls-ca-cert-file", caFile, "--tls-auth-clients", "no",
		"--requirepass", password)
	pwFile := filepath.Join(dir, "password")
	if err := os.WriteFile(pwFile, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	badPw := filepath.Join(dir, "bad")
	if err := os.WriteFile(badPw, []byte("not-it"), 0o600); err != nil {
		t.Fatal(err)
	}
	in := ratelimit.CompileInput{Apps: map[string]ratelimit.AppLimits{"a": {Limits: []ratelimit.LimitConfig{
		{Name: "l", Key: []string{"device"}, Requests: 2, Per: time.Hour}}}}}
	ctx := context.Background()

	good := ratelimit.RedisConfig{Addrs: []string{r.Addr()}, PasswordFile: pwFile, TLS: ratelimit.TLSConfig{Enabled: true, CAFile: caFile}}
	e := mustCompile(t, in, openTestRedis(t, good, nil))
	for i, want := range []policy.Code{"", "", policy.DeviceRateLimited} {
		res, err := e.Limit(ctx, t0, policy.LimitRequest{App: "a", Device: "d"})
		if err != nil || res.Code != want {
			t.Fatalf("request %d over TLS: %+v %v", i+1, res, err)
		}
	}

	for name, cfg := range map[string]ratelimit.RedisConfig{
		"wrong password": {Addrs: good.Addrs, PasswordFile: badPw, TLS: good.TLS},
		"untrusted CA":   {Addrs: good.Addrs, PasswordFile: pwFile, TLS: ratelimit.TLSConfig{Enabled: true, CAFile: otherCA}},
		"plain TCP":      {Addrs: good.Addrs, PasswordFile: pwFile},
	} {
		t.Run(name, func(t *testing.T) {
			cfg.Timeout, cfg.DialTimeout = 200*time.Millisecond, 500*time.Millisecond
			s, err := redisstore.Open(ctx, cfg, ratelimit.SystemClock)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			_, err = mustCompile(t, in, s).Limit(ctx, t0, policy.LimitRequest{App: "a", Device: "x"})
			if !errors.Is(err, ratelimit.ErrUnavailable) {
				t.Fatalf("want ratelimit.ErrUnavailable, got %v", err)
			}
			if strings.Contains(err.Error(), password) || strings.Contains(err.Error(), "not-it") {
				t.Fatalf("the error repeats a password: %v", err)
			}
		})
	}
}

// TestRedisSentinelFailover: through Sentinel the store finds the master, and when the
// master dies it follows the promoted replica; counts replicated before the failure
// survive it.
func TestRedisSentinelFailover(t *testing.T) {
	master := redistest.Start(t, "--repl-diskless-sync-delay", "0") // the replica syncs at once
	mport := strconv.Itoa(master.Port())
	replica := redistest.Start(t, "--replicaof", "127.0.0.1", mport)
	sentinel := redistest.StartConf(t, "sentinel monitor gh 127.0.0.1 "+mport+" 1\n"+
		"sentinel down-after-milliseconds gh 300\n"+
		"sentinel failover-timeout gh 2000\n", "--sentinel")
	start := time.Now()
	waitFor(t, 10*time.Second, "the replica to sync", func() bool {
		info, err := replica.Query("INFO", "replication")
		return err == nil && strings.Contains(info, "master_link_status:up")
	})

	t.Logf("replica in sync after %v", time.Since(start).Round(time.Millisecond))
	// No reserves: every request below must reach Redis (one served from a reserve would
	// not wait for the failover).
	store := openTestRedis(t, ratelimit.RedisConfig{Mode: "sentinel", Addrs: []string{sentinel.Addr()}, MasterName: "gh",
		Timeout: 300 * time.Millisecond, Lease: ratelimit.LeaseConfig{MaxUnits: -1}}, nil)
	e := mustCompile(t, ratelimit.CompileInput{Apps: map[string]ratelimit.AppLimits{"a": {Limits: []ratelimit.LimitConfig{
		{Name: "l", Key: []string{"device"}, Requests: 1000, Per: time.Hour}}}}}, store)
	ctx := context.Background()
	req := policy.LimitRequest{App: "a", Device: "d"}
	for i := 0; i < 5; i++ {
		if res, err := e.Limit(ctx, t0, req); err != nil || res.Code != "" || res.Remaining != int64(999-i) {
			t.Fatalf("request %d via sentinel: %+v %v", i+1, res, err)
		}
	}
	if n, err := master.Query("WAIT", "1", "2000"); err != nil || n != "1" {
		t.Fatalf("WAIT for the replica: %q %v", n, err)
	}

	master.Stop()
	killed := time.Now()
	var res policy.LimitResult
	waitFor(t, 20*time.Second, "the store to follow the failover", func() bool {
		var err error
		res, err = e.Limit(ctx, t0, req)
		return err == nil
	})
	t.Logf("counting again %v after the master died", time.Since(killed).Round(time.Millisecond))
	// 5 counted before; calls that failed during the failover counted nothing, though one
	// that timed out after reaching the new master may have.
	if res.Code != "" || res.Remaining > 994 || res.Remaining < 990 {
		t.Fatalf("after failover: %+v, want remaining 990–994 (the count survived)", res)
	}
	if info, err := replica.Query("INFO", "replication"); err != nil || !strings.Contains(info, "role:master") {
		t.Fatalf("the replica was not promoted: %v\n%s", err, info)
	}
}

// onlyKey returns the name of the one key in st's Redis.
func onlyKey(t *testing.T, st *redisstore.Store) string {
	t.Helper()
	c := st.Client()
	keys, err := c.Do(context.Background(), c.B().Keys().Pattern("*").Build()).AsStrSlice()
	if err != nil || len(keys) != 1 {
		t.Fatalf("keys: %q %v, want exactly one", keys, err)
	}
	return keys[0]
}

// waitFor polls cond every 20 ms until it holds or limit passes.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// writeTestPKI writes a CA and a server certificate for 127.0.0.1 signed by it into dir.
func writeTestPKI(t *testing.T, dir string) (caFile, certFile, keyFile string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gatehouse test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "redis"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, der []byte) string {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	return write("ca.pem", "CERTIFICATE", caDER), write("cert.pem", "CERTIFICATE", leafDER), write("key.pem", "EC PRIVATE KEY", keyDER)
}

// TestRedisCounterExpiry: with counters: native, a replica sends a key's expiry once per
// window, in the round trip of its first count there; a key that Redis lost (here by a
// flush) gets its expiry again from the request that creates it anew.
func TestRedisCounterExpiry(t *testing.T) {
	r := redistest.Start(t)
	// No reserves: each request reaches Redis (TestRedisLease covers expiries with them).
	st := openTestRedis(t, ratelimit.RedisConfig{Addrs: []string{r.Addr()}, Lease: ratelimit.LeaseConfig{MaxUnits: -1}}, nil)
	e := mustCompile(t, ratelimit.CompileInput{Apps: map[string]ratelimit.AppLimits{"a": {Limits: []ratelimit.LimitConfig{
		{Name: "l", Key: []string{"device"}, Requests: 100, Per: time.Hour}}}}}, st)
	ctx := context.Background()
	req := policy.LimitRequest{App: "a", Device: "d"}
	pexpires := func() int { return r.CmdCalls("pexpire") }
	c := st.Client()
	pttl := func() int64 { // of the only key
		ms, err := c.Do(ctx, c.B().Pttl().Key(onlyKey(t, st)).Build()).AsInt64()
		if err != nil {
			t.Fatal(err)
		}
		return ms
	}
	for i := 0; i < 20; i++ {
		if _, err := e.Limit(ctx, t0, req); err != nil {
			t.Fatal(err)
		}
	}
	if n := pexpires(); n != 1 {
		t.Fatalf("%d PEXPIRE for 20 counts of one key, want 1", n)
	}
	if ms := pttl(); ms <= 0 || ms > int64(time.Hour/time.Millisecond) {
		t.Fatalf("pttl %d ms", ms)
	}
	// Checks without counting (an RLS descriptor's hits_addend 0) create no key, so they
	// need no expiry: a key they created could outlive its window.
	check := []ratelimit.Op{{Key: ratelimit.NewKey("check", "", 0, "c"), Kind: ratelimit.KindCounter, Limit: 10, Cost: 0, Expire: t0.Add(time.Hour).UnixNano()}}
	before := pexpires()
	for i := 0; i < 5; i++ {
		out := make([]ratelimit.Outcome, 1)
		if err := st.Apply(ctx, t0, check, out); err != nil || !out[0].Allowed || out[0].Value != 0 {
			t.Fatalf("check %d: %+v %v", i+1, out[0], err)
		}
	}
	if n := pexpires() - before; n != 0 {
		t.Fatalf("%d PEXPIRE for 5 checks of an absent key, want 0", n)
	}
	if n, err := r.Query("EXISTS", check[0].Key.Render(st.Prefix(), st.Cluster())); err != nil || n != "0" {
		t.Fatalf("checks created the key: EXISTS %s %v", n, err)
	}
	// A check is answered by Redis even when a refusal marked its key: 10 of 10 used is
	// not over the limit.
	spend := []ratelimit.Op{{Key: check[0].Key, Kind: ratelimit.KindCounter, Limit: 10, Cost: 10, Expire: check[0].Expire}}
	for i, want := range []bool{true, false} {
		out := make([]ratelimit.Outcome, 1)
		if err := st.Apply(ctx, t0, spend, out); err != nil || out[0].Allowed != want {
			t.Fatalf("spend %d: %+v %v", i+1, out[0], err)
		}
	}
	st.WaitOverMarks()
	if out := make([]ratelimit.Outcome, 1); st.Apply(ctx, t0, check, out) != nil || !out[0].Allowed || out[0].Unknown || out[0].Value != 10 {
		t.Fatalf("check of a spent key: %+v, want allowed with 10 counted", out[0])
	}
	if err := r.Do("FLUSHALL"); err != nil {
		t.Fatal(err)
	}
	if res, err := e.Limit(ctx, t0, req); err != nil || res.Remaining != 99 {
		t.Fatalf("after the flush: %+v %v", res, err)
	}
	if ms := pttl(); ms <= 0 {
		t.Fatalf("the key created anew has no expiry: pttl %d", ms)
	}
}

// TestRedisOverLimitCacheHoldsManyKeys: with thousands of devices over their limit and
// Redis then gone, no device is ever admitted: each is refused, from the over-limit
// cache, or its check fails (the fail mode decides). The cache is lossy (ristretto may
// drop sets under contention), so how many it keeps is not asserted; that it works at
// all is: a device marked while nothing else runs is refused without Redis.
func TestRedisOverLimitCacheHoldsManyKeys(t *testing.T) {
	r := redistest.Start(t)
	// script counters: a mark lasts until the window ends (native ones, a second of the
	// cache's own clock), so the fixed clock below holds every mark.
	st := openTestRedis(t, ratelimit.RedisConfig{Addrs: []string{r.Addr()}, Timeout: 200 * time.Millisecond, Counters: "script"}, nil)
	e := mustCompile(t, ratelimit.CompileInput{Apps: map[string]ratelimit.AppLimits{"a": {Limits: []ratelimit.LimitConfig{
		{Name: "l", Key: []string{"device"}, Requests: 1, Per: time.Hour}}}}}, st)
	ctx := context.Background()
	now := t0
	const devices = 5000
	each := func(f func(d string)) {
		var wg sync.WaitGroup
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < devices; i += 8 {
					f("dev-" + strconv.Itoa(i))
				}
			}()
		}
		wg.Wait()
	}
	spend := func(d string) {
		for i, want := range []policy.Code{"", policy.DeviceRateLimited} {
			if res, err := e.Limit(ctx, now, policy.LimitRequest{App: "a", Device: d}); err != nil || res.Code != want {
				t.Errorf("%s request %d: %+v %v", d, i+1, res, err)
			}
		}
	}
	each(spend)
	st.WaitOverMarks()
	spend("alone")
	st.WaitOverMarks()
	r.Stop()
	var remembered atomic.Int64
	each(func(d string) {
		res, err := e.Limit(ctx, now, policy.LimitRequest{App: "a", Device: d})
		switch {
		case err == nil && res.Code == policy.DeviceRateLimited:
			remembered.Add(1)
		case err == nil:
			t.Errorf("%s admitted with Redis gone: %+v", d, res)
		}
	})
	t.Logf("%d of %d over-limit devices refused from the cache", remembered.Load(), devices)
	if res, err := e.Limit(ctx, now, policy.LimitRequest{App: "a", Device: "alone"}); err != nil || res.Code != policy.DeviceRateLimited {
		t.Fatalf("a device marked alone: %+v %v, want refused from the cache", res, err)
	}
}

// TestRedisBatchedCallsGetTheirOwnReplies: concurrent calls share round trips, and each
// still gets its own replies: 16 workers, each on its own device, half counted natively
// and half by the script (so batches mix commands of different shapes), each see their
// own device's remaining count go down by one per request.
func TestRedisBatchedCallsGetTheirOwnReplies(t *testing.T) {
	r := redistest.Start(t)
	st := openTestRedis(t, ratelimit.RedisConfig{Addrs: []string{r.Addr()}}, nil)
	e := mustCompile(t, ratelimit.CompileInput{Apps: map[string]ratelimit.AppLimits{
		"a": {Limits: []ratelimit.LimitConfig{{Name: "l", Key: []string{"device"}, Requests: 1000, Per: time.Hour}}},
		"g": {Limits: []ratelimit.LimitConfig{{Name: "b", Key: []string{"device"}, Algorithm: "gcra", Requests: 1, Per: time.Hour, Burst: 1000}}},
	}}, st)
	reads := func() int {
		info, err := r.Query("INFO", "stats")
		if err != nil {
			t.Fatal(err)
		}
		_, rest, _ := strings.Cut(info, "total_reads_processed:")
		n, _ := strconv.Atoi(strings.TrimSpace(strings.SplitN(rest, "\n", 2)[0]))
		return n
	}
	before := reads()
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := policy.LimitRequest{App: []string{"a", "g"}[w%2], Device: "d" + strconv.Itoa(w)}
			for i := 0; i < 40; i++ {
				res, err := e.Limit(context.Background(), t0, req)
				if err != nil || res.Code != "" || res.Remaining != int64(999-i) {
					t.Errorf("%s/%s request %d: %+v %v, want remaining %d", req.App, req.Device, i+1, res, err, 999-i)
					return
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("640 requests, %d Redis reads", reads()-before)
}

// TestRedisNativeRefusalMarksBriefly: a refusal seen by native counting may count units
// of concurrent refused requests that are being taken back, so it keeps the key refused
// without asking Redis for a moment only, not until the window ends.
func TestRedisNativeRefusalMarksBriefly(t *testing.T) {
	r := redistest.Start(t)
	st := openTestRedis(t, ratelimit.RedisConfig{Addrs: []string{r.Addr()}}, nil)
	e := mustCompile(t, ratelimit.CompileInput{Apps: map[string]ratelimit.AppLimits{"a": {Limits: []ratelimit.LimitConfig{
		{Name: "l", Key: []string{"device"}, Requests: 10, Per: time.Hour}}}}}, st)
	ctx := context.Background()
	req := policy.LimitRequest{App: "a", Device: "d"}
	if res, err := e.Limit(ctx, t0, req); err != nil || res.Remaining != 9 {
		t.Fatalf("first: %+v %v", res, err)
	}
	c := st.Client()
	key := onlyKey(t, st)
	// 9 units of other requests in flight, about to be taken back.
	if err := c.Do(ctx, c.B().Incrby().Key(key).Increment(9).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	if res, err := e.Limit(ctx, t0, req); err != nil || res.Code != policy.DeviceRateLimited {
		t.Fatalf("with the key full: %+v %v", res, err)
	}
	st.WaitOverMarks()
	if err := c.Do(ctx, c.B().Decrby().Key(key).Decrement(9).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	if res, err := e.Limit(ctx, t0.Add(time.Millisecond), req); err != nil || res.Code != policy.DeviceRateLimited {
		t.Fatalf("just after the refusal, the mark holds: %+v %v", res, err)
	}
	if res, err := e.Limit(ctx, t0.Add(2*time.Second), req); err != nil || res.Code != "" || res.Remaining != 8 {
		t.Fatalf("2 s later, in the same window with 1 of 10 used: %+v %v, want admitted with 8 remaining", res, err)
	}
}

// TestRedisStalledCallsKeepTheirDeadline: with Redis stopped (SIGSTOP: connected but
// silent), concurrent calls without a deadline of their own, batched or not, return
// ErrUnavailable because the store's deadline passed (TestDeadlines checks which
// deadline that is: the store timeout and its slack), and the store recovers when Redis
// resumes.
func TestRedisStalledCallsKeepTheirDeadline(t *testing.T) {
	r := redistest.Start(t)
	const timeout = 50 * time.Millisecond
	st := openTestRedis(t, ratelimit.RedisConfig{Addrs: []string{r.Addr()}, Timeout: timeout,
		Breaker: ratelimit.BreakerConfig{Failures: 1000}}, nil)
	e := mustCompile(t, ratelimit.CompileInput{Apps: map[string]ratelimit.AppLimits{"a": {Limits: []ratelimit.LimitConfig{
		{Name: "l", Key: []string{"device"}, Requests: 1000, Per: time.Hour}}}}}, st)
	ctx := context.Background()
	if _, err := e.Limit(ctx, t0, policy.LimitRequest{App: "a", Device: "warm"}); err != nil {
		t.Fatal(err)
	}
	if err := r.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	defer func() {
		if !resumed {
			r.Signal(syscall.SIGCONT)
		}
	}()
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 5; i++ {
				_, err := e.Limit(ctx, t0, policy.LimitRequest{App: "a", Device: "d" + strconv.Itoa(w)})
				if !errors.Is(err, ratelimit.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("with Redis stopped: %v, want ratelimit.ErrUnavailable for a passed deadline", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	r.Signal(syscall.SIGCONT)
	resumed = true
	waitFor(t, 5*time.Second, "the store to answer again", func() bool {
		_, err := e.Limit(ctx, t0, policy.LimitRequest{App: "a", Device: "after"})
		return err == nil
	})
}

// TestRedisTakeBackLeavesNoKeyWithoutExpiry: a refused request's units are taken back
// in a second round trip. When the key expires in between (here: deleted then), the
// DECRBY creates it anew, and without an expiry of its own it would stay in Redis for good.
func TestRedisTakeBackLeavesNoKeyWithoutExpiry(t *testing.T) {
	r := redistest.Start(t)
	st := openTestRedis(t, ratelimit.RedisConfig{Addrs: []string{r.Addr()}}, nil)
	ctx := context.Background()
	c := st.Client()
	st.SetBeforeTakeBack(func(keys []string) {
		if err := c.Do(ctx, c.B().Del().Key(keys...).Build()).Error(); err != nil {
			t.Error(err)
		}
	})
	now := t0
	key := ratelimit.NewKey("l", "a", 0, "d")
	ops := []ratelimit.Op{{Key: key, Kind: ratelimit.KindCounter, Limit: 1, Cost: 2, Expire: now.Add(time.Hour).UnixNano()}}
	out := make([]ratelimit.Outcome, 1)
	if err := st.Apply(ctx, now, ops, out); err != nil {
		t.Fatal(err)
	}
	if out[0].Allowed {
		t.Fatal("2 units admitted by a limit of 1")
	}
	name := key.Render(st.Prefix(), st.Cluster())
	v, err := c.Do(ctx, c.B().Get().Key(name).Build()).AsInt64()
	if err != nil {
		t.Fatalf("the take-back did not recreate the key: %v", err)
	}
	ms, err := c.Do(ctx, c.B().Pttl().Key(name).Build()).AsInt64()
	if err != nil {
		t.Fatal(err)
	}
	if ms <= 0 || ms > int64(time.Hour/time.Millisecond) {
		t.Fatalf("key %s recreated by the take-back holds %d, pttl %d ms; want its window's expiry", name, v, ms)
	}
}

// TestRedisOverLimitMarkFollowsRaisedLimit: a key remembered as over its limit is not
// refused from the mark once a reload has raised the limit; Redis decides again.
func TestRedisOverLimitMarkFollowsRaisedLimit(t *testing.T) {
	r := redistest.Start(t)
	for _, counters := range []string{"native", "script"} {
		t.Run(counters, func(t *testing.T) {
			st := openTestRedis(t, ratelimit.RedisConfig{Addrs: []string{r.Addr()}, Counters: counters, KeyPrefix: counters + ":"}, nil)
			rules := func(n int64) *ratelimit.Engine {
				return mustCompile(t, ratelimit.CompileInput{Apps: map[string]ratelimit.AppLimits{"a": {Limits: []ratelimit.LimitConfig{
					{Name: "l", Key: []string{"device"}, Requests: n, Per: time.Hour}}}}}, st)
			}
			ctx := context.Background()
			req := policy.LimitRequest{App: "a", Device: "d"}
			before := rules(1)
			for i, want := range []policy.Code{"", policy.DeviceRateLimited} {
				if res, err := before.Limit(ctx, t0, req); err != nil || res.Code != want {
					t.Fatalf("limit 1, request %d: %+v %v, want %q", i+1, res, err, want)
				}
			}
			st.WaitOverMarks() // the refusal's mark is in the cache
			if res, err := before.Limit(ctx, t0, req); err != nil || res.Code != policy.DeviceRateLimited {
				t.Fatalf("limit 1, request 3: %+v %v", res, err)
			}
			after := rules(100) // the same rule, reloaded with a higher limit
			if res, err := after.Limit(ctx, t0, req); err != nil || res.Code != "" || res.Remaining != 98 {
				t.Fatalf("limit raised to 100: %+v %v, want admitted with 98 left", res, err)
			}
		})
	}
}

// TestRedisScriptReadDuringTakeBackMarksBriefly: with native counting, a request that
// goes through the script (here: a device token bucket plus the daily quota) can read
// units that a refused native request is about to take back. It is refused, like any
// concurrent request then, but must not mark the quota as spent for the rest of the day.
func TestRedisScriptReadDuringTakeBackMarksBriefly(t *testing.T) {
	r := redistest.Start(t)
	st := openTestRedis(t, ratelimit.RedisConfig{Addrs: []string{r.Addr()}}, nil)
	e := mustCompile(t, ratelimit.CompileInput{Apps: map[string]ratelimit.AppLimits{"a": {Limits: []ratelimit.LimitConfig{
		{Name: "device", Key: []string{"device"}, Algorithm: "gcra", Requests: 100, Per: time.Second, Burst: 100},
		{Name: "daily", Requests: 100, Period: "day"}}}}}, st)
	ctx := context.Background()
	limit := func(now time.Time, req policy.LimitRequest) policy.LimitResult {
		t.Helper()
		res, err := e.Limit(ctx, now, req)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := limit(t0, policy.LimitRequest{App: "a", Cost: 98}); res.Code != "" {
		t.Fatalf("98 of 100: %+v", res)
	}
	st.SetBeforeTakeBack(func([]string) {
		st.SetBeforeTakeBack(nil)
		if res := limit(t0, policy.LimitRequest{App: "a", Device: "d"}); res.Code != policy.QuotaExceeded {
			t.Errorf("during the take-back: %+v, want QUOTA_EXCEEDED (it reads 103)", res)
		}
	})
	if res := limit(t0, policy.LimitRequest{App: "a", Cost: 5}); res.Code != policy.QuotaExceeded {
		t.Fatalf("5 more: %+v", res)
	}
	if st.HasBeforeTakeBack() {
		t.Fatal("the refusal took nothing back")
	}
	st.WaitOverMarks() // the marks of both refusals are in the cache
	later := t0.Add(2 * redisstore.NativeOverFor)
	if res := limit(later, policy.LimitRequest{App: "a", Device: "d"}); res.Code != "" || res.Remaining != 1 {
		t.Fatalf("%v later, same day: %+v, want admitted with 1 left", later.Sub(t0), res)
	}
}

// TestRedisCanceledProbeKeepsBreakerOpen: a half-open probe whose caller went away before
// Redis answered says nothing about Redis; the breaker stays open.
func TestRedisCanceledProbeKeepsBreakerOpen(t *testing.T) {
	r := redistest.Start(t)
	// A store timeout far above the callers' deadlines: each call below runs under its
	// caller's own context, which the test cancels or lets pass.
	const timeout = 10 * time.Second
	clock := newFakeClock(t0)
	st := openTestRedis(t, ratelimit.RedisConfig{Addrs: []string{r.Addr()}, Timeout: timeout,
		Breaker: ratelimit.BreakerConfig{Failures: 1, Window: time.Millisecond, Cooldown: 50 * time.Millisecond}}, clock.Now)
	e := mustCompile(t, ratelimit.CompileInput{Apps: map[string]ratelimit.AppLimits{"a": {Limits: []ratelimit.LimitConfig{
		{Name: "l", Key: []string{"device"}, Requests: 1000, Per: time.Hour}}}}}, st)
	ctx := context.Background()
	req := policy.LimitRequest{App: "a", Device: "d"}
	if _, err := e.Limit(ctx, t0, req); err != nil {
		t.Fatal(err)
	}
	if err := r.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer r.Signal(syscall.SIGCONT)
	waitFor(t, 5*time.Second, "the breaker to open", func() bool {
		clock.Add(time.Millisecond) // the failures span the breaker's window
		fctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		defer cancel()
		e.Limit(fctx, t0, req)
		return st.BreakerOpen()
	})
	clock.Add(50 * time.Millisecond) // the cooldown: the next call is the probe
	cctx, cancel := context.WithTimeout(ctx, timeout/2)
	probe := make(chan error, 1)
	go func() { _, err := e.Limit(cctx, t0, req); probe <- err }()
	waitFor(t, 5*time.Second, "the probe to be sent", func() bool {
		return st.BreakerProbing()
	})
	cancel() // the caller goes away while Redis is silent
	if err := <-probe; !errors.Is(err, ratelimit.ErrUnavailable) {
		t.Fatalf("probe with Redis stopped: %v", err)
	}
	if !errors.Is(cctx.Err(), context.Canceled) {
		t.Fatalf("the probe's caller was not canceled first: %v", cctx.Err())
	}
	if !st.BreakerOpen() {
		t.Fatal("a probe whose caller went away closed the breaker")
	}
}

// TestRedisRefund: a refund (negative cost) gives units back in both counting modes and
// for token buckets, never below nothing counted, and ends the key's over-limit mark.
func TestRedisRefund(t *testing.T) {
	r := redistest.Start(t)
	for _, counters := range []string{"native", "script"} {
		t.Run(counters, func(t *testing.T) {
			st := openTestRedis(t, ratelimit.RedisConfig{Addrs: []string{r.Addr()}, Counters: counters, KeyPrefix: counters + ":"}, nil)
			ctx := context.Background()
			now := t0
			counter := func(cost int64) ratelimit.Outcome {
				t.Helper()
				out := make([]ratelimit.Outcome, 1)
				op := ratelimit.Op{Key: ratelimit.NewKey("w", "", 0, "k"), Kind: ratelimit.KindCounter, Limit: 3, Cost: cost, Expire: now.Add(time.Hour).UnixNano()}
				if err := st.Apply(ctx, now, []ratelimit.Op{op}, out); err != nil {
					t.Fatal(err)
				}
				return out[0]
			}
			for i, tc := range []struct {
				cost    int64
				allowed bool
				value   int64
			}{{3, true, 3}, {1, false, 3}, {-2, true, 1}, {2, true, 3}, {-100, true, 0}, {3, true, 3}} {
				if i == 2 {
					st.WaitOverMarks() // the refusal's mark is in the cache: the refund must end it
				}
				if o := counter(tc.cost); o.Allowed != tc.allowed || o.Value != tc.value || o.Unknown {
					t.Fatalf("step %d, cost %d: %+v, want allowed %v with %d counted", i+1, tc.cost, o, tc.allowed, tc.value)
				}
			}
			const iv = int64(time.Second)
			bucket := func(cost int64) ratelimit.Outcome {
				t.Helper()
				out := make([]ratelimit.Outcome, 1)
				op := ratelimit.Op{Key: ratelimit.NewKey("g", "", 0, "k"), Kind: ratelimit.KindGCRA, Limit: 4, Cost: cost, Interval: iv}
				if err := st.Apply(ctx, now, []ratelimit.Op{op}, out); err != nil {
					t.Fatal(err)
				}
				return out[0]
			}
			if o := bucket(4); !o.Allowed {
				t.Fatalf("burst of 4: %+v", o)
			}
			if o := bucket(1); o.Allowed {
				t.Fatalf("5th: %+v", o)
			}
			if o := bucket(-2); !o.Allowed || gcraTokens(4, iv, o.Value, now.UnixNano()) != 2 {
				t.Fatalf("2 tokens back: %+v", o)
			}
			if o := bucket(-100); !o.Allowed || gcraTokens(4, iv, o.Value, now.UnixNano()) != 4 {
				t.Fatalf("more than the burst back: %+v", o)
			}
			// A refund after a reload lowered the burst is still a refund.
			big := ratelimit.Op{Key: ratelimit.NewKey("g2", "", 0, "k"), Kind: ratelimit.KindGCRA, Limit: 10, Cost: 10, Interval: iv}
			small := ratelimit.Op{Key: big.Key, Kind: ratelimit.KindGCRA, Limit: 4, Cost: -2, Interval: iv}
			for i, op := range []ratelimit.Op{big, small} {
				out := make([]ratelimit.Outcome, 1)
				if err := st.Apply(ctx, now, []ratelimit.Op{op}, out); err != nil || !out[0].Allowed {
					t.Fatalf("lowered burst, step %d: %+v %v", i+1, out[0], err)
				}
				if want := now.UnixNano() + (10-2*int64(i))*iv; out[0].Value/1000 != want/1000 {
					t.Fatalf("lowered burst, step %d: TAT %d, want %d", i+1, out[0].Value, want)
				}
			}
			// A refund next to a refused op in the same request is kept.
			full := ratelimit.Op{Key: ratelimit.NewKey("full", "", 0, "k"), Kind: ratelimit.KindCounter, Limit: 1, Cost: 1, Expire: now.Add(time.Hour).UnixNano()}
			counter(0) // (the key "w" holds 3)
			for i, want := range []bool{true, false} {
				out := make([]ratelimit.Outcome, 2)
				ref := ratelimit.Op{Key: ratelimit.NewKey("w", "", 0, "k"), Kind: ratelimit.KindCounter, Limit: 3, Cost: -1, Expire: full.Expire}
				if err := st.Apply(ctx, now, []ratelimit.Op{ref, full}, out); err != nil || out[1].Allowed != want {
					t.Fatalf("refund with a counting op, step %d: %+v %v", i+1, out, err)
				}
			}
			if o := counter(0); o.Value != 1 {
				t.Fatalf("after two refunds of 1 from 3 (one beside a refusal): %d counted, want 1", o.Value)
			}
		})
	}
}
