package ratelimit

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
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy"
)

// TestRedisTLSAndPassword: the store counts through a TLS port that requires a password,
// with the password read from a file; a wrong password, an untrusted server certificate
// or plain TCP leave the store unavailable, and no error repeats the password.
func TestRedisTLSAndPassword(t *testing.T) {
	dir := t.TempDir()
	caFile, certFile, keyFile := writeTestPKI(t, dir)
	otherCA, _, _ := writeTestPKI(t, t.TempDir())
	const password = "tls-test-password-7f3a"
	r := startRedis(t, "--port", "0", "--tls-port", "{port}", "--tls-cert-file", certFile,
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
	in := CompileInput{Apps: map[string]AppLimits{"a": {Limits: []LimitConfig{
		{Name: "l", Key: []string{"device"}, Requests: 2, Per: time.Hour}}}}}
	ctx := context.Background()

	good := RedisConfig{Addrs: []string{r.addr()}, PasswordFile: pwFile, TLS: TLSConfig{Enabled: true, CAFile: caFile}}
	e := mustCompile(t, in, openTestRedis(t, good, nil))
	for i, want := range []policy.Code{"", "", policy.DeviceRateLimited} {
		res, err := e.Limit(ctx, time.Now(), policy.LimitRequest{App: "a", Device: "d"})
		if err != nil || res.Code != want {
			t.Fatalf("request %d over TLS: %+v %v", i+1, res, err)
		}
	}

	for name, cfg := range map[string]RedisConfig{
		"wrong password": {Addrs: good.Addrs, PasswordFile: badPw, TLS: good.TLS},
		"untrusted CA":   {Addrs: good.Addrs, PasswordFile: pwFile, TLS: TLSConfig{Enabled: true, CAFile: otherCA}},
		"plain TCP":      {Addrs: good.Addrs, PasswordFile: pwFile},
	} {
		t.Run(name, func(t *testing.T) {
			cfg.Timeout, cfg.DialTimeout = 200*time.Millisecond, 500*time.Millisecond
			s, err := openRedis(ctx, cfg, SystemClock)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			_, err = mustCompile(t, in, s).Limit(ctx, time.Now(), policy.LimitRequest{App: "a", Device: "x"})
			if !errors.Is(err, ErrUnavailable) {
				t.Fatalf("want ErrUnavailable, got %v", err)
			}
			if strings.Contains(err.Error(), password) {
				t.Fatalf("the error repeats the password: %v", err)
			}
		})
	}
}

// TestRedisSentinelFailover: through Sentinel the store finds the master, and when the
// master dies it follows the promoted replica; counts replicated before the failure
// survive it.
func TestRedisSentinelFailover(t *testing.T) {
	master := startRedis(t, "--repl-diskless-sync-delay", "0") // the replica syncs at once
	mport := strconv.Itoa(master.port)
	replica := startRedis(t, "--replicaof", "127.0.0.1", mport)
	sentinel := startRedisConf(t, "sentinel monitor gh 127.0.0.1 "+mport+" 1\n"+
		"sentinel down-after-milliseconds gh 300\n"+
		"sentinel failover-timeout gh 2000\n", "--sentinel")
	start := time.Now()
	waitFor(t, 10*time.Second, "the replica to sync", func() bool {
		info, err := replica.query("INFO", "replication")
		return err == nil && strings.Contains(info, "master_link_status:up")
	})

	t.Logf("replica in sync after %v", time.Since(start).Round(time.Millisecond))
	store := openTestRedis(t, RedisConfig{Mode: "sentinel", Addrs: []string{sentinel.addr()}, MasterName: "gh",
		Timeout: 300 * time.Millisecond}, nil)
	e := mustCompile(t, CompileInput{Apps: map[string]AppLimits{"a": {Limits: []LimitConfig{
		{Name: "l", Key: []string{"device"}, Requests: 1000, Per: time.Hour}}}}}, store)
	ctx := context.Background()
	req := policy.LimitRequest{App: "a", Device: "d"}
	for i := 0; i < 5; i++ {
		if res, err := e.Limit(ctx, time.Now(), req); err != nil || res.Code != "" || res.Remaining != int64(999-i) {
			t.Fatalf("request %d via sentinel: %+v %v", i+1, res, err)
		}
	}
	if n, err := master.query("WAIT", "1", "2000"); err != nil || n != "1" {
		t.Fatalf("WAIT for the replica: %q %v", n, err)
	}

	master.stop()
	killed := time.Now()
	var res policy.LimitResult
	waitFor(t, 20*time.Second, "the store to follow the failover", func() bool {
		var err error
		res, err = e.Limit(ctx, time.Now(), req)
		return err == nil
	})
	t.Logf("counting again %v after the master died", time.Since(killed).Round(time.Millisecond))
	// 5 counted before; calls that failed during the failover counted nothing, though one
	// that timed out after reaching the new master may have.
	if res.Code != "" || res.Remaining > 994 || res.Remaining < 990 {
		t.Fatalf("after failover: %+v, want remaining 990–994 (the count survived)", res)
	}
	if info, err := replica.query("INFO", "replication"); err != nil || !strings.Contains(info, "role:master") {
		t.Fatalf("the replica was not promoted: %v\n%s", err, info)
	}
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
	r := startRedis(t)
	st := openTestRedis(t, RedisConfig{Addrs: []string{r.addr()}}, nil)
	e := mustCompile(t, CompileInput{Apps: map[string]AppLimits{"a": {Limits: []LimitConfig{
		{Name: "l", Key: []string{"device"}, Requests: 100, Per: time.Hour}}}}}, st)
	ctx := context.Background()
	req := policy.LimitRequest{App: "a", Device: "d"}
	pexpires := func() int {
		info, err := r.query("INFO", "commandstats")
		if err != nil {
			t.Fatal(err)
		}
		_, rest, ok := strings.Cut(info, "cmdstat_pexpire:calls=")
		if !ok {
			return 0
		}
		n, _ := strconv.Atoi(rest[:strings.IndexByte(rest, ',')])
		return n
	}
	c := st.client.Load().c
	pttl := func() int64 { // of the only key
		keys, err := c.Do(ctx, c.B().Keys().Pattern("*").Build()).AsStrSlice()
		if err != nil || len(keys) != 1 {
			t.Fatalf("keys: %q %v", keys, err)
		}
		ms, err := c.Do(ctx, c.B().Pttl().Key(keys[0]).Build()).AsInt64()
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
	if err := r.do("FLUSHALL"); err != nil {
		t.Fatal(err)
	}
	if res, err := e.Limit(ctx, t0, req); err != nil || res.Remaining != 99 {
		t.Fatalf("after the flush: %+v %v", res, err)
	}
	if ms := pttl(); ms <= 0 {
		t.Fatalf("the key created anew has no expiry: pttl %d", ms)
	}
}

// TestRedisOverLimitCacheHoldsManyKeys: thousands of devices over their limit are all
// remembered, so they are refused without Redis (here: with Redis gone).
func TestRedisOverLimitCacheHoldsManyKeys(t *testing.T) {
	r := startRedis(t)
	st := openTestRedis(t, RedisConfig{Addrs: []string{r.addr()}, Timeout: 200 * time.Millisecond}, nil)
	e := mustCompile(t, CompileInput{Apps: map[string]AppLimits{"a": {Limits: []LimitConfig{
		{Name: "l", Key: []string{"device"}, Requests: 1, Per: time.Hour}}}}}, st)
	ctx := context.Background()
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
	each(func(d string) {
		for i, want := range []policy.Code{"", policy.DeviceRateLimited} {
			if res, err := e.Limit(ctx, time.Now(), policy.LimitRequest{App: "a", Device: d}); err != nil || res.Code != want {
				t.Errorf("%s request %d: %+v %v", d, i+1, res, err)
			}
		}
	})
	st.over.Wait()
	r.stop()
	var remembered atomic.Int64
	each(func(d string) {
		if res, err := e.Limit(ctx, time.Now(), policy.LimitRequest{App: "a", Device: d}); err == nil && res.Code == policy.DeviceRateLimited {
			remembered.Add(1)
		}
	})
	// ristretto may drop a few sets under contention; it must not forget most of them.
	if n := remembered.Load(); n < devices*99/100 {
		t.Fatalf("%d of %d over-limit devices refused without Redis, want ≥ 99%%", n, devices)
	}
}

// TestRedisConcurrentCallsShareRoundTrips: concurrent requests share Redis round trips
// (Redis reads far fewer times than it is asked), and every one of them still gets its
// own answer: 32 workers × 50 requests on one device with a limit of 1,000 admit exactly
// 1,000, whichever batch each request rode in.
func TestRedisConcurrentCallsShareRoundTrips(t *testing.T) {
	r := startRedis(t)
	st := openTestRedis(t, RedisConfig{Addrs: []string{r.addr()}}, nil)
	e := mustCompile(t, CompileInput{Apps: map[string]AppLimits{
		"a": {Limits: []LimitConfig{{Name: "l", Key: []string{"device"}, Requests: 1000, Per: time.Hour}}},
		"g": {Limits: []LimitConfig{{Name: "b", Key: []string{"device"}, Algorithm: "gcra", Requests: 1, Per: time.Hour, Burst: 1000}}},
	}}, st)
	reads := func() int {
		info, err := r.query("INFO", "stats")
		if err != nil {
			t.Fatal(err)
		}
		_, rest, _ := strings.Cut(info, "total_reads_processed:")
		n, _ := strconv.Atoi(strings.TrimSpace(strings.SplitN(rest, "\n", 2)[0]))
		return n
	}
	for _, app := range []string{"a", "g"} { // native counters, then the script
		t.Run(app, func(t *testing.T) {
			before := reads()
			allowed := countAllowed(t, []*Engine{e}, 32, 50, func() time.Time { return t0 }, policy.LimitRequest{App: app, Device: "d"})
			n := reads() - before
			t.Logf("1,600 requests, %d Redis reads", n)
			if allowed != 1000 {
				t.Errorf("admitted %d of 1,600, want exactly 1,000", allowed)
			}
			if n > 1600*3/4 { // refusals take a second round trip each; the over-limit cache saves most
				t.Errorf("%d Redis reads for 1,600 concurrent requests: round trips are not shared", n)
			}
		})
	}
}
