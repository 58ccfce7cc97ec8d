package main

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// demoTokenProviderYAML is an app's signed_token provider (under `providers:`) trusting
// the key that demo-token signs with, as the embedded demo configuration does.
const demoTokenProviderYAML = `        - type: signed_token
          header: x-attestation-token
          issuer: https://attest.gatehouse.demo
          audience: demo
          max_age: 1h
          jwks:
            inline: '{"keys":[{"alg":"ES256","crv":"P-256","kid":"gatehouse-demo-1","kty":"EC","use":"sig","x":"lFciBbFUvCUoJljtU85M_TpP_j967u2oUy1mZjtkYV0","y":"2mPNY-lL6_LHg8g0lZh4rkHnru72bO1iNiRaEfcSEZ8"}]}'
`

// throttleConfig is an app whose attested devices each have a token bucket of burst
// units refilled one an hour (so that during a test exactly burst requests of a device
// can pass, whatever the wall clock does), beside a monthly quota of the app that never
// refuses here, on the Redis at addr.
func throttleConfig(addr string, burst int) string {
	return fmt.Sprintf(`
store: {type: redis, redis: {addrs: ["%s"], timeout: 1s}}
apps:
  - name: main
    app_token_sha256: ["{{T:main}}"]
    endpoints: ["*"]
    attestation:
      providers:
`+demoTokenProviderYAML+`    limits:
      - {name: per_device, key: [device], algorithm: gcra, requests: 1, per: 1h, burst: %d}
      - {name: monthly, key: [app], requests: 1000000000, period: month, time_zone: UTC}
endpoints:
  - {name: secure, path: /v1/secure, methods: [GET], attestation: require}
`, addr, burst)
}

// TestThrottleLeasesNeverOverAdmit: three Gatehouse processes on one redis-server, each
// device's calls spread over all three (two clients per replica, each sending streaks of
// one device's calls, so that replicas lease units of the device's bucket). No device
// gets more than its burst; and at most the units the three replicas can still hold at
// the end (a quarter of the burst less one each: gcraLeaseShare) go unused.
func TestThrottleLeasesNeverOverAdmit(t *testing.T) {
	const (
		burst     = 20
		devices   = 24
		perClient = 15 // 3 replicas × 2 clients × 15 = 90 calls a device
	)
	addr, _ := redisServer(t)
	path := writeConfig(t, t.TempDir(), throttleConfig(addr, burst))
	var out, errOut bytes.Buffer
	if err := demoToken([]string{"--count", fmt.Sprint(devices), "--device", "phone"}, &out, &errOut); err != nil {
		t.Fatalf("demo-token: %v %s", err, errOut.String())
	}
	var ids, toks []string
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		id, tok, _ := strings.Cut(line, "\t")
		ids, toks = append(ids, id), append(toks, tok)
	}
	var servers []*testServer
	for i := 0; i < 3; i++ {
		s := startProcess(t, "--config", path)
		s.waitReady(t)
		servers = append(servers, s)
	}
	admitted := make([]atomic.Int64, devices)
	var wg sync.WaitGroup
	for c := 0; c < 6; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			s := servers[c%3]
			for k := 0; k < devices; k++ {
				d := (k + c*4) % devices // clients start on different devices
				h := with(app("main"), "x-attestation-token", toks[d])
				for i := 0; i < perClient; i++ {
					resp, err := s.check(t, request{path: "/v1/secure", headers: h})
					switch {
					case err != nil:
						t.Errorf("check: %v", err)
						return
					case resp.GetOkResponse() != nil:
						admitted[d].Add(1)
					case bodyCode(t, resp.GetDeniedResponse().GetBody()) != "DEVICE_RATE_LIMITED":
						t.Errorf("unexpected denial %s", describe(resp))
						return
					}
				}
			}
		}(c)
	}
	wg.Wait()
	const unused = 3 * (burst/4 - 1) // units each replica may still hold at the end
	for d := range admitted {
		if n := admitted[d].Load(); n > burst || n < burst-unused {
			t.Errorf("device %s: %d admitted; want at most the burst, %d (and at least %d)", ids[d], n, burst, burst-unused)
		}
	}
}
