package device_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/config"
	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/policy/attest/attesttest"
	"github.com/gatehouse/gatehouse/policy/device"
)

var now = time.Unix(1_750_000_000, 0)

func digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// env is a compiled configuration of device-step apps. License keys are derived from the
// test's name: bindings live in process memory shared by every test.
type env struct {
	t     *testing.T
	rules *policy.Rules
	key   *attesttest.Key
	dir   string
	lic   func(name string) string
}

const deviceConfig = `
apps:
  - name: lic
    dialect: license
    app_token_sha256: [{{digest "lic"}}]
    endpoints: ["*"]
    attestation:
      providers:
        - type: signed_token
          issuer: https://attest.test
          jwks: {inline: '{{.JWKS}}'}
    licenses:
      max_devices: 2
      keys:
        - {sha256: {{lic "active"}}}
        - {sha256: {{lic "revoked"}}, state: revoked}
        - {sha256: {{lic "expired"}}, state: expired}
        - {sha256: {{lic "lapsed"}}, expires_at: 2025-01-01T00:00:00Z}
        - {sha256: {{lic "single"}}, max_devices: 1}
        - {sha256: {{lic "unbound"}}, max_devices: 0}
        - {sha256: {{lic "race"}}}
  - name: trusting
    app_token_sha256: [{{digest "trusting"}}]
    endpoints: ["*"]
    devices:
      trust_device_header: true
      block: [stolen-device]
    licenses:
      required: false
      max_devices: 2
      keys:
        - {sha256: {{lic "trusting"}}}
  - name: attested
    app_token_sha256: [{{digest "attested"}}]
    endpoints: ["*"]
    attestation:
      providers:
        - type: signed_token
          issuer: https://attest.test
          jwks: {inline: '{{.JWKS}}'}
    devices:
      allow: [device-ok]
  - name: network
    app_token_sha256: [{{digest "network"}}]
    endpoints: ["*"]
    network:
      block: [203.0.113.0/24, "2001:db8:bad::/48", 198.51.100.7]
      block_file: blocked-ips.txt
  - name: allowlist
    app_token_sha256: [{{digest "allowlist"}}]
    endpoints: ["*"]
    network:
      allow: [10.0.0.0/8, "fd00::/8"]
endpoints:
  - {name: api, path: /v1/api}
  - {name: validate, path: /auth/validate, sdk_auth: true, dialect: license}
  - {name: heartbeat, path: /auth/heartbeat, sdk_auth: true, dialect: license, heartbeat: true}
  - {name: pmapi, path: /v1/pm, dialect: protectmyapi}
`

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, key: attesttest.NewKey(t, "ES256", "k1"), dir: t.TempDir()}
	e.lic = func(name string) string { return t.Name() + "/" + name }
	e.writeFile("blocked-ips.txt", "# abusive ranges\n192.0.2.128/25   # scraper\n\n2001:db8:1::7\n")
	e.compile()
	return e
}

func (e *env) writeFile(name, content string) {
	if err := os.WriteFile(filepath.Join(e.dir, name), []byte(content), 0o600); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) compile() {
	e.t.Helper()
	r := strings.NewReplacer("{{.JWKS}}", string(attesttest.JWKS(e.key)))
	yaml := r.Replace(deviceConfig)
	for {
		i := strings.Index(yaml, "{{")
		if i < 0 {
			break
		}
		j := strings.Index(yaml[i:], "}}") + i
		fn, arg, _ := strings.Cut(yaml[i+2:j], " ")
		arg = strings.Trim(arg, `"`)
		v := digest(arg)
		if fn == "lic" {
			v = digest(e.lic(arg))
		}
		yaml = yaml[:i] + v + yaml[j+2:]
	}
	snap, err := config.LoadBytes([]byte(yaml), filepath.Join(e.dir, "gatehouse.yaml"), config.Deps{})
	if err != nil {
		e.t.Fatalf("config: %v", err)
	}
	e.rules = snap.Rules
}

func (e *env) attestation(deviceID string) string {
	return attesttest.Sign(e.t, e.key, attesttest.Claims{"iss": "https://attest.test", "aud": "lic", "exp": now.Add(time.Minute).Unix(), "device_id": deviceID}, nil)
}

func (e *env) attestationFor(app, deviceID string) string {
	return attesttest.Sign(e.t, e.key, attesttest.Claims{"iss": "https://attest.test", "aud": app, "exp": now.Add(time.Minute).Unix(), "device_id": deviceID}, nil)
}

func (e *env) decide(in *policy.Input) policy.Decision {
	return e.rules.Decide(context.Background(), now, in)
}

func TestNetworkLists(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		app, source string
		want        policy.Code
	}{
		{"network", "192.0.2.10", ""},
		{"network", "203.0.113.99", policy.Blocked},
		{"network", "198.51.100.7", policy.Blocked},
		{"network", "198.51.100.8", ""},
		{"network", "::ffff:198.51.100.7", policy.Blocked},
		{"network", "2001:db8:bad:1::5", policy.Blocked},
		{"network", "2001:db8:bae::5", ""},
		{"network", "192.0.2.200", policy.Blocked}, // from the list file
		{"network", "2001:db8:1::7", policy.Blocked},
		{"allowlist", "10.20.30.40", ""},
		{"allowlist", "fd12::1", ""},
		{"allowlist", "192.0.2.10", policy.Blocked},
		{"allowlist", "", policy.Blocked}, // no address: not on the allow list
	} {
		t.Run(tc.app+"/"+tc.source, func(t *testing.T) {
			d := e.decide(attesttest.Request(tc.app, "/v1/api", tc.source))
			attesttest.Want(t, d, tc.want)
			if tc.want != "" && d.Step != policy.StepNetwork {
				t.Fatalf("step %s", d.Step)
			}
		})
	}
}

// TestNetworkListsClientIP: the lists apply to the address the pipeline determined (here
// a trusted x-forwarded-for hop), never to a client header on its own.
func TestNetworkListsClientIP(t *testing.T) {
	e := newEnv(t)
	app, _ := e.rules.App("network")
	ep := &policy.Endpoint{Name: "api"}
	in := attesttest.Request("network", "/v1/api", "10.0.0.1", "x-forwarded-for", "203.0.113.5, 10.0.0.2")
	if v := app.Device.Network(t.Context(), now, in, netip.MustParseAddr("203.0.113.5"), ep); v.Code != policy.Blocked {
		t.Fatalf("trusted hop on the block list: %+v", v)
	}
	if v := app.Device.Network(t.Context(), now, in, netip.MustParseAddr("10.0.0.2"), ep); v.Code != "" {
		t.Fatalf("client header trusted: %+v", v)
	}
	// Address not determined and x-forwarded-for present: cannot decide, never guess.
	if v := app.Device.Network(t.Context(), now, in, netip.Addr{}, ep); v.Err == nil {
		t.Fatalf("guessed the client address: %+v", v)
	}
}

// TestListFileReload: a list file is re-read when the configuration is compiled again.
func TestListFileReload(t *testing.T) {
	e := newEnv(t)
	attesttest.Want(t, e.decide(attesttest.Request("network", "/v1/api", "192.0.2.50")), "")
	e.writeFile("blocked-ips.txt", "192.0.2.0/24\n")
	e.compile()
	attesttest.Want(t, e.decide(attesttest.Request("network", "/v1/api", "192.0.2.50")), policy.Blocked)
}

func TestDeviceIdentity(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		name, app, path string
		headers         []string
		want            policy.Code
		device          string
	}{
		{"attested", "attested", "/v1/api", []string{"x-attestation-token", e.attestationFor("attested", "device-ok")}, "", "device-ok"},
		{"attested_not_on_allow_list", "attested", "/v1/api", []string{"x-attestation-token", e.attestationFor("attested", "device-2")}, policy.Blocked, ""},
		{"unattested_header_not_trusted_for_allow_list", "attested", "/v1/api", []string{"x-device-id", "device-ok"}, policy.Blocked, ""},
		{"header_disagrees_protectmyapi", "attested", "/v1/api", []string{"x-attestation-token", e.attestationFor("attested", "device-ok"), "x-device-id", "device-x"}, policy.AttestationFailed, ""},
		{"header_disagrees_license", "lic", "/v1/api", []string{"x-attestation-token", e.attestation("dev-a"), "x-device-id", "dev-b", "x-license-key", e.lic("active")}, policy.HWIDMismatch, ""},
		{"header_repeated_license", "lic", "/v1/api", []string{"x-attestation-token", e.attestation("dev-a"), "x-device-id", "dev-a, dev-b", "x-license-key", e.lic("active")}, policy.HWIDMismatch, ""},
		{"trusted_header", "trusting", "/v1/api", []string{"x-device-id", "phone-1"}, "", "phone-1"},
		{"trusted_header_blocked", "trusting", "/v1/api", []string{"x-device-id", "stolen-device"}, policy.Blocked, ""},
		{"trusted_header_repeated", "trusting", "/v1/api", []string{"x-device-id", "a,b"}, policy.AttestationFailed, ""},
		{"untrusted_header_ignored", "network", "/v1/api", []string{"x-device-id", "phone-1"}, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := e.decide(attesttest.Request(tc.app, tc.path, "192.0.2.10", tc.headers...))
			attesttest.Want(t, d, tc.want)
			if d.DeviceID != tc.device {
				t.Fatalf("device %q, want %q", d.DeviceID, tc.device)
			}
		})
	}
}

func TestLicenses(t *testing.T) {
	e := newEnv(t)
	key := func(name string) string { return e.lic(name) }
	for _, tc := range []struct {
		name, path string
		headers    []string
		want       policy.Code
		sdk        string // the license SDK body's error, for SDK endpoints
	}{
		{"active", "/v1/api", []string{"x-license-key", key("active")}, "", ""},
		{"missing_key", "/auth/validate", nil, policy.InvalidKey, "invalid_key"},
		{"unknown_key", "/auth/validate", []string{"x-license-key", "nope"}, policy.InvalidKey, "invalid_key"},
		{"repeated_key", "/auth/validate", []string{"x-license-key", key("active") + "," + key("active")}, policy.InvalidKey, "invalid_key"},
		{"revoked", "/auth/validate", []string{"x-license-key", key("revoked")}, policy.LicenseRevoked, "revoked"},
		{"expired_state", "/auth/validate", []string{"x-license-key", key("expired")}, policy.LicenseExpired, "expired"},
		{"expires_at_past", "/auth/heartbeat", []string{"x-license-key", key("lapsed")}, policy.LicenseExpired, "expired"},
		{"unbound_license_needs_no_device", "/auth/validate", []string{"x-license-key", key("unbound")}, "", ""},
		{"bound_license_needs_a_device", "/auth/validate", []string{"x-license-key", key("single")}, policy.HWIDMismatch, "hwid_mismatch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hdr := append([]string{"x-attestation-token", e.attestation("dev-" + tc.name)}, tc.headers...)
			if tc.name == "unbound_license_needs_no_device" || tc.name == "bound_license_needs_a_device" {
				hdr = tc.headers
			}
			d := e.decide(attesttest.Request("lic", tc.path, "192.0.2.10", hdr...))
			attesttest.Want(t, d, tc.want)
			if tc.sdk != "" {
				r := d.Render()
				if r.Status != 200 || !strings.Contains(string(r.Body), `"error":"`+tc.sdk+`"`) {
					t.Fatalf("rendered %d %s, want 200 with %s", r.Status, r.Body, tc.sdk)
				}
			}
			if tc.want == "" && !contains(d.Remove, "x-license-key") {
				t.Fatalf("license header not removed: %v", d.Remove)
			}
		})
	}
}

// TestHeartbeatSessionExpired: on a heartbeat endpoint an expired attestation (the
// device session) is session_expired.
func TestHeartbeatSessionExpired(t *testing.T) {
	e := newEnv(t)
	old := attesttest.Sign(t, e.key, attesttest.Claims{"iss": "https://attest.test", "aud": "lic", "exp": now.Add(-time.Hour).Unix(), "device_id": "d"}, nil)
	d := e.decide(attesttest.Request("lic", "/auth/heartbeat", "192.0.2.10", "x-attestation-token", old, "x-license-key", e.lic("active")))
	attesttest.Want(t, d, policy.SessionExpired)
	if r := d.Render(); r.Status != 200 || !strings.Contains(string(r.Body), `"session_expired"`) {
		t.Fatalf("rendered %d %s", r.Status, r.Body)
	}
	attesttest.Want(t, e.decide(attesttest.Request("lic", "/auth/validate", "192.0.2.10", "x-attestation-token", old, "x-license-key", e.lic("active"))), policy.AttestationExpired)
}

func TestLicenseBinding(t *testing.T) {
	e := newEnv(t)
	bind := func(device string) policy.Decision {
		return e.decide(attesttest.Request("lic", "/auth/validate", "192.0.2.10", "x-attestation-token", e.attestation(device), "x-license-key", e.lic("active")))
	}
	attesttest.Want(t, bind("dev-1"), "")
	attesttest.Want(t, bind("dev-2"), "")
	attesttest.Want(t, bind("dev-1"), "") // already bound
	d := bind("dev-3")
	attesttest.Want(t, d, policy.HWIDMismatch)
	if r := d.Render(); r.Status != 200 || !strings.Contains(string(r.Body), `"hwid_mismatch"`) {
		t.Fatalf("rendered %d %s", r.Status, r.Body)
	}
	// A license presented without attestation on an app that does not trust the header
	// has no device to bind: hwid_mismatch in the license dialect.
	attesttest.Want(t, e.decide(attesttest.Request("lic", "/auth/validate", "192.0.2.10", "x-license-key", e.lic("active"), "x-device-id", "dev-1")), policy.HWIDMismatch)
}

// TestLicenseBindingConcurrent: N+5 devices racing for one license bind exactly N.
func TestLicenseBindingConcurrent(t *testing.T) {
	e := newEnv(t)
	const n = 2
	var allowed atomic.Int32
	var wg sync.WaitGroup
	for i := range n + 5 {
		wg.Go(func() {
			in := attesttest.Request("trusting", "/v1/api", "192.0.2.10", "x-device-id", fmt.Sprintf("phone-%d", i), "x-license-key", e.lic("trusting"))
			if d := e.decide(in); d.Allowed() {
				allowed.Add(1)
			} else if d.Code != policy.HWIDMismatch {
				t.Errorf("code %s", d.Code)
			}
		})
	}
	wg.Wait()
	if allowed.Load() != n {
		t.Fatalf("%d devices bound, want %d", allowed.Load(), n)
	}
}

func TestMemoryBindingsConcurrent(t *testing.T) {
	b := device.NewMemoryBindings()
	const n = 3
	var bound atomic.Int32
	var wg sync.WaitGroup
	for g := range 8 {
		for i := range n + 5 {
			wg.Go(func() {
				ok, count, err := b.Bind(t.Context(), "license:x", fmt.Sprintf("d%d", (g+i)%(n+5)), n)
				if err != nil || count > n {
					t.Errorf("bind: %v count %d", err, count)
				}
				if ok {
					bound.Add(1)
				}
			})
		}
	}
	wg.Wait()
	_, count, _ := b.Bind(t.Context(), "license:x", "late", n)
	if count != n {
		t.Fatalf("%d devices bound, want %d", count, n)
	}
}

// TestResetLicense: the admin reset (ResetBindings on the license's binding key) frees
// a license's slots.
func TestResetLicense(t *testing.T) {
	b := device.NewMemoryBindings()
	key := device.BindingKey(policy.HashCredential("LIC-1"))
	b.Bind(t.Context(), key, "d1", 1)
	if ok, _, _ := b.Bind(t.Context(), key, "d2", 1); ok {
		t.Fatal("second device bound")
	}
	if err := b.ResetBindings(t.Context(), device.BindingKey(policy.HashCredential("LIC-1"))); err != nil {
		t.Fatal(err)
	}
	if ok, _, _ := b.Bind(t.Context(), key, "d2", 1); !ok {
		t.Fatal("reset did not free the slot")
	}
}

type failingBindings struct{}

func (failingBindings) Bind(context.Context, string, string, int) (bool, int, error) {
	return false, 0, errors.New("store down")
}
func (failingBindings) ResetBindings(context.Context, string) error { return errors.New("store down") }

// TestStoreErrorIsUndecided: a bindings store error is "could not decide", resolved by
// the fail mode, never a denial code.
func TestStoreErrorIsUndecided(t *testing.T) {
	h := policy.HashCredential("k")
	ch := device.New(device.Config{App: "a", Licenses: &device.Licenses{Required: true, Bindings: failingBindings{},
		Catalog: device.StaticCatalog{h: {Hash: h, MaxDevices: 1}}}, TrustDeviceHeader: true})
	v := ch.Device(t.Context(), now, attesttest.Request("a", "/", "", "x-license-key", "k", "x-device-id", "d1"), &policy.Endpoint{})
	if v.Err == nil || v.Code != "" {
		t.Fatalf("verdict %+v, want an error and no code", v)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestHeartbeatSDKInvalidSession: 002 gives an SDK heartbeat one refusal for a session
// credential that is missing, malformed or not verifiable, session_expired in a 200
// envelope; the developer API's 401 is not an SDK answer.
func TestHeartbeatSDKInvalidSession(t *testing.T) {
	e := newEnv(t)
	bogus := attesttest.NewKey(t, "ES256", "k1")
	forged := attesttest.Sign(t, bogus, attesttest.Claims{"iss": "https://attest.test", "aud": "lic", "exp": now.Add(time.Hour).Unix(), "device_id": "d"}, nil)
	for name, tok := range map[string]string{"malformed": "not-a-token", "forged": forged} {
		d := e.decide(attesttest.Request("lic", "/auth/heartbeat", "192.0.2.10", "x-attestation-token", tok, "x-license-key", e.lic("active")))
		attesttest.Want(t, d, policy.SessionExpired)
		if r := d.Render(); r.Status != 200 || string(r.Body) != `{"status":"failed","error":"session_expired"}` {
			t.Fatalf("%s: rendered %d %s", name, r.Status, r.Body)
		}
		// Elsewhere the provider's own code stays.
		if d := e.decide(attesttest.Request("lic", "/auth/validate", "192.0.2.10", "x-attestation-token", tok, "x-license-key", e.lic("active"))); d.Code == policy.SessionExpired || d.Code == "" {
			t.Fatalf("%s on validate: %q", name, d.Code)
		}
	}
}
