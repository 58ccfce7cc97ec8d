package main

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"
)

// commandCalls returns how many times the Redis behind c has run cmd (lower case, as INFO
// commandstats names it).
func commandCalls(t *testing.T, c rueidis.Client, cmd string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := c.Do(ctx, c.B().Info().Section("commandstats").Build()).ToString()
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(info, "cmdstat_"+cmd+":calls=")
	if !ok {
		return 0
	}
	n, _ := strconv.Atoi(rest[:strings.IndexByte(rest, ',')])
	return n
}

// TestThrottleFirstRequestsAcrossReplicas: each device's first Check, on one of three
// Gatehouse processes sharing a redis-server, finds the device's bucket full and takes
// its token without a script; the two other replicas, which never saw the device, then
// admit exactly what is left of the burst, no more, whichever replica asks.
func TestThrottleFirstRequestsAcrossReplicas(t *testing.T) {
	const (
		burst   = 10
		devices = 6
	)
	addr, _ := redisServer(t)
	path := writeConfig(t, t.TempDir(), throttleConfig(addr, burst))
	var out, errOut bytes.Buffer
	if err := demoToken([]string{"--count", fmt.Sprint(devices), "--device", "tablet"}, &out, &errOut); err != nil {
		t.Fatalf("demo-token: %v %s", err, errOut.String())
	}
	var toks []string
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		_, tok, _ := strings.Cut(line, "\t")
		toks = append(toks, tok)
	}
	var servers []*testServer
	for i := 0; i < 3; i++ {
		s := startProcess(t, "--config", path)
		s.waitReady(t)
		servers = append(servers, s)
	}
	rc, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr}, ForceSingleClient: true, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()

	scripts := commandCalls(t, rc, "evalsha") + commandCalls(t, rc, "eval")
	for d, tok := range toks { // each device's first request, on replica d%3
		resp, err := servers[d%3].check(t, request{path: "/v1/secure", headers: with(app("main"), "x-attestation-token", tok)})
		if err != nil || resp.GetOkResponse() == nil {
			t.Fatalf("device %d, first request: %v %s", d, err, describe(resp))
		}
	}
	if n := commandCalls(t, rc, "evalsha") + commandCalls(t, rc, "eval") - scripts; n != 0 {
		t.Errorf("%d scripts for %d first requests on full buckets, want 0", n, devices)
	}
	for d, tok := range toks { // then the two replicas that never saw it, in turn
		admitted := 1
		for i := 0; i < 2*burst; i++ {
			s := servers[(d+1+i%2)%3]
			resp, err := s.check(t, request{path: "/v1/secure", headers: with(app("main"), "x-attestation-token", tok)})
			switch {
			case err != nil:
				t.Fatalf("device %d: %v", d, err)
			case resp.GetOkResponse() != nil:
				admitted++
			case bodyCode(t, resp.GetDeniedResponse().GetBody()) != "DEVICE_RATE_LIMITED":
				t.Fatalf("device %d: unexpected denial %s", d, describe(resp))
			}
		}
		// Units a replica leased and has not used stay unused: at most a quarter of the
		// burst less one, for each of the two.
		if admitted > burst || admitted < burst-2*(burst/4-1) {
			t.Errorf("device %d: %d admitted over three replicas, want the burst, %d (at least %d)", d, admitted, burst, burst-2*(burst/4-1))
		}
	}
}
