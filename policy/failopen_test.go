package policy_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/config"
	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/policy/attest"
	"github.com/gatehouse/gatehouse/policy/attest/attesttest"
	"github.com/gatehouse/gatehouse/ratelimit"
)

// flakyStore is a real memory store of which one part can be made unreachable: the
// license bindings, the counters of limits, or the lockout's.
type flakyStore struct {
	ratelimit.Store
	bindings, limits, lockout bool
}

var errDown = fmt.Errorf("%w: test outage", ratelimit.ErrUnavailable)

func (s *flakyStore) Apply(ctx context.Context, now time.Time, ops []ratelimit.Op, out []ratelimit.Outcome) error {
	lock := len(ops) > 0 && strings.HasPrefix(ops[0].Key.ID, "lock/")
	if (lock && s.lockout) || (!lock && s.limits) {
		return errDown
	}
	return s.Store.Apply(ctx, now, ops, out)
}

func (s *flakyStore) Bind(ctx context.Context, key, member string, n int) (bool, int, error) {
	if s.bindings {
		return false, 0, errDown
	}
	return s.Store.(ratelimit.Bindings).Bind(ctx, key, member, n)
}

func (s *flakyStore) ResetBindings(ctx context.Context, key string) error {
	return s.Store.(ratelimit.Bindings).ResetBindings(ctx, key)
}

// A URL nothing listens on: every fetch of it fails at once.
const downJWKS = `{url: "http://127.0.0.1:1/jwks", allow_http: true, min_refresh: 1h}`

const failOpenConfig = `
server: {fail_mode: FAIL_MODE}
lockout: {max_failures: 100, window: 1m, lock_for: 1m}
jwt_providers:
  - {name: idp, issuer: https://id.test, audiences: [api], jwks: USER_JWKS}
secrets:
  - {name: lapsed, env: GH_LAPSED, expires_at: 2025-01-01T00:00:00Z}
apps:
  - name: a
    app_token_sha256: [APP]
    endpoints: ["*"]
    attestation:
      providers:
        - {type: signed_token, issuer: https://attest.test, jwks: ATTEST_JWKS}
    devices: {block: [stolen-device]}
    network: {block: [203.0.113.0/24]}
    licenses:
      required: false
      max_devices: 0
      keys:
        - {sha256: LIC_GOOD}
        - {sha256: LIC_REVOKED, state: revoked}
        - {sha256: LIC_BOUND, max_devices: 1}
endpoints:
  - {name: ok, path: /ok, user: {provider: idp}}
  - {name: big, path: /big, methods: [POST], user: {provider: idp}, payload: {max_bytes: 8}}
  - name: dev
    path: /dev
    user: {provider: idp}
    limits: [{name: per-device, key: [device], requests: 1, per: 1m}]
  - {name: secret, path: /secret, user: {provider: idp}, inject: [{header: x-upstream-key, secret: lapsed}]}
`

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// The dependencies a request can find unreachable.
const (
	depAttest   = "attestation keys"
	depUser     = "user-token keys"
	depBindings = "license bindings"
	depCounters = "counter store"
	depLockout  = "lockout store"
)

type failOpenEnv struct {
	rules              *policy.Rules
	userKey, attestKey *attesttest.Key
	bogusKey           *attesttest.Key
	now                time.Time
	t                  *testing.T
}

func newFailOpenEnv(t *testing.T, dep string) *failOpenEnv { return newFailEnv(t, dep, "open") }

func newFailEnv(t *testing.T, dep, mode string) *failOpenEnv {
	t.Helper()
	e := &failOpenEnv{t: t, now: time.Unix(1_750_000_000, 0),
		userKey: attesttest.NewKey(t, "ES256", "u1"), attestKey: attesttest.NewKey(t, "ES256", "a1"),
		bogusKey: attesttest.NewKey(t, "ES256", "unknown-kid")}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "user.json"), attesttest.JWKS(e.userKey), 0o600); err != nil {
		t.Fatal(err)
	}
	userJWKS, attestJWKS := `{file: user.json}`, `{inline: '`+string(attesttest.JWKS(e.attestKey))+`'}`
	switch dep {
	case depUser:
		userJWKS = downJWKS
	case depAttest:
		attestJWKS = downJWKS
	}
	mem, err := ratelimit.OpenStore(context.Background(), ratelimit.StoreConfig{}, ratelimit.SystemClock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mem.Close() })
	st := &flakyStore{Store: mem, bindings: dep == depBindings, limits: dep == depCounters, lockout: dep == depLockout}
	yaml := strings.NewReplacer("FAIL_MODE", mode, "USER_JWKS", userJWKS, "ATTEST_JWKS", attestJWKS, "APP", sum("app-token"),
		"LIC_GOOD", sum("lic-good"), "LIC_REVOKED", sum("lic-revoked"), "LIC_BOUND", sum("lic-bound")).Replace(failOpenConfig)
	snap, err := config.LoadBytes([]byte(yaml), filepath.Join(dir, "gatehouse.yaml"), config.Deps{
		Keys:      config.NewKeySources(),
		LookupEnv: func(string) (string, bool) { return "upstream-secret", true },
		Runtime:   config.Runtime{Store: st},
	})
	if err != nil {
		t.Fatal(err)
	}
	e.rules = snap.Rules
	return e
}

// attestation signs an attestation token for device id with the app's key, or, when
// bogus, with a key whose kid no key set holds.
func (e *failOpenEnv) attestation(id string, bogus bool) string {
	k := e.attestKey
	if bogus {
		k = e.bogusKey
	}
	return attesttest.Sign(e.t, k, attesttest.Claims{"iss": "https://attest.test", "aud": "a",
		"exp": e.now.Add(time.Minute).Unix(), "device_id": id}, nil)
}

func (e *failOpenEnv) user() string {
	return "Bearer " + attesttest.Sign(e.t, e.userKey, attesttest.Claims{"iss": "https://id.test", "aud": "api",
		"sub": "user-1", "exp": e.now.Add(time.Minute).Unix()}, nil)
}

// TestFailOpenOpensOnlyTheFailedDependency: with fail_mode open and one dependency
// unreachable, every step that does not depend on it still refuses what it refuses when
// every dependency is up; a bogus credential that makes the dependency fail never turns
// a refusal into an allow. Expected codes are typed by hand from the catalogue.
func TestFailOpenOpensOnlyTheFailedDependency(t *testing.T) {
	type req struct {
		path, source, token, device, license string
		body                                 string
		bogusAttest                          bool   // an attestation token with an unknown kid
		attestID                             string // the device id it claims
		noAttest                             bool
	}
	base := req{path: "/ok", source: "192.0.2.10", token: "app-token", attestID: "dev-1"}
	with := func(f func(*req)) req { r := base; f(&r); return r }
	cases := []struct {
		dep, step string
		reqs      []req // all but the last must be allowed; the last gets want
		want      policy.Code
	}{
		// The attestation key set is down: every attestation token is undecided.
		{depAttest, "control: fail open", []req{with(func(r *req) { r.bogusAttest = true })}, ""},
		{depAttest, "ip block list", []req{with(func(r *req) { r.source = "203.0.113.9" })}, "BLOCKED"},
		{depAttest, "device block list (claimed header)", []req{with(func(r *req) { r.bogusAttest, r.device = true, "stolen-device" })}, "BLOCKED"},
		{depAttest, "device block list (claimed in token)", []req{with(func(r *req) { r.bogusAttest, r.attestID, r.device = true, "stolen-device", "stolen-device" })}, "BLOCKED"},
		{depAttest, "device block list (claimed in token, no header)", []req{with(func(r *req) { r.bogusAttest, r.attestID = true, "stolen-device" })}, "BLOCKED"},
		{depAttest, "license revoked", []req{with(func(r *req) { r.bogusAttest, r.license = true, "lic-revoked" })}, "LICENSE_REVOKED"},
		{depAttest, "license unknown", []req{with(func(r *req) { r.bogusAttest, r.license = true, "lic-guess" })}, "INVALID_KEY"},
		{depAttest, "license bound to devices, none verified", []req{with(func(r *req) { r.bogusAttest, r.license = true, "lic-bound" })}, "ATTESTATION_REQUIRED"},
		{depAttest, "payload too large", []req{with(func(r *req) { r.bogusAttest, r.path, r.body = true, "/big", "123456789" })}, "PAYLOAD_TOO_LARGE"},
		{depAttest, "device throttle falls back to the address", []req{
			with(func(r *req) { r.bogusAttest, r.path = true, "/dev" }),
			with(func(r *req) { r.bogusAttest, r.path = true, "/dev" })}, "DEVICE_RATE_LIMITED"},
		{depAttest, "device throttle: rotating unverifiable tokens", []req{
			with(func(r *req) { r.bogusAttest, r.path, r.attestID = true, "/dev", "rot-1" }),
			with(func(r *req) { r.bogusAttest, r.path, r.attestID = true, "/dev", "rot-2" })}, "DEVICE_RATE_LIMITED"},
		{depAttest, "device throttle: rotating claimed device ids", []req{
			with(func(r *req) { r.bogusAttest, r.path, r.device = true, "/dev", "rot-1" }),
			with(func(r *req) { r.bogusAttest, r.path, r.device = true, "/dev", "rot-2" })}, "DEVICE_RATE_LIMITED"},
		{depAttest, "secrets", []req{with(func(r *req) { r.bogusAttest, r.path = true, "/secret" })}, "SECRET_EXPIRED"},

		// The user-token key set is down: every user JWT is undecided.
		{depUser, "control: fail open", []req{base}, ""},
		{depUser, "ip block list", []req{with(func(r *req) { r.source = "203.0.113.9" })}, "BLOCKED"},
		{depUser, "attestation refused", []req{with(func(r *req) { r.bogusAttest = true })}, "INVALID_ATTESTATION"},
		{depUser, "device block list", []req{with(func(r *req) { r.attestID = "stolen-device" })}, "BLOCKED"},
		{depUser, "license revoked", []req{with(func(r *req) { r.license = "lic-revoked" })}, "LICENSE_REVOKED"},
		{depUser, "license bound elsewhere", []req{
			with(func(r *req) { r.license, r.attestID = "lic-bound", "dev-a" }),
			with(func(r *req) { r.license, r.attestID = "lic-bound", "dev-b" })}, "HWID_MISMATCH"},
		{depUser, "payload too large", []req{with(func(r *req) { r.path, r.body = "/big", "123456789" })}, "PAYLOAD_TOO_LARGE"},
		{depUser, "device throttle", []req{with(func(r *req) { r.path = "/dev" }), with(func(r *req) { r.path = "/dev" })}, "DEVICE_RATE_LIMITED"},
		{depUser, "secrets", []req{with(func(r *req) { r.path = "/secret" })}, "SECRET_EXPIRED"},

		// The bindings store is down: a bound license is undecided.
		{depBindings, "control: fail open", []req{with(func(r *req) { r.license = "lic-bound" })}, ""},
		{depBindings, "payload too large", []req{with(func(r *req) { r.license, r.path, r.body = "lic-bound", "/big", "123456789" })}, "PAYLOAD_TOO_LARGE"},
		{depBindings, "device throttle keeps the verified device", []req{
			with(func(r *req) { r.license, r.path = "lic-bound", "/dev" }),
			with(func(r *req) { r.license, r.path, r.source = "lic-bound", "/dev", "192.0.2.11" })}, "DEVICE_RATE_LIMITED"},
		{depBindings, "secrets", []req{with(func(r *req) { r.license, r.path = "lic-bound", "/secret" })}, "SECRET_EXPIRED"},

		// The counter store is down: limits are undecided.
		{depCounters, "control: fail open", []req{with(func(r *req) { r.path = "/dev" })}, ""},
		{depCounters, "secrets", []req{with(func(r *req) { r.path = "/secret" })}, "SECRET_EXPIRED"},

		// The lockout store is down: no lockout, every other step as usual.
		{depLockout, "control", []req{base}, ""},
		{depLockout, "wrong app token", []req{with(func(r *req) { r.token = "guess" })}, "APP_NOT_FOUND"},
		{depLockout, "ip block list", []req{with(func(r *req) { r.source = "203.0.113.9" })}, "BLOCKED"},
		{depLockout, "attestation refused", []req{with(func(r *req) { r.bogusAttest = true })}, "INVALID_ATTESTATION"},
		{depLockout, "device block list", []req{with(func(r *req) { r.attestID = "stolen-device" })}, "BLOCKED"},
		{depLockout, "license revoked", []req{with(func(r *req) { r.license = "lic-revoked" })}, "LICENSE_REVOKED"},
		{depLockout, "payload too large", []req{with(func(r *req) { r.path, r.body = "/big", "123456789" })}, "PAYLOAD_TOO_LARGE"},
		{depLockout, "device throttle", []req{with(func(r *req) { r.path = "/dev" }), with(func(r *req) { r.path = "/dev" })}, "DEVICE_RATE_LIMITED"},
		{depLockout, "secrets", []req{with(func(r *req) { r.path = "/secret" })}, "SECRET_EXPIRED"},
	}
	for _, tc := range cases {
		t.Run(tc.dep+"/"+tc.step, func(t *testing.T) {
			e := newFailOpenEnv(t, tc.dep)
			var d policy.Decision
			for i, r := range tc.reqs {
				in := &policy.Input{Method: "GET", Path: r.path, RawPath: r.path, Source: netip.MustParseAddr(r.source), BodySize: -1,
					Headers: map[string]string{"x-app-token": r.token, "authorization": e.user()}}
				if r.body != "" {
					in.Method, in.Body, in.HasBody, in.BodySize = "POST", r.body, true, int64(len(r.body))
				}
				if !r.noAttest {
					in.Headers["x-attestation-token"] = e.attestation(r.attestID, r.bogusAttest)
				}
				if r.device != "" {
					in.Headers["x-device-id"] = r.device
				}
				if r.license != "" {
					in.Headers["x-license-key"] = r.license
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				d = e.rules.Decide(ctx, e.now, in)
				cancel()
				if i < len(tc.reqs)-1 && !d.Allowed() {
					t.Fatalf("request %d: denied %s at %s (cause %q), want allowed", i, d.Code, d.Step, d.Cause)
				}
			}
			if tc.want == "" {
				if !d.Allowed() {
					t.Fatalf("denied %s at %s (cause %q), want allowed", d.Code, d.Step, d.Cause)
				}
				if wantFlag := tc.dep != depLockout; d.FailOpen != wantFlag {
					t.Fatalf("FailOpen %v, want %v", d.FailOpen, wantFlag)
				}
				return
			}
			if d.Allowed() || d.Code != tc.want {
				t.Fatalf("got %s (allowed %v) at %s, cause %q; want %s", d.Code, d.Allowed(), d.Step, d.Cause, tc.want)
			}
		})
	}
}

// TestRefusalWinsOverUndecided: in every fail mode, a step that refuses decides even when
// an earlier one could not: with fail_mode error, a blocked device is refused rather than
// handed to Envoy's failure_mode_allow as a gRPC error. Without such a refusal the fail
// mode answers: 503 when closed, "could not decide" when error.
func TestRefusalWinsOverUndecided(t *testing.T) {
	cases := []struct {
		mode, name string
		device     string
		want       policy.Outcome
		code       policy.Code
	}{
		{"closed", "blocked device", "stolen-device", policy.Deny, "BLOCKED"},
		{"closed", "nothing else wrong", "", policy.Deny, "SERVICE_UNAVAILABLE"},
		{"error", "blocked device", "stolen-device", policy.Deny, "BLOCKED"},
		{"error", "nothing else wrong", "", policy.Undecided, ""},
		{"open", "blocked device", "stolen-device", policy.Deny, "BLOCKED"},
		{"open", "nothing else wrong", "", policy.Allow, ""},
	}
	for _, tc := range cases {
		t.Run(tc.mode+"/"+tc.name, func(t *testing.T) {
			e := newFailEnv(t, depAttest, tc.mode)
			in := &policy.Input{Method: "GET", Path: "/ok", RawPath: "/ok", Source: netip.MustParseAddr("192.0.2.10"), BodySize: -1,
				Headers: map[string]string{"x-app-token": "app-token", "authorization": e.user(),
					"x-attestation-token": e.attestation("dev-1", true)}}
			if tc.device != "" {
				in.Headers["x-device-id"] = tc.device
			}
			d := e.rules.Decide(context.Background(), e.now, in)
			if d.Outcome != tc.want || d.Code != tc.code {
				t.Fatalf("outcome %v code %q (cause %q), want %v %q", d.Outcome, d.Code, d.Cause, tc.want, tc.code)
			}
		})
	}
}

// TestUnverifiedDeviceKeyIsNoDeviceID: the stand-in device key of an unverifiable
// request can never be spelled by a device id (attested, or a trusted header), so no
// client can spend, or escape into, another address's stand-in budget.
func TestUnverifiedDeviceKeyIsNoDeviceID(t *testing.T) {
	for _, ip := range []string{"192.0.2.1", "2001:db8::1", ""} {
		if id := policy.UnverifiedDevicePrefix + ip; attest.ValidDeviceID(id) {
			t.Errorf("%q is a valid device id", id)
		}
	}
}
