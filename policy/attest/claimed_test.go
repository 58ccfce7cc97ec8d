package attest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/policy/attest"
	"github.com/gatehouse/gatehouse/policy/attest/attesttest"
	"github.com/gatehouse/gatehouse/policy/jwks"
)

// downReplay is a replay store that cannot be reached.
type downReplay struct{}

func (downReplay) Seen(context.Context, time.Time, policy.Hash, time.Time) (bool, error) {
	return false, errors.New("replay store down")
}

// TestUndecidedOutcomeNamesClaimedDevice: when a token cannot be judged (its key set
// unreachable, or its replay store down) the outcome is undecided, never names a
// verified device id, and carries the id the token claims for the block lists only.
func TestUndecidedOutcomeNamesClaimedDevice(t *testing.T) {
	key := attesttest.NewKey(t, "ES256", "k1")
	at := time.Unix(1_750_000_000, 0)
	claims := attesttest.Claims{"iss": "https://attest.test", "jti": "j1", "exp": at.Add(time.Minute).Unix(), "device_id": "stolen-device"}
	tok := attesttest.Sign(t, key, claims, nil)
	keys, err := jwks.Parse(attesttest.JWKS(key))
	if err != nil {
		t.Fatal(err)
	}
	down, err := jwks.New(jwks.Options{URL: "http://127.0.0.1:1/jwks", MinRefresh: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(down.Close)
	base := attest.Config{Kind: attest.SignedToken, App: "a", Issuer: "https://attest.test", Algorithms: []string{"ES256"},
		Claims: attest.ClaimNames{DeviceID: "device_id"}}
	cases := []struct {
		name string
		cfg  func(c *attest.Config)
	}{
		{"key set unreachable", func(c *attest.Config) { c.Keys = down }},
		{"replay store down", func(c *attest.Config) { c.Keys, c.Replay = jwks.NewStatic(keys["k1"]), downReplay{} }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := base
			tc.cfg(&c)
			in := attesttest.Request("a", "/v1/api", "192.0.2.1", "x-attestation-token", tok)
			o := attest.New(c).Check(context.Background(), at, in, tok, nil)
			if o.Err == nil || o.Code != "" || o.DeviceID != "" || o.Claimed != "stolen-device" {
				t.Fatalf("outcome code %q device %q claimed %q err %v; want undecided, no device, claimed stolen-device", o.Code, o.DeviceID, o.Claimed, o.Err)
			}
		})
	}
}
