package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	commonrl "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"github.com/redis/rueidis"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// clusterNode is one master of a test Redis Cluster, with a client of its own (never
// redirected) for the test's administration.
type clusterNode struct {
	addr string
	port int
	id   string
	c    rueidis.Client
}

// do runs one command on the node itself.
func (n *clusterNode) do(args ...string) rueidis.RedisResult {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return n.c.Do(ctx, n.c.B().Arbitrary(args[0]).Args(args[1:]...).Build())
}

// startRedisCluster starts a three-master Redis Cluster on loopback, as an operator
// creates one: three cluster-enabled redis-server processes joined by `redis-cli
// --cluster create`. It waits until every node reports cluster_state:ok.
func startRedisCluster(t *testing.T) []*clusterNode {
	t.Helper()
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Skip("redis-cli is not installed (Debian's redis-tools; `make deps-test` installs it): it creates the cluster")
	}
	server, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal("redis-server is not installed: run the tests with `make test`, whose deps-test step installs it")
	}
	dir := t.TempDir()
	nodes := make([]*clusterNode, 3)
	create := []string{"--cluster", "create"}
	for i := range nodes {
		port := freeClusterPort(t)
		cmd := exec.Command(server, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
			"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(dir, fmt.Sprintf("nodes-%d.conf", port)), "--dir", dir)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		n := &clusterNode{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), port: port}
		waitUntil(t, "redis-server on "+n.addr, func() bool {
			c, err := net.DialTimeout("tcp", n.addr, 100*time.Millisecond)
			if err == nil {
				c.Close()
			}
			return err == nil
		})
		n.c, err = rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{n.addr}, ForceSingleClient: true, DisableCache: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(n.c.Close)
		if n.id, err = n.do("CLUSTER", "MYID").ToString(); err != nil {
			t.Fatal(err)
		}
		nodes[i] = n
		create = append(create, n.addr)
	}
	out, err := exec.Command(cli, append(create, "--cluster-replicas", "0", "--cluster-yes")...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, n := range nodes {
		waitUntil(t, "cluster_state:ok on "+n.addr, func() bool {
			info, err := n.do("CLUSTER", "INFO").ToString()
			return err == nil && strings.Contains(info, "cluster_state:ok")
		})
	}
	return nodes
}

// freeClusterPort returns a free loopback port whose cluster bus port (+10000) is free too.
func freeClusterPort(t *testing.T) int {
	t.Helper()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		if port+10000 > 65535 {
			l.Close()
			continue
		}
		bus, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port+10000))
		l.Close()
		if err == nil {
			bus.Close()
			return port
		}
	}
	t.Fatal("no free port pair for a cluster node")
	return 0
}

// slotMove moves one hash slot between masters, step by step, as the cluster
// specification (and `redis-cli --cluster reshard`) does it.
type slotMove struct {
	slot           string
	src, dst, rest *clusterNode
}

// importing marks the slot IMPORTING on the target, then MIGRATING on the source: the
// source still serves the keys it holds and answers ASK for the others.
func (m *slotMove) importing() error {
	if err := m.dst.do("CLUSTER", "SETSLOT", m.slot, "IMPORTING", m.src.id).Error(); err != nil {
		return fmt.Errorf("importing: %w", err)
	}
	if err := m.src.do("CLUSTER", "SETSLOT", m.slot, "MIGRATING", m.dst.id).Error(); err != nil {
		return fmt.Errorf("migrating: %w", err)
	}
	return nil
}

// migrateOne moves one of the slot's keys (none when it holds none): until the others
// follow, a request with keys on both sides can run nowhere (Redis answers TRYAGAIN).
func (m *slotMove) migrateOne() error { return m.migrate(1) }

// migrateRest moves the slot's remaining keys.
func (m *slotMove) migrateRest() error { return m.migrate(-1) }

// migrate moves up to n of the slot's keys (all when n < 0), one MIGRATE each and no
// REPLACE: a key already on the target would mean two copies of a counter, and fails the
// move.
func (m *slotMove) migrate(n int) error {
	for n != 0 {
		keys, err := m.src.do("CLUSTER", "GETKEYSINSLOT", m.slot, "10").AsStrSlice()
		if err != nil {
			return fmt.Errorf("getkeysinslot: %w", err)
		}
		if len(keys) == 0 {
			return nil
		}
		for _, k := range keys {
			if n == 0 {
				return nil
			}
			if err := m.src.do("MIGRATE", "127.0.0.1", strconv.Itoa(m.dst.port), k, "0", "5000").Error(); err != nil {
				return fmt.Errorf("migrate: %w", err)
			}
			n--
		}
	}
	return nil
}

// assign gives the slot to the target, telling the target first, then the source (which
// then answers MOVED), then the third master.
func (m *slotMove) assign() error {
	for _, n := range []*clusterNode{m.dst, m.src, m.rest} {
		if err := n.do("CLUSTER", "SETSLOT", m.slot, "NODE", m.dst.id).Error(); err != nil {
			return fmt.Errorf("setslot node: %w", err)
		}
	}
	return nil
}

// planMove plans moving tag's slot from its owner to the next master.
func planMove(t *testing.T, nodes []*clusterNode, tag string) *slotMove {
	t.Helper()
	slot, err := nodes[0].do("CLUSTER", "KEYSLOT", "{"+tag+"}").AsInt64()
	if err != nil {
		t.Fatal(err)
	}
	m := &slotMove{slot: strconv.FormatInt(slot, 10)}
	for i, n := range nodes {
		// Every master was told of the previous move (assign), so their views agree.
		if owns(t, n, slot) {
			m.src, m.dst, m.rest = n, nodes[(i+1)%3], nodes[(i+2)%3]
		}
	}
	if m.src == nil {
		t.Fatalf("no master owns slot %d", slot)
	}
	return m
}

// owns reports whether n serves slot, as n's own view of the cluster says.
func owns(t *testing.T, n *clusterNode, slot int64) bool {
	t.Helper()
	ranges, err := n.do("CLUSTER", "SLOTS").ToArray()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range ranges {
		f, err := r.ToArray()
		if err != nil || len(f) < 3 {
			t.Fatalf("CLUSTER SLOTS: %v", err)
		}
		lo, _ := f[0].AsInt64()
		hi, _ := f[1].AsInt64()
		master, _ := f[2].ToArray()
		if slot >= lo && slot <= hi && len(master) >= 2 {
			port, _ := master[1].AsInt64()
			return int(port) == n.port
		}
	}
	return false
}

// errorStats sums, over the masters, how often each answered prefix (ASK, MOVED,
// TRYAGAIN) as an error: what the clients were redirected by.
func errorStats(t *testing.T, nodes []*clusterNode) map[string]int64 {
	t.Helper()
	sum := map[string]int64{}
	for _, n := range nodes {
		info, err := n.do("INFO", "errorstats").ToString()
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(info, "\n") {
			name, rest, ok := strings.Cut(strings.TrimSpace(line), ":count=")
			if v, err := strconv.ParseInt(rest, 10, 64); ok && err == nil {
				sum[strings.TrimPrefix(name, "errorstat_")] += v
			}
		}
	}
	return sum
}

// clusterConfig: two rate-limit service domains (every_hit, atomic), an inline counter and
// an inline token bucket beside a counter, each hot limit 120, on a Redis Cluster. Windows
// are calendar years, so that no window ends mid-test (but at New Year; checked); the
// bucket refills one unit an hour, so none mid-test. The store timeout is generous: a
// call that times out after Redis counted it is another fault, tested elsewhere. The
// breaker opens for an hour after two failures in a row: a migration must not trip it
// (TRYAGAIN does not count), or every later call would fail.
const clusterConfig = `
store:
  type: redis
  redis: {mode: cluster, addrs: [%s], key_prefix: "%s", timeout: 5s, lease: {max_units: %d},
          breaker: {failures: 2, window: 1ns, cooldown: 1h}}
apps:
  - {name: inl, fail_mode: closed, app_token_sha256: ["{{T:inl}}"], endpoints: ["*"]}
  - name: thr
    fail_mode: closed
    app_token_sha256: ["{{T:thr}}"]
    endpoints: ["*"]
    limits:
      - {name: bucket, key: [app], algorithm: gcra, requests: 1, per: 1h, burst: 120}
      - {name: yearly, key: [app], requests: 1000000, period: year}
endpoints:
  - name: counted
    path: /v1/counted
    limits: [{name: yearly, key: [app], requests: 120, period: year}]
  - {name: open, path: /v1/open}
rate_limit_service:
  fail_mode: error
  domains:
    - domain: every
      descriptors:
        - {key: a, rate_limit: {unit: year, requests_per_unit: 120}}
        - {key: b, rate_limit: {unit: year, requests_per_unit: 1000000}}
    - domain: atomic
      counting: atomic
      descriptors:
        - {key: a, rate_limit: {unit: year, requests_per_unit: 120}}
        - {key: b, rate_limit: {unit: year, requests_per_unit: 1000000}}
`

const (
	clusterLimit = 120 // each case's hot limit (the bucket's burst)
	clusterCalls = 200 // calls per case
)

// verdict is what a client saw of one call.
type verdict int

const (
	wasAdmitted verdict = iota
	wasRefused
	wasFailed // the store failed and the fail mode answered: 503 (closed) or gRPC UNAVAILABLE (error)
)

// clusterCase is one limited thing, hammered while its slot moves.
type clusterCase struct {
	name   string
	tag    string // its keys' hash tag: the domain, or the app
	call   func(ctx context.Context, srv *testServer) (verdict, error)
	seen   [3]atomic.Int64 // by verdict
	next   atomic.Int64    // the next call's index
	values map[string]int64
}

func (c *clusterCase) n(v verdict) int64 { return c.seen[v].Load() }

func rlsClusterCall(domain string) func(context.Context, *testServer) (verdict, error) {
	return func(ctx context.Context, srv *testServer) (verdict, error) {
		res, err := rlsv3.NewRateLimitServiceClient(srv.conn).ShouldRateLimit(ctx, &rlsv3.RateLimitRequest{
			Domain: domain, Descriptors: []*commonrl.RateLimitDescriptor{entry("a", "hot"), entry("b", "wide")}})
		switch {
		case status.Code(err) == codes.Unavailable:
			return wasFailed, nil
		case err != nil:
			return 0, err
		case res.GetOverallCode() == rlsv3.RateLimitResponse_OK:
			return wasAdmitted, nil
		case res.GetOverallCode() == rlsv3.RateLimitResponse_OVER_LIMIT:
			return wasRefused, nil
		}
		return 0, fmt.Errorf("overall code %v", res.GetOverallCode())
	}
}

func checkClusterCall(appName, path string) func(context.Context, *testServer) (verdict, error) {
	return func(ctx context.Context, srv *testServer) (verdict, error) {
		resp, err := srv.auth.Check(ctx, envoyRequest(request{path: path, headers: app(appName)}))
		if err != nil {
			return 0, err
		}
		if resp.GetOkResponse() != nil {
			return wasAdmitted, nil
		}
		switch resp.GetDeniedResponse().GetStatus().GetCode() {
		case 429:
			return wasRefused, nil
		case 503:
			return wasFailed, nil
		}
		return 0, errors.New(describe(resp))
	}
}

// hammerWhileMoving sends clusterCalls calls per case, from four goroutines per case,
// while it moves every slot in four steps: IMPORTING/MIGRATING, one key MIGRATEd, the
// others MIGRATEd, the slot assigned. Steps follow progress, not time: step k starts once every case has
// begun call gates[k], and no case begins call gates[k+1] before step k is done. So
// calls run during each step, and some certainly run after it: on the source once it
// migrates, split between the masters, redirected by ASK once the keys moved, by MOVED
// once the slot is assigned.
func hammerWhileMoving(t *testing.T, srv *testServer, cases []*clusterCase, moves []*slotMove) {
	steps := []func(*slotMove) error{(*slotMove).importing, (*slotMove).migrateOne, (*slotMove).migrateRest, (*slotMove).assign}
	// Calls 20, 40, … 100 of 200: the slots are assigned before call 100 begins, so each
	// limit (120) still admits calls after that (which reach Redis: MOVED).
	gates := make([]int64, len(steps)+1)
	for k := range gates {
		gates[k] = int64(k+1) * clusterCalls / 10
	}
	reached := make([]sync.WaitGroup, len(steps))
	done := make([]chan struct{}, len(steps))
	for k := range steps {
		reached[k].Add(len(cases))
		done[k] = make(chan struct{})
	}
	var wg sync.WaitGroup
	for _, c := range cases {
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := c.next.Add(1) - 1; i < clusterCalls; i = c.next.Add(1) - 1 {
					for k := range steps {
						if i == gates[k] {
							reached[k].Done()
						}
						if i >= gates[k+1] {
							<-done[k]
						}
					}
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // only a hang takes this long
					v, err := c.call(ctx, srv)
					cancel()
					if err != nil {
						t.Errorf("%s: call %d: %v", c.name, i, err)
						continue
					}
					c.seen[v].Add(1)
				}
			}()
		}
	}
	var stepErr error
	for k, step := range steps {
		reached[k].Wait()
		for _, m := range moves {
			if stepErr == nil {
				stepErr = step(m)
			}
		}
		close(done[k]) // even after an error: the callers must not wait forever
	}
	wg.Wait()
	if stepErr != nil {
		t.Fatalf("moving the slots: %v", stepErr)
	}
}

// readKeys returns every key under prefix with its value, and checks that each lives on
// the master its slot was moved to and has an expiry.
func readKeys(t *testing.T, nodes []*clusterNode, moves []*slotMove, prefix string) map[string]int64 {
	t.Helper()
	dst := map[string]*clusterNode{}
	for _, m := range moves {
		dst[m.slot] = m.dst
	}
	vals := map[string]int64{}
	for _, n := range nodes {
		keys, err := n.do("KEYS", prefix+"*").AsStrSlice()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			slot, _ := n.do("CLUSTER", "KEYSLOT", k).AsInt64()
			if want := dst[strconv.FormatInt(slot, 10)]; want != n {
				t.Errorf("key %s on %s, not on the master its slot moved to", k, n.addr)
			}
			v, err := n.do("GET", k).AsInt64()
			if err != nil {
				t.Fatalf("GET %s: %v", k, err)
			}
			if ms, _ := n.do("PTTL", k).AsInt64(); ms <= 0 {
				t.Errorf("key %s has no expiry (PTTL %d)", k, ms)
			}
			vals[k] = v
		}
	}
	return vals
}

// TestRedisClusterSlotMigration: on a three-master Redis Cluster, the slots of four hot
// limits move to another master while calls run, so that the store is redirected by
// ASK and MOVED; with leases and without. Each limit is 120 and gets 200 calls.
//
// The rule for failures: a call the store failed on (the fail mode answered: closed →
// 503, error → UNAVAILABLE) is counted as failed and was not admitted; Redis executed
// nothing for it (a script whose keys are split between the two masters gets TRYAGAIN,
// which runs nothing; the timeout is generous, so none times out). Redirections are
// followed, so a request of plain counters does not fail. Then:
//   - exactly 120 admitted of each limit: never more, and no fewer (failures stay few);
//   - atomic (inline, counting: atomic): Redis holds exactly what was admitted;
//   - every_hit: Redis holds every answered call's hit (the companion descriptor b,
//     never refused, keeps refusals of a going to Redis), at most one more per failure;
//   - the token bucket's stored time is exactly 120 emission intervals ahead.
//
// Leases are given back when the server stops, before Redis is read.
func TestRedisClusterSlotMigration(t *testing.T) {
	nodes := startRedisCluster(t)
	addrs := make([]string, len(nodes))
	for i, n := range nodes {
		addrs[i] = strconv.Quote(n.addr)
	}
	for _, lease := range []struct {
		name     string
		maxUnits int
	}{{"leases", 64}, {"no leases", -1}} {
		t.Run(lease.name, func(t *testing.T) {
			prefix := fmt.Sprintf("gh%d:", lease.maxUnits+1)
			cfg := fmt.Sprintf(clusterConfig, strings.Join(addrs, ", "), prefix, lease.maxUnits)
			srv := startServer(t, "--config", writeConfig(t, t.TempDir(), cfg))
			srv.waitReady(t)
			cases := []*clusterCase{
				{name: "every_hit", tag: "every", call: rlsClusterCall("every")},
				{name: "atomic", tag: "atomic", call: rlsClusterCall("atomic")},
				{name: "inline counter", tag: "inl", call: checkClusterCall("inl", "/v1/counted")},
				{name: "inline bucket", tag: "thr", call: checkClusterCall("thr", "/v1/open")},
			}
			var moves []*slotMove
			for _, c := range cases {
				m := planMove(t, nodes, c.tag)
				if slices.ContainsFunc(moves, func(o *slotMove) bool { return o.slot == m.slot }) {
					t.Fatalf("two cases share slot %s: rename one", m.slot)
				}
				moves = append(moves, m)
			}
			year := time.Now().UTC().Year()
			before := errorStats(t, nodes)
			hammerWhileMoving(t, srv, cases, moves)
			srv.stop(t) // gives the leases back
			after := errorStats(t, nodes)
			if time.Now().UTC().Year() != year {
				t.Skip("a calendar year ended during the run: its windows restarted")
			}
			vals := readKeys(t, nodes, moves, prefix)
			for _, c := range cases {
				c.values = vals
				checkClusterCase(t, c)
			}
			ask, moved := after["ASK"]-before["ASK"], after["MOVED"]-before["MOVED"]
			t.Logf("redirections: %d ASK, %d MOVED, %d TRYAGAIN", ask, moved, after["TRYAGAIN"]-before["TRYAGAIN"])
			if ask == 0 || moved == 0 {
				t.Errorf("the store was never redirected (%d ASK, %d MOVED): the slots did not move under load", ask, moved)
			}
		})
	}
}

// checkClusterCase checks one case against the rules of TestRedisClusterSlotMigration.
func checkClusterCase(t *testing.T, c *clusterCase) {
	t.Helper()
	adm, ref, fail := c.n(wasAdmitted), c.n(wasRefused), c.n(wasFailed)
	t.Logf("%s: admitted %d, refused %d, failed %d", c.name, adm, ref, fail)
	if adm != clusterLimit || adm+ref+fail != clusterCalls {
		t.Errorf("%s: admitted %d, refused %d, failed %d of %d calls; want exactly %d admitted",
			c.name, adm, ref, fail, clusterCalls, clusterLimit)
	}
	switch c.tag {
	case "every": // every answered call counted on both descriptors; a failed one at most once
		for _, d := range []string{"hot", "wide"} {
			if v := c.value(t, d); v < adm+ref || v > adm+ref+fail {
				t.Errorf("%s: Redis holds %d hits of %s, want %d answered calls (+ up to %d failed)", c.name, v, d, adm+ref, fail)
			}
		}
	case "atomic": // exactly what was admitted, on both descriptors
		for _, d := range []string{"hot", "wide"} {
			if v := c.value(t, d); v != adm {
				t.Errorf("%s: Redis holds %d of %s, want the %d admitted", c.name, v, d, adm)
			}
		}
	case "inl":
		if v := c.value(t, "yearly"); v != adm {
			t.Errorf("%s: Redis holds %d, want the %d admitted", c.name, v, adm)
		}
	case "thr":
		if v := c.value(t, "yearly"); v != adm {
			t.Errorf("%s: Redis holds %d on the counter beside the bucket, want the %d admitted", c.name, v, adm)
		}
		// The bucket stores its theoretical arrival time (µs): one emission interval (an
		// hour) past the first call per admitted call. Less than an hour after the first
		// call, it lies between admitted-1 and admitted intervals ahead.
		const hourUS = int64(time.Hour / time.Microsecond)
		ahead := c.value(t, "bucket") - time.Now().UnixMicro()
		if units := (ahead + hourUS - 1) / hourUS; units != adm {
			t.Errorf("%s: the bucket holds %d units (%d µs ahead), want the %d admitted", c.name, units, ahead, adm)
		}
	}
}

// value returns the value of the one key of the case's hash tag whose name contains part.
func (c *clusterCase) value(t *testing.T, part string) int64 {
	t.Helper()
	var found []string
	for k := range c.values {
		if strings.Contains(k, "{"+c.tag+"}") && strings.Contains(k, part) {
			found = append(found, k)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%s: keys with %q: %q, want exactly one", c.name, part, found)
	}
	return c.values[found[0]]
}
