package policy_test

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/config"
	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/policy/attest/attesttest"
	"github.com/gatehouse/gatehouse/ratelimit"
)

const lockoutKeysConfig = `
lockout: {max_failures: 2, window: 1m, lock_for: 10m, key: KINDS}
jwt_providers:
  - {name: idp, issuer: https://id.test, audiences: [api], jwks: {file: user.json}}
apps:
  - name: a
    app_token_sha256: [APP]
    endpoints: ["*"]
    attestation:
      providers:
        - {type: signed_token, issuer: https://attest.test, jwks: {inline: 'ATTEST_JWKS'}}
    licenses:
      required: false
      max_devices: 0
      keys: [{sha256: LIC}]
endpoints:
  - {name: dev, path: /dev}
  - {name: user, path: /user, user: {provider: idp}}
`

type lockoutEnv struct {
	t         *testing.T
	rules     *policy.Rules
	user, att *attesttest.Key
	now       time.Time
}

func newLockoutEnv(t *testing.T, kinds string) *lockoutEnv {
	t.Helper()
	e := &lockoutEnv{t: t, user: attesttest.NewKey(t, "ES256", "u"), att: attesttest.NewKey(t, "ES256", "a"), now: time.Unix(1_750_000_000, 0)}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "user.json"), attesttest.JWKS(e.user), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := ratelimit.OpenStore(context.Background(), ratelimit.StoreConfig{}, ratelimit.SystemClock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	yaml := strings.NewReplacer("KINDS", kinds, "APP", sum("app-token"), "LIC", sum("lic-good"),
		"ATTEST_JWKS", string(attesttest.JWKS(e.att))).Replace(lockoutKeysConfig)
	snap, err := config.LoadBytes([]byte(yaml), filepath.Join(dir, "gatehouse.yaml"), config.Deps{Runtime: config.Runtime{Store: st}})
	if err != nil {
		t.Fatal(err)
	}
	e.rules = snap.Rules
	return e
}

// attempt is one request: from ip, by device (an attested id; "" none) and user (a
// verified sub; "" none), with a license key, app token and optional extra headers.
type attempt struct {
	ip, device, user, license, token string
	claimed                          string // x-device-id without proof
	forgedUser                       string // a user JWT signed by a key nobody trusts, for this sub
}

func (e *lockoutEnv) do(a attempt) policy.Decision {
	path := "/dev"
	in := &policy.Input{Method: "GET", Source: netip.MustParseAddr(a.ip), BodySize: -1,
		Headers: map[string]string{"x-app-token": "app-token"}}
	if a.token != "" {
		in.Headers["x-app-token"] = a.token
	}
	if a.device != "" {
		in.Headers["x-attestation-token"] = attesttest.Sign(e.t, e.att, attesttest.Claims{"iss": "https://attest.test", "aud": "a",
			"exp": e.now.Add(time.Minute).Unix(), "device_id": a.device}, nil)
	}
	if a.claimed != "" {
		in.Headers["x-device-id"] = a.claimed
	}
	if a.license != "" {
		in.Headers["x-license-key"] = a.license
	}
	if a.user != "" || a.forgedUser != "" {
		path = "/user"
		k, sub := e.user, a.user
		if a.forgedUser != "" {
			k, sub = attesttest.NewKey(e.t, "ES256", "u"), a.forgedUser
		}
		in.Headers["authorization"] = "Bearer " + attesttest.Sign(e.t, k, attesttest.Claims{"iss": "https://id.test", "aud": "api",
			"sub": sub, "exp": e.now.Add(time.Hour).Unix()}, nil)
	}
	in.Path, in.RawPath = path, path
	return e.rules.Decide(context.Background(), e.now, in)
}

// TestLockoutKeys: each lockout key kind, alone and combined, locks what it names after
// max_failures wrong credentials, whatever else varies between the attempts, and nothing
// else. The device key is the verified device id, the user key the verified JWT subject
// (of its provider); an unverified claim of either is never counted, so nobody can lock
// out a victim by naming it, nor escape by rotating names.
func TestLockoutKeys(t *testing.T) {
	type step struct {
		a    attempt
		want policy.Code // "" allowed
	}
	wrongLic := func(a attempt) attempt { a.license = "lic-guess"; return a }
	cases := []struct {
		name  string
		kinds string
		steps []step
	}{
		{"ip: wrong app tokens lock the address", "[ip]", []step{
			{attempt{ip: "192.0.2.1", token: "guess-1"}, "APP_NOT_FOUND"},
			{attempt{ip: "192.0.2.1", token: "guess-2"}, "APP_NOT_FOUND"},
			{attempt{ip: "192.0.2.1"}, "ACCOUNT_LOCKED"},
			{attempt{ip: "192.0.2.2"}, ""},
		}},
		{"device: a verified device guessing licenses from many addresses", "[device]", []step{
			{wrongLic(attempt{ip: "192.0.2.1", device: "dev-1"}), "INVALID_KEY"},
			{wrongLic(attempt{ip: "192.0.2.2", device: "dev-1"}), "INVALID_KEY"},
			{attempt{ip: "192.0.2.3", device: "dev-1", license: "lic-good"}, "ACCOUNT_LOCKED"},
			{wrongLic(attempt{ip: "192.0.2.4", device: "dev-1"}), "ACCOUNT_LOCKED"}, // no oracle: right or wrong, locked
			{attempt{ip: "192.0.2.1", device: "dev-2", license: "lic-good"}, ""},
		}},
		{"device: claimed ids are never counted", "[device]", []step{
			{wrongLic(attempt{ip: "192.0.2.1", claimed: "dev-1"}), "INVALID_KEY"},
			{wrongLic(attempt{ip: "192.0.2.1", claimed: "dev-1"}), "INVALID_KEY"},
			{wrongLic(attempt{ip: "192.0.2.1", claimed: "dev-1"}), "INVALID_KEY"},
			{attempt{ip: "192.0.2.9", device: "dev-1", license: "lic-good"}, ""},
		}},
		{"device: not tracked under [ip]", "[ip]", []step{
			{wrongLic(attempt{ip: "192.0.2.1", device: "dev-1"}), "INVALID_KEY"},
			{wrongLic(attempt{ip: "192.0.2.2", device: "dev-1"}), "INVALID_KEY"},
			{attempt{ip: "192.0.2.3", device: "dev-1", license: "lic-good"}, ""},
		}},
		{"user: a verified user guessing licenses from many devices and addresses", "[user]", []step{
			{wrongLic(attempt{ip: "192.0.2.1", device: "dev-1", user: "u-1"}), "INVALID_KEY"},
			{wrongLic(attempt{ip: "192.0.2.2", device: "dev-2", user: "u-1"}), "INVALID_KEY"},
			{attempt{ip: "192.0.2.3", device: "dev-3", user: "u-1", license: "lic-good"}, "ACCOUNT_LOCKED"},
			{attempt{ip: "192.0.2.3", device: "dev-3", user: "u-2", license: "lic-good"}, ""},
		}},
		{"user: forged tokens naming a victim do not lock it", "[user]", []step{
			{attempt{ip: "192.0.2.1", forgedUser: "u-1"}, "INVALID_TOKEN"},
			{attempt{ip: "192.0.2.1", forgedUser: "u-1"}, "INVALID_TOKEN"},
			{attempt{ip: "192.0.2.1", forgedUser: "u-1"}, "INVALID_TOKEN"},
			{attempt{ip: "192.0.2.2", user: "u-1"}, ""},
		}},
		{"ip and device: either locks", "[ip, device]", []step{
			{wrongLic(attempt{ip: "192.0.2.1", device: "dev-1"}), "INVALID_KEY"},
			{wrongLic(attempt{ip: "192.0.2.2", device: "dev-1"}), "INVALID_KEY"},
			{attempt{ip: "192.0.2.3", device: "dev-1"}, "ACCOUNT_LOCKED"}, // the device
			{wrongLic(attempt{ip: "192.0.2.1", device: "dev-2"}), "INVALID_KEY"},
			{attempt{ip: "192.0.2.1", device: "dev-3"}, "ACCOUNT_LOCKED"}, // the address
			{attempt{ip: "192.0.2.4", device: "dev-4"}, ""},
		}},
		{"all kinds by default", "[]", []step{
			{wrongLic(attempt{ip: "192.0.2.1", device: "dev-1", user: "u-1"}), "INVALID_KEY"},
			{wrongLic(attempt{ip: "192.0.2.2", device: "dev-2", user: "u-1"}), "INVALID_KEY"},
			{attempt{ip: "192.0.2.3", device: "dev-3", user: "u-1"}, "ACCOUNT_LOCKED"},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newLockoutEnv(t, tc.kinds)
			for i, s := range tc.steps {
				d := e.do(s.a)
				if d.Code != s.want || d.Allowed() != (s.want == "") {
					t.Fatalf("attempt %d: got %s (allowed %v, step %s), want %q", i+1, d.Code, d.Allowed(), d.Step, s.want)
				}
			}
		})
	}
}
