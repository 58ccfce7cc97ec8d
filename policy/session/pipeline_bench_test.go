package session_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/config"
	"github.com/gatehouse/gatehouse/policy"
)

// pipelineYAML: an app whose devices log in with a license key and HWID at the exchange,
// then carry the session token.
const pipelineYAML = `
sessions:
  keys: [{id: k1, file: ../../config/testdata/session/test-only-es256.pem}]
  active_key: k1
apps:
  - name: a
    app_token_sha256: ["{{APP}}"]
    endpoints: ["*"]
    attestation: {providers: [{type: session}]}
    devices: {trust_device_header: true}
    licenses: {required: false, max_devices: 1, keys: [{sha256: "{{LIC}}"}]}
endpoints:
  - {name: exchange, path: /v1/attest/exchange, methods: [POST], serve: exchange}
  - {name: data, path: /v1/data, attestation: require}
`

func hexSum(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }

func pipelineRules(b *testing.B) *policy.Rules {
	cache, err := policy.NewCache(64 << 20)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(cache.Close)
	text := []byte(strings.NewReplacer("{{APP}}", hexSum("app-token"), "{{LIC}}", hexSum("license-1")).Replace(pipelineYAML))
	snap, err := config.LoadBytes(text, filepath.Join(".", "bench.yaml"), config.Deps{Offline: true, Cache: cache})
	if err != nil {
		b.Fatal(err)
	}
	return snap.Rules
}

func exchangeInput() *policy.Input {
	return &policy.Input{Method: "POST", Path: "/v1/attest/exchange", RawPath: "/v1/attest/exchange", BodySize: -1,
		Headers: map[string]string{":method": "POST", ":path": "/v1/attest/exchange", "x-app-token": "app-token",
			"x-license-key": "license-1", "x-device-id": "hwid-1"}}
}

// BenchmarkPipelineExchange is one exchange through the whole pipeline (app, license key
// and HWID binding in the memory store, a session and its refresh token issued).
func BenchmarkPipelineExchange(b *testing.B) {
	rules := pipelineRules(b)
	in := exchangeInput()
	b.ReportAllocs()
	for b.Loop() {
		if d := rules.Decide(context.Background(), time.Now(), in); d.Outcome != policy.Served {
			b.Fatalf("%+v", d)
		}
	}
}

// BenchmarkPipelineSessionRequest is a request carrying a session token (verified and
// looked up once, then from the cache) through the whole pipeline.
func BenchmarkPipelineSessionRequest(b *testing.B) {
	rules := pipelineRules(b)
	d := rules.Decide(context.Background(), time.Now(), exchangeInput())
	var a struct {
		SessionToken string `json:"session_token"`
	}
	if d.Direct == nil || json.Unmarshal(d.Direct.Body, &a) != nil {
		b.Fatalf("exchange: %+v", d)
	}
	in := &policy.Input{Method: "GET", Path: "/v1/data", RawPath: "/v1/data", BodySize: -1,
		Headers: map[string]string{":method": "GET", ":path": "/v1/data", "x-app-token": "app-token", "x-session-token": a.SessionToken}}
	for range 100 { // until the verdict cache holds the token
		if rules.Decide(context.Background(), time.Now(), in).CacheHit {
			break
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if d := rules.Decide(context.Background(), time.Now(), in); d.Outcome != policy.Allow || d.DeviceID != "hwid-1" {
				b.Fatalf("%+v", d)
			}
		}
	})
}
