package main

import (
	"context"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy/attest/appattest"
	"github.com/gatehouse/gatehouse/policy/attest/appattest/appattesttest"
	"github.com/gatehouse/gatehouse/policy/challenge"
	"github.com/gatehouse/gatehouse/ratelimit/redisstore"
	"github.com/gatehouse/gatehouse/ratelimit/state"
)

// enrolUnder enrols dev for app shop in the Redis at addr under p (environment and
// roots), with an attestation of ca carrying aaguid, as a configuration with p would.
func enrolUnder(t *testing.T, addr string, p appattest.Params, ca *appattesttest.CA, dev *appattesttest.Device, aaguid []byte) {
	t.Helper()
	ctx := context.Background()
	store, err := redisstore.Open(ctx, state.RedisConfig{Addrs: []string{addr}, KeyPrefix: "aa:", Timeout: time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	now := time.Now()
	chal, _ := challenge.New(store, time.Minute, nil)
	keys, err := appattest.NewKeys(store, chal, "shop", p, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c, err := keys.Challenge(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	cdh := sha256.Sum256([]byte(c))
	obj := ca.Attest(dev, appattesttest.Attestation{AppID: e2eAppID, ClientDataHash: cdh[:], AAGUID: aaguid}, now)
	if _, err := keys.Enrol(ctx, now, dev.KeyID, obj, c); err != nil {
		t.Fatal(err)
	}
}

// TestAppAttestKeyBoundToTrust: a production server sharing its Redis with keys enrolled
// under weaker trust refuses their assertions as keys never enrolled (403
// INVALID_ATTESTATION, the app must enrol a new key): a key attested by a test root when
// the server trusts Apple's root, and a development key when the server is production.
// The same kind of key enrolled under the server's own trust is accepted.
func TestAppAttestKeyBoundToTrust(t *testing.T) {
	addr, _ := redisServer(t)
	ca, root := testRoot(t)
	apple := startServer(t, "--config", writeConfig(t, t.TempDir(), appAttestConfig(addr, "")))
	testRooted := startServer(t, "--config", writeConfig(t, t.TempDir(), appAttestConfig(addr, root)))
	apple.waitReady(t)
	testRooted.waitReady(t)

	forged := appattesttest.NewDevice() // attested by a root that is not Apple's
	enrolUnder(t, addr, appattest.Params{AppID: e2eAppID, Roots: ca.Pool}, ca, forged, nil)
	development := appattesttest.NewDevice()
	enrolUnder(t, addr, appattest.Params{AppID: e2eAppID, Env: appattest.Development, Roots: ca.Pool}, ca, development, appattesttest.AAGUIDDevelopment)
	for _, tc := range []struct {
		name string
		s    *testServer
		r    request
		want string
	}{
		{"test-root key, Apple-root server", apple, assertedOrder(forged, 1, "a"), "INVALID_ATTESTATION"},
		{"development key, production server", testRooted, assertedOrder(development, 1, "b"), "INVALID_ATTESTATION"},
		{"test-root key, its own server", testRooted, assertedOrder(forged, 2, "c"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := tc.s.check(t, tc.r)
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			if d := resp.GetDeniedResponse(); d != nil {
				got = bodyCode(t, d.GetBody())
				if d.GetStatus().GetCode() != 403 {
					t.Errorf("status %d, want 403", d.GetStatus().GetCode())
				}
			}
			if got != tc.want {
				t.Fatalf("got %s, want %q", describe(resp), tc.want)
			}
		})
	}
}
